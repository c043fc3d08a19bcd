"""Separate hosts on one machine, for tests and benchmarks of a many-host cluster: Linux
network namespaces joined by a veth pair, each with an address of its own inside it only.
Needs root (``ip netns``); ``Unavailable`` says why not."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class Unavailable(Exception):
    """Namespaces cannot be made here (not root, no ``ip``, no veth support)."""


@dataclass(frozen=True)
class Namespace:
    name: str  # as ``ip netns`` knows it
    address: str  # its IPv4 address on the veth
    interface: str  # its end of the veth pair

    @property
    def prefix(self) -> list[str]:
        """A command line prefix that runs a program inside it."""
        return ["ip", "netns", "exec", self.name]


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=30)


@contextmanager
def pair(names: tuple[str, str] = ("a", "b")) -> Iterator[dict[str, Namespace]]:
    """Two namespaces ``{name: Namespace}`` on a /24 of 10.200-249.x.0 picked at random,
    removed (with the veth) on exit."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root (ip netns)")
    tag = uuid.uuid4().hex[:6]
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    spaces = {name: Namespace(f"rc{name}-{tag}", f"{subnet}.{i + 1}", f"ve{name}{tag}")
              for i, name in enumerate(names)}
    made: list[str] = []
    try:
        try:
            for ns in spaces.values():
                _ip("netns", "add", ns.name)
                made.append(ns.name)
            first, second = spaces.values()
            _ip("link", "add", first.interface, "netns", first.name, "type", "veth", "peer",
                second.interface, "netns", second.name)
            for ns in spaces.values():
                _ip("-n", ns.name, "addr", "add", f"{ns.address}/24", "dev", ns.interface)
                _ip("-n", ns.name, "link", "set", ns.interface, "up")
                _ip("-n", ns.name, "link", "set", "lo", "up")
        except (subprocess.SubprocessError, OSError) as e:
            raise Unavailable(f"cannot make network namespaces: "
                              f"{getattr(e, 'stderr', None) or e}") from e
        yield spaces
    finally:
        for name in made:  # the veth pair goes with them
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
