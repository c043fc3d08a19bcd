"""(being written)"""

from __future__ import annotations

from collections.abc import Callable

COMMANDS: dict[bytes, tuple[Callable[..., bytes], int]] = {}
MULTI_KEY: dict[bytes, tuple[Callable[..., bytes], int, int, int, int]] = {}
READS: set[bytes] = set()
