"""redis-py's own tests/test_commands.py against redis-server 7 and against the store, at
once; the counts, and the tests that pass on redis-server but not on the store, grouped
by the first command each uses that the store lacks (or listed, when it has them all).

    python -m bench.redispy_suite [--workers 1] [--protocol 2|3] [--details]
                                  [--write-expected] [--json PATH]

``--write-expected`` rewrites tests/redispy/expected_pass.txt with the tests that pass on
both (what tests/test_redispy_suite.py then holds the store to). The runs' logs and
probe records are in bench/out/redispy/; the summary in bench/out/redispy/bench.json
unless ``--json``. See tests/redispy/suite.py for how the tests are fetched and run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from cluster.harness import Clusters
from tests.redisoracle import redis_server
from tests.redispy import suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1,
                        help="the store's workers (2: keys of different workers answer "
                             "CROSSSLOT to multi-key commands, as Redis Cluster)")
    parser.add_argument("--protocol", choices=("2", "3"), default=None,
                        help="redis-py's --protocol (default: the client's own default)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--details", action="store_true",
                        help="every blocked test under its missing command")
    parser.add_argument("--write-expected", action="store_true",
                        help=f"rewrite {suite.EXPECTED.relative_to(suite.ROOT)}")
    parser.add_argument("--json", default=str(suite.OUT / "bench.json"))
    args = parser.parse_args(argv)

    started = time.monotonic()
    suite.fetch()
    with redis_server(*suite.oracle_options()) as oracle, \
            Clusters(cwd=str(suite.ROOT)) as clusters:
        store = clusters(None, workers=args.workers)
        results = suite.run_suites({"redis-server": oracle, "store": store.port},
                                   timeout=args.timeout, protocol=args.protocol)
    summary = suite.summarize(results, expected=suite.read_expected(),
                              protocol=args.protocol or "default", workers=args.workers,
                              wall_s=round(time.monotonic() - started, 1))
    with open(args.json, "w") as f:
        json.dump(summary, f, indent=1)
    print(suite.render(summary, details=args.details))
    print(f"summary: {args.json}; wall {summary['wall_s']} s")
    if args.write_expected:
        both = suite.passed(results["redis-server"]) & suite.passed(results["store"])
        suite.write_expected(both)
        print(f"wrote {len(both)} tests to {suite.EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
