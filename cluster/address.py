"""Addresses as transports and ports report them (``getPeer``, ``getHost``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class IPv4Address:
    """A TCP (or UDP) endpoint: ``.type``, ``.host``, ``.port``."""

    type: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class IPv6Address:
    """An IPv6 endpoint: ``.type``, ``.host``, ``.port``."""

    type: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class UNIXAddress:
    """A Unix socket path (``.name``; ``.host``/``.port`` are None for code that reads them)."""

    name: str | bytes | None
    host: None = None
    port: None = None


def fromSocketAddress(family: int, addr: Any) -> IPv4Address | IPv6Address | UNIXAddress:
    """Turn what ``getpeername``/``accept`` return into an address object."""
    if family == socket.AF_INET:
        return IPv4Address("TCP", *(addr[:2] if addr else ("", 0)))
    if family == socket.AF_INET6:
        return IPv6Address("TCP", *(addr[:2] if addr else ("", 0)))
    return UNIXAddress(addr or None)
