"""``python -m worker``: a worker process of the cluster (started by the supervisor)."""

from worker.main import main

main()
