"""The ``cluster`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

DEFAULT_BIND = "127.0.0.1:6380"


def load_target(target: str) -> Any:
    """Import ``module:attr`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"TARGET must look like module:attr, not {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_factory(obj: Any) -> Any:
    """A Factory as is; a zero-argument callable is called for one."""
    if hasattr(obj, "buildProtocol"):
        return obj
    if callable(obj):
        return obj()
    raise SystemExit(f"{obj!r} is neither a Factory nor a callable returning one")


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def cmd_run(args: argparse.Namespace) -> None:
    from cluster.reactor import reactor

    if args.target:
        factory = resolve_factory(load_target(args.target))
    else:
        from examples.echo import factory
    host, port = parse_bind(args.bind)
    listening = reactor.listenTCP(port, factory, interface=host, backlog=1024)
    logging.getLogger("cluster").info("serving %s on %s:%d", args.target or "echo", host,
                                      listening.getHost().port)
    reactor.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve TARGET (module:attr) in the foreground")
    run.add_argument("target", nargs="?", help="module:attr of a Factory (default: echo)")
    run.add_argument("--bind", default=DEFAULT_BIND, help="HOST:PORT (default %(default)s)")
    run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    args.func(args)
