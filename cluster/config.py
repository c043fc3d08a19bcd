"""The cluster's settings: defaults, then a TOML file (``--config``), then flags.

The file's top-level keys mirror the long flags (``workers = 4``, ``bind =
"127.0.0.1:6380"``, ``route = "round-robin"``, ``graceful-timeout = 10``; dashes or
underscores), so a setting is spelled the same way everywhere.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, fields
from typing import Any

from cluster import hosts as hostsmod
from cluster import rundir
from cluster.shards import SLOTS

ROUTES = ("least-connections", "round-robin", "source-hash", "key")
LOG_FORMATS = ("text", "json")


def splitHostPort(address: str, setting: str) -> tuple[str, int]:
    """``HOST:PORT`` split into host and port (``[::1]:80`` for IPv6)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{setting} must be HOST:PORT, not {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def defaultWorkers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class Config:
    target: str | None = None
    workers: int = 0  # 0: one per usable core
    bind: str = "127.0.0.1:6380"
    route: str = "least-connections"
    name: str = "default"
    graceful_timeout: float = 30.0
    heartbeat_timeout: float = 10.0
    heartbeat_interval: float = 0.5
    preamble_limit: int = 4096
    preamble_timeout: float = 5.0
    slots: int = SLOTS  # Redis Cluster's hash slots (cluster.shards)
    rpc_timeout: float = 10.0
    backlog: int = 1024
    log_level: str = "INFO"
    udp: int | None = None  # each worker binds this UDP port too (SO_REUSEPORT)
    tls_cert: str | None = None  # workers speak TLS with this certificate (PEM) ...
    tls_key: str | None = None  # ... and key
    tls_ca: str | None = None  # and, if set, require client certificates signed by this
    metrics: str | None = None  # HOST:PORT: the supervisor serves /metrics, /status.json, /
    log_format: str = "text"  # or "json": one JSON object per line
    # worker-N also listens on worker_ports + N (a Redis Cluster node of the default
    # store); None: bind port + 1 for the default store, off for other apps; 0: off
    worker_ports: int | None = None
    appendonly: str | None = None  # DIR: the default store's append-only files
    appendfsync: str = "everysec"  # always, everysec or no (as Redis's)
    # several hosts as one cluster: [[hosts]] tables (name, rpc, workers), which one this
    # is (default: the short hostname) and the directory of their CurveZMQ certificates
    hosts: list[dict[str, Any]] | None = None
    host: str | None = None
    curve_keys: str | None = None

    def __post_init__(self) -> None:
        explicit = bool(self.workers)
        if not self.workers:
            self.workers = defaultWorkers()
        self.hostList: list[hostsmod.Host] = []  # the other hosts and this one, in order
        if self.hosts is not None:
            self._checkHosts(explicit)
        elif self.curve_keys is not None or self.host is not None:
            raise ValueError("host and curve-keys name this host among [[hosts]]: list the "
                             "cluster's hosts in the config file")
        self.validate()

    def _checkHosts(self, explicitWorkers: bool) -> None:
        hosts = hostsmod.parse(self.hosts, self.workers if explicitWorkers else 0)
        if self.host is None:
            self.host = hostsmod.shortHostname()
        names = [h.name for h in hosts]
        if self.host not in names:
            raise ValueError(f"this host ({self.host!r}) is not among [[hosts]] "
                             f"({', '.join(names)}): name it with --host NAME")
        me = next(h for h in hosts if h.name == self.host)
        if me.workers:
            self.workers = me.workers
        if len(hosts) > 1:
            if not explicitWorkers and any(h.workers == 0 for h in hosts):
                raise ValueError("with several [[hosts]], set workers (top-level or per "
                                 "host): the shard map must be the same on every host")
            if self.worker_ports:
                raise ValueError("worker-ports (Redis Cluster mode) spans one host only: "
                                 "with several [[hosts]] leave it off (clients use the "
                                 "gateways' ports)")
            self.worker_ports = 0
            self.hostList = hosts
        if self.curve_keys is not None:
            from cluster import curve

            self.curve_keys = os.path.abspath(self.curve_keys)
            curve.Keys.load(self.curve_keys, self.host, names)  # every file there and valid
        elif self.hostList and not all(hostsmod.isLoopback(h.address) for h in hosts):
            raise ValueError("refusing to run RPC between hosts in plaintext: some [[hosts]] "
                             "rpc address is not a loopback address, so set curve-keys "
                             "(certificates made by `cluster keys generate DIR --host NAME`)")

    def validate(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}; not {self.route!r}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.route == "key" and not self.target and not self.tls_cert:
            raise ValueError("route = key needs a TARGET whose factory has routeKey (or TLS, "
                             "to route by the server name)")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls-cert and tls-key go together")
        if self.tls_ca and not self.tls_cert:
            raise ValueError("tls-ca needs tls-cert and tls-key (it checks TLS clients)")
        for path in (self.tls_cert, self.tls_key, self.tls_ca):
            if path and not os.path.isfile(path):
                raise ValueError(f"no such file: {path}")
        if self.udp is not None and not 1 <= self.udp <= 65535:
            # not 0 either: each worker would bind a different port of its own
            raise ValueError(f"udp must be a port number from 1 to 65535, not {self.udp!r}")
        if self.worker_ports is not None and not (
                self.worker_ports == 0 or 1 <= self.worker_ports <= 65536 - self.workers):
            raise ValueError(f"worker-ports must be a port number with room for "
                             f"{self.workers} worker(s) below 65536 (0: off), not "
                             f"{self.worker_ports!r}")
        if self.appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not "
                             f"{self.appendfsync!r}")
        if self.appendonly is not None:
            if self.target is not None and not self.target.startswith("cluster.store"):
                raise ValueError("appendonly is the default store's (run without a TARGET)")
            self.appendonly = os.path.abspath(self.appendonly)
            if os.path.exists(self.appendonly) and not os.path.isdir(self.appendonly):
                raise ValueError(f"appendonly: {self.appendonly} is not a directory")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log-format must be text or json, not {self.log_format!r}")
        if self.metrics is not None:
            splitHostPort(self.metrics, "metrics")
        self.hostPort()
        rundir.path(self.name)  # a valid name, and room for the sockets in its directory

    def hostPort(self) -> tuple[str, int]:
        """``bind`` split into host and port (``[::1]:80`` for IPv6)."""
        return splitHostPort(self.bind, "bind")

    def workerPortBase(self) -> tuple[int, bool]:
        """The first worker port (0: none) and whether it was asked for explicitly."""
        if self.worker_ports is not None:
            return self.worker_ports, True
        port = self.hostPort()[1]
        room = port and port + self.workers <= 65535
        return (port + 1 if self.target is None and room else 0), False

    def toDict(self) -> dict[str, Any]:
        return asdict(self)


def load(path: str | None, overrides: dict[str, Any]) -> Config:
    """Defaults, updated by the TOML file at ``path``, updated by the non-None
    ``overrides`` (the flags given on the command line)."""
    known = {f.name for f in fields(Config)}
    values: dict[str, Any] = {}
    if path:
        with open(path, "rb") as f:
            for key, value in tomllib.load(f).items():
                name = key.replace("-", "_")
                if name not in known:
                    raise ValueError(f"{path}: unknown setting {key!r}")
                values[name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Config(**values)
