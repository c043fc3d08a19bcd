"""The server name (SNI) a TLS client asks for, read from its ClientHello: what key
routing routes a TLS connection by, without the gateway decrypting anything (the bytes
are peeked, not consumed; the worker does the handshake)."""

from __future__ import annotations

_HANDSHAKE = 22  # TLS record type
_CLIENT_HELLO = 1
_SERVER_NAME = 0  # extension type
_HOST_NAME = 0  # name type


class NotTLS(ValueError):
    """What arrived is not a well-formed ClientHello."""


def serverName(data: bytes) -> bytes | None:
    """The host name in the ClientHello at the start of ``data``, in lower case (names
    are case-insensitive), or ``b""`` when it names none (a client that connects by IP
    address sends none); None while more bytes are needed. Raises NotTLS for anything
    else, a ClientHello spread over more than one record included."""
    if len(data) < 5:
        return None
    if data[0] != _HANDSHAKE or data[1] != 3:
        raise NotTLS("not a TLS handshake record")
    recordLength = int.from_bytes(data[3:5], "big")
    if len(data) < 5 + recordLength:
        return None
    hello = data[5:5 + recordLength]  # a ClientHello fits in its first record in practice
    if len(hello) < 4 or hello[0] != _CLIENT_HELLO:
        raise NotTLS("not a ClientHello")
    helloLength = int.from_bytes(hello[1:4], "big")
    if 4 + helloLength > len(hello):
        raise NotTLS("a ClientHello longer than its record")
    body = hello[4:4 + helloLength]
    at = 2 + 32  # client_version, random
    at += 1 + _byte(body, at)  # session id
    at += 2 + _short(body, at)  # cipher suites
    at += 1 + _byte(body, at)  # compression methods
    if at + 2 > len(body):
        return b""  # no extensions, so no server name
    end = at + 2 + _short(body, at)
    at += 2
    while at + 4 <= end:
        kind, size = _short(body, at), _short(body, at + 2)
        at += 4
        if kind == _SERVER_NAME:
            names, stop = at + 2, at + 2 + _short(body, at)
            while names + 3 <= stop:
                nameType, nameLength = _byte(body, names), _short(body, names + 1)
                if names + 3 + nameLength > len(body):
                    raise NotTLS("a truncated ClientHello")
                if nameType == _HOST_NAME:
                    return bytes(body[names + 3:names + 3 + nameLength]).lower()
                names += 3 + nameLength
        at += size
    return b""


def _byte(data: bytes, at: int) -> int:
    if at >= len(data):
        raise NotTLS("a truncated ClientHello")
    return data[at]


def _short(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise NotTLS("a truncated ClientHello")
    return int.from_bytes(data[at:at + 2], "big")
