"""The hosts of a cluster that spans several machines, as its configuration names them.

``[[hosts]]`` in cluster.toml lists every host (``name``, ``rpc = "ADDRESS:PORT"``, and
``workers``, by default the top-level setting) in one order that every host shares; this
host is the entry named by ``host`` (default: the short hostname, which is a Kubernetes
StatefulSet pod's name). From that list alone every process computes the same node names
(``HOST/worker-N``) and the same shard map: no discovery or consensus protocol of ours.
One entry (or none) is a cluster of one host, whose nodes keep their short names.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_KEYS = {"name", "rpc", "workers"}
SEPARATOR = "/"


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # of its supervisor's RPC endpoint: an IP address or a DNS name
    port: int
    workers: int


def shortHostname() -> str:
    """This machine's name up to its first dot (a StatefulSet pod's name)."""
    return socket.gethostname().split(".")[0]


def parse(entries: Any, workers: int) -> list[Host]:
    """``[[hosts]]`` as a list of Host, checked (ValueError says what is wrong)."""
    if not isinstance(entries, list):
        raise ValueError("hosts must be an array of tables ([[hosts]] name = ..., rpc = ...)")
    hosts: list[Host] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"hosts[{i}] must be a table with name and rpc")
        unknown = set(entry) - _KEYS
        if unknown:
            raise ValueError(f"hosts[{i}]: unknown key(s) {', '.join(sorted(unknown))} "
                             f"(known: name, rpc, workers)")
        name, rpc = entry.get("name"), entry.get("rpc")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"hosts[{i}]: name must be 1-63 letters, digits, '.', '_' or "
                             f"'-', not {name!r}")
        address, sep, port = str(rpc).rpartition(":")
        if not isinstance(rpc, str) or not sep or not port.isdigit() or not (
                0 < int(port) < 65536) or not address.strip("[]"):
            raise ValueError(f"hosts[{i}] ({name}): rpc must be ADDRESS:PORT, not {rpc!r}")
        if address.strip("[]") in ("0.0.0.0", "::", "*"):
            raise ValueError(f"hosts[{i}] ({name}): rpc must be an address the other hosts "
                             f"can dial, not {address}")
        count = entry.get("workers", workers)  # 0: not set anywhere
        if "workers" in entry and (type(count) is not int or count < 1):
            raise ValueError(f"hosts[{i}] ({name}): workers must be a positive integer")
        hosts.append(Host(name, address.strip("[]"), int(port), count))
    for what, values in (("name", [h.name for h in hosts]),
                         ("rpc address", [(h.address, h.port) for h in hosts])):
        if len(set(values)) != len(values):
            raise ValueError(f"hosts: two entries have the same {what}")
    return hosts


def isLoopback(address: str) -> bool:
    """Whether ``address`` (an IP address or a name) is this machine's loopback."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a DNS name: another machine, as far as we can tell


def bindAddress(address: str) -> str:
    """The IP address to bind for ``address`` (ZeroMQ binds addresses, not DNS names)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    try:
        return socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)[0][4][0]
    except OSError as e:
        raise ValueError(f"cannot resolve this host's rpc address {address!r}: {e}") from e


def tcpEndpoint(address: str, port: int | str) -> str:
    """A ZeroMQ tcp:// endpoint (IPv6 addresses in brackets)."""
    return f"tcp://[{address}]:{port}" if ":" in address else f"tcp://{address}:{port}"


class HostMap:
    """Every host's workers in the configured order, and which host is this one: the
    node names and the shard map's order, the same in every process of every host."""

    def __init__(self, hosts: list[tuple[str, int]], me: str) -> None:
        self.hosts = hosts  # (name, workers) in order
        self.me = me
        self.names = [node for name, n in hosts for node in workerNodes(name, n)]

    def toSpec(self) -> dict[str, Any]:
        """As the supervisor passes it to its children (JSON)."""
        return {"hosts": [list(h) for h in self.hosts], "me": self.me}

    @classmethod
    def fromSpec(cls, spec: dict[str, Any] | None) -> HostMap | None:
        if not spec:
            return None
        return cls([(str(name), int(n)) for name, n in spec["hosts"]], str(spec["me"]))


def workerNode(host: str | None, index: int) -> str:
    """The node name of a host's worker ``index`` (one-host clusters: no host part)."""
    return f"{host}{SEPARATOR}worker-{index}" if host else f"worker-{index}"


def workerNodes(host: str | None, workers: int) -> list[str]:
    return [workerNode(host, i) for i in range(workers)]


def hostOf(node: str) -> str | None:
    """The host part of a node's name (None: a node of this host in a one-host cluster)."""
    host, sep, _ = node.rpartition(SEPARATOR)
    return host if sep else None


def localName(node: str) -> str:
    """A node's name within its host (``worker-N``, ``gateway``)."""
    return node.rpartition(SEPARATOR)[2]


def workerIndex(node: str) -> int:
    """N of a worker node's name (``worker-N`` or ``HOST/worker-N``)."""
    return int(node.rpartition("-")[2])
