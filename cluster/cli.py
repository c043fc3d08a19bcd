"""The ``cluster`` command: run, status, stop, reload, load, keys."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from cluster import config as configmod
from cluster import control, logs
from cluster.statuspage import humanBytes, humanTime


def formatStatus(status: dict[str, Any]) -> str:
    """The human-readable table of ``cluster status``."""
    head = ("ROLE", "NODE", "PID", "STATE", "UPTIME", "RESTARTS", "CONNS", "CPU%", "RSS",
            "FDS")
    others = status.get("hosts") or []  # several hosts: every host's processes
    if others:
        head = ("HOST", *head)
    rows = [head]
    processes = list(status["processes"])
    for host in others:
        processes += host["processes"] or [{"host": host["name"], "role": "supervisor",
                                            "node": "supervisor", "pid": 0,
                                            "state": host["state"], "uptime": 0,
                                            "restarts": 0, "connections": 0,
                                            "cpu_percent": 0.0, "rss": 0, "fds": 0}]
    for p in processes:
        row = (p["role"], p["node"], str(p["pid"]), p["state"], humanTime(p["uptime"]),
               str(p["restarts"]), str(p["connections"]), f"{p['cpu_percent']:.1f}",
               humanBytes(p["rss"]), str(p["fds"]))
        rows.append((str(p.get("host")), *row) if others else row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"cluster {status['name']} on {status.get('bind', '?')} "
             f"(route {status.get('route', '?')})"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    if status.get("operation"):
        lines.append(f"in progress: {status['operation']}")
    lines += [f"WARNING: {w['message']}" for w in status.get("warnings", [])]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    overrides = {"target": args.target, "workers": args.workers, "bind": args.bind,
                 "route": args.route, "name": args.name,
                 "graceful_timeout": args.graceful_timeout,
                 "heartbeat_timeout": args.heartbeat_timeout, "log_level": args.log_level,
                 "rpc_timeout": args.rpc_timeout, "udp": args.udp,
                 "tls_cert": args.tls_cert, "tls_key": args.tls_key, "tls_ca": args.tls_ca,
                 "metrics": args.metrics, "log_format": args.log_format,
                 "worker_ports": args.worker_ports, "appendonly": args.appendonly,
                 "appendfsync": args.appendfsync, "host": args.host,
                 "curve_keys": args.curve_keys}
    try:
        cfg = configmod.load(args.config, overrides)
    except (ValueError, OSError) as e:
        print(f"cluster run: {e}", file=sys.stderr)
        return 2
    logs.setup("supervisor", cfg.log_level, cfg.log_format)
    from cluster.supervisor import Supervisor

    try:
        return Supervisor(cfg).run()
    except (RuntimeError, SystemExit) as e:
        if isinstance(e, SystemExit) and not isinstance(e.code, str):
            raise
        logging.getLogger("cluster").error("cluster run: %s", e)  # in --log-format too
        return 1


def cmd_status(args: argparse.Namespace) -> int:
    status = control.request(args.name, "status")
    print(json.dumps(status, indent=2) if args.json else formatStatus(status))
    return 0 if not args.ready or isReady(status) else 1


def isReady(status: dict[str, Any]) -> bool:
    """Every process of this host runs (a readiness probe's question)."""
    procs = status["processes"]
    workers = sum(p["role"] == "worker" and p["state"] == "running" for p in procs)
    return (all(p["state"] == "running" for p in procs) and workers >= status["workers"]
            and any(p["role"] == "gateway" for p in procs))


def cmd_keys(args: argparse.Namespace) -> int:
    from cluster import curve

    public, secret = curve.generate(args.directory, args.host)
    print(f"wrote {public} (give it to every host) and {secret} (this host's only)")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    reply = control.request(args.name, "quit" if args.fast else "stop",
                            waitForExit=args.wait)
    if reply.get("timed_out"):
        print(f"cluster {args.name!r} is still stopping after {args.wait}s", file=sys.stderr)
        return 1
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        reply = control.request(args.name, "reload", timeout=args.wait)
    except TimeoutError:
        print(f"cluster reload: still reloading after {args.wait}s (see cluster status)",
              file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"cluster reload: failed; the running processes keep serving.\n"
              f"{reply.get('error', reply)}", file=sys.stderr)
        return 1
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from cluster.load import runner

    try:
        summary = runner.run(args.target, args.workload, connections=args.connections,
                             requests=args.requests, duration=args.duration,
                             pipeline=args.pipeline, processes=args.processes,
                             progress=not args.json and sys.stderr.isatty(),
                             keyspace=args.keyspace, value_size=args.value_size,
                             set_ratio=args.set_ratio)
    except RuntimeError as e:  # a load process died (its own error is on stderr)
        print(f"cluster load: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else runner.render(summary))
    return 1 if summary["errors"] else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cluster", description="Twisted's model on every core.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start a cluster in the foreground")
    run.add_argument("target", nargs="?", help="module:attr of a Factory, or of a "
                     "zero-argument callable returning one (default: the built-in app)")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    run.add_argument("--bind", help="HOST:PORT to listen on (default 127.0.0.1:6380)")
    run.add_argument("--route", choices=configmod.ROUTES,
                     help="how connections are spread (default least-connections)")
    run.add_argument("--config", help="a TOML file whose keys mirror these flags")
    run.add_argument("--graceful-timeout", type=float,
                     help="seconds a stopping worker may take to finish (default 30)")
    run.add_argument("--heartbeat-timeout", type=float,
                     help="seconds of silence before a child is killed (default 10)")
    run.add_argument("--rpc-timeout", type=float,
                     help="seconds before an RPC call fails with TimeoutError (default 10)")
    run.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    run.add_argument("--log-format", choices=configmod.LOG_FORMATS,
                     help="text (default) or json: one JSON object per line, from every "
                     "process")
    run.add_argument("--worker-ports", type=int, metavar="BASE", help="worker-N also "
                     "listens on BASE+N (the default store: a Redis Cluster node there; "
                     "default BIND-PORT+1 for the default store, off for other apps; 0: "
                     "off)")
    run.add_argument("--appendonly", metavar="DIR", help="the default store keeps an "
                     "append-only file per worker in DIR and replays it at start (off by "
                     "default: memory only)")
    run.add_argument("--appendfsync", choices=("always", "everysec", "no"),
                     help="with --appendonly: fsync before each write is answered "
                     "(always), once a second (everysec, the default) or never (no)")
    run.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus /metrics, "
                     "/status.json and a live status page at / on this address (off by "
                     "default)")
    run.add_argument("--tls-cert", metavar="FILE", help="workers speak TLS with this "
                     "certificate (PEM); the handshake happens in the worker")
    run.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")
    run.add_argument("--tls-ca", metavar="FILE", help="require client certificates signed "
                     "by this CA")
    run.add_argument("--host", metavar="NAME", help="which of the config's [[hosts]] this "
                     "is (default: the short hostname)")
    run.add_argument("--curve-keys", metavar="DIR", help="every host's NAME.key and this "
                     "host's NAME.key_secret: RPC between hosts is CurveZMQ, open only to "
                     "those keys (required unless every host's rpc address is loopback)")
    run.add_argument("--udp", type=int, metavar="PORT", help="each worker also serves the "
                     "app's datagramProtocol on this UDP port (SO_REUSEPORT: the kernel "
                     "spreads datagrams over the workers by source address)")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="show every process of a running cluster")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--ready", action="store_true", help="exit 1 unless every process "
                        "of this host runs (a readiness probe)")
    status.set_defaults(func=cmd_status)

    stop = sub.add_parser("stop", help="stop a running cluster gracefully")
    stop.add_argument("--fast", action="store_true", help="do not wait for connections")
    stop.add_argument("--wait", type=float, default=60.0,
                      help="seconds to wait for it to exit (default 60)")
    stop.set_defaults(func=cmd_stop)

    reload = sub.add_parser("reload", help="replace every process without dropping any "
                            "connection; exits non-zero if the reload failed")
    reload.add_argument("--wait", type=float, default=600.0,
                        help="seconds to wait for the reload to finish (default 600)")
    reload.set_defaults(func=cmd_reload)

    load = sub.add_parser("load", help="generate load and check every reply")
    load.add_argument("target", nargs="?", default="127.0.0.1:6380", help="HOST:PORT "
                      "(default 127.0.0.1:6380)")
    load.add_argument("--workload", default="resp", help="resp, echo, or module:attr of a "
                      "client Protocol (default resp)")
    load.add_argument("-c", "--connections", type=int, default=50)
    load.add_argument("-p", "--processes", type=int, default=os.cpu_count() or 1,
                      help="load processes (default: one per core)")
    load.add_argument("-d", "--duration", type=float, help="seconds (default 10)")
    load.add_argument("-n", "--requests", type=int, help="stop after this many requests")
    load.add_argument("--pipeline", type=int, default=1, help="requests in flight per "
                      "connection")
    load.add_argument("--keyspace", type=int, default=100_000, help="resp: distinct keys")
    load.add_argument("--value-size", type=int, default=16, help="bytes per value or line")
    load.add_argument("--set-ratio", type=float, default=0.5, help="resp: share of SETs")
    load.add_argument("--json", action="store_true", help="machine-readable summary")
    load.set_defaults(func=cmd_load)

    keys = sub.add_parser("keys", help="CurveZMQ certificates for RPC between hosts")
    keysSub = keys.add_subparsers(dest="action", required=True)
    generate = keysSub.add_parser("generate", help="write DIR/NAME.key (public: give it to "
                                  "every host) and DIR/NAME.key_secret (this host's only)")
    generate.add_argument("directory", metavar="DIR")
    generate.add_argument("--host", required=True, metavar="NAME",
                          help="the host's name, as in [[hosts]]")
    generate.set_defaults(func=cmd_keys)

    for sp in (run, status, stop, reload):
        sp.add_argument("--name", default=None if sp is run else "default",
                        help="which cluster (default: 'default')")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except control.NotRunning as e:
        print(f"cluster {args.command}: {e}", file=sys.stderr)
        sys.exit(1)
    except ValueError as e:  # a bad name, address or setting
        print(f"cluster {args.command}: {e}", file=sys.stderr)
        sys.exit(2)
