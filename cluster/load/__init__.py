"""`cluster load`: a load generator on this reactor, in several processes.

``cluster.load.run("127.0.0.1:6380", connections=50, requests=10_000)`` is the Python API
of the command: it returns the summary ``cluster load --json`` prints (``requests_per_s``,
``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``, ``errors``, and the details).
"""

from __future__ import annotations

from typing import Any


def run(address: str, workload: str = "resp", connections: int = 50,
        requests: int | None = None, duration: float | None = None, pipeline: int = 1,
        processes: int | None = None, **options: Any) -> dict[str, Any]:
    """Load ``address`` (HOST:PORT) and return the merged summary; see
    ``cluster.load.runner.run`` (imported here on first use: the load processes import this
    package too, and need none of it)."""
    from cluster.load import runner

    return runner.run(address, workload, connections=connections, requests=requests,
                      duration=duration, pipeline=pipeline, processes=processes, **options)
