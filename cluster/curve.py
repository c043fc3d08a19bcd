"""CurveZMQ between hosts: certificates, and the gate that admits only the known ones.

Each host has a certificate pair in pyzmq's ``zmq.auth`` format: ``NAME.key`` (public)
and ``NAME.key_secret``. A host's ``curve-keys`` directory holds every host's public
certificate and its own secret one. Its RPC sockets on tcp:// are CURVE servers with its
secret key, and a ZAP handler (``Gatekeeper``, on the reactor) admits a connection only
if the peer's public key is one of the configured hosts'; every refusal is logged. It
dials the other hosts as a CURVE client that knows the server's public key, so both ends
are authenticated and the traffic is encrypted.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import zmq
import zmq.auth
import zmq.utils.z85

from cluster.hosts import NAME
from cluster.logs import Episodes
from cluster.zmqsocket import ZmqSocket

log = logging.getLogger("cluster")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks (RFC 27)
DOMAIN = b"cluster"


def generate(directory: str, host: str) -> tuple[str, str]:
    """Write ``host``'s new certificate pair into ``directory`` (made 0700 if new);
    the secret file is 0600 from the start. Refuses to overwrite an existing pair."""
    if not NAME.fullmatch(host):
        raise ValueError(f"a host's name is 1-63 letters, digits, '.', '_' or '-', not "
                         f"{host!r}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    base = os.path.join(directory, host)
    for path in (base + ".key", base + ".key_secret"):
        if os.path.exists(path):
            raise ValueError(f"{path} exists: remove it first to make a new pair")
    mask = os.umask(0o077)
    try:
        public, secret = zmq.auth.create_certificates(directory, host)
    finally:
        os.umask(mask)
    os.chmod(public, 0o644)  # (public: for every host)
    return public, secret


class Keys:
    """This host's key pair and every host's public key."""

    def __init__(self, me: str, public: bytes, secret: bytes, hosts: dict[str, bytes]) -> None:
        self.me = me
        self.public = public
        self.secret = secret
        self.hosts = hosts  # host name -> public key (z85)
        self.known = set(hosts.values())

    @classmethod
    def load(cls, directory: str, me: str, hosts: list[str]) -> Keys:
        """Read ``directory`` (ValueError: a file is missing or not a certificate)."""
        if not os.path.isdir(directory):
            raise ValueError(f"curve-keys: {directory} is not a directory")
        keys: dict[str, bytes] = {}
        for host in hosts:
            keys[host] = cls._read(os.path.join(directory, f"{host}.key"))[0]
        public, secret = cls._read(os.path.join(directory, f"{me}.key_secret"))
        if secret is None:
            raise ValueError(f"curve-keys: {directory}/{me}.key_secret holds no secret key")
        if public != keys[me]:
            raise ValueError(f"curve-keys: {me}.key and {me}.key_secret are not one pair")
        return cls(me, public, secret, keys)

    @staticmethod
    def _read(path: str) -> tuple[bytes, bytes | None]:
        try:
            return zmq.auth.load_certificate(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"curve-keys: cannot read {path} (make it with `cluster keys "
                             f"generate DIR --host NAME`): {e}") from e

    def serve(self, sock: zmq.Socket) -> zmq.Socket:
        """Make ``sock`` a CURVE server with this host's key (before it binds)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True
        sock.zap_domain = DOMAIN
        return sock

    def dial(self, sock: zmq.Socket, host: str) -> zmq.Socket:
        """Make ``sock`` a CURVE client of ``host`` (before it connects)."""
        sock.curve_serverkey = self.hosts[host]
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        return sock


class Gatekeeper:
    """The ZAP handler of this process's ZeroMQ context: admits CURVE peers whose key is
    a configured host's, refuses (and logs, once per episode: anyone who can reach the
    port can knock) the rest. It must be bound before any CURVE server socket accepts a
    connection: without a handler libzmq admits every key."""

    def __init__(self, reactor: Any, context: zmq.Context, keys: Keys) -> None:
        self.keys = keys
        self.refused = Episodes(log, "refused an RPC connection %s", reactor)
        sock = context.socket(zmq.ROUTER)
        sock.linger = 0
        sock.bind(ZAP_ENDPOINT)
        self.sock = ZmqSocket(reactor, sock, self._request).start()

    def _request(self, frames: list[Any]) -> None:
        frames = [bytes(f) for f in frames]
        # [requester, b"", version, request id, domain, address, identity, mechanism, creds...]
        if len(frames) < 8:
            return
        envelope, (version, rid, domain, address, _, mechanism, *creds) = frames[:2], frames[2:]
        key = zmq.utils.z85.encode(creds[0]) if mechanism == b"CURVE" and creds else None
        if key is not None and key in self.keys.known and domain == DOMAIN:
            reply = [b"200", b"OK", key]
        else:
            why = "an unknown CURVE key" if key is not None else f"mechanism {mechanism!r}"
            self.refused.record(f"from {address.decode(errors='replace')}: {why}"
                                f"{f' ({key.decode()})' if key else ''}")
            reply = [b"400", b"not a host of this cluster", b""]
        self.sock.send([*envelope, version, rid, *reply, b""])

    def close(self) -> None:
        self.sock.close()
