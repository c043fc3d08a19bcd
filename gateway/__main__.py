"""``python -m gateway``: the gateway process of the cluster (started by the supervisor)."""

from gateway.main import main

main()
