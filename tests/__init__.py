"""The project's tests; ``ROOT`` is the repository root (the subprocesses' working
directory)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
