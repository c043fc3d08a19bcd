"""TLS in the cluster: workers do the handshake after the handoff (the gateway never
decrypts); the default store over TLS with redis-py and redis-cli --tls; key routing by
the SNI server name, peeked from the ClientHello."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time

import pytest
import redis

from cluster.shards import ownerOf

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def tls_options(certs):
    return ("--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"])


def test_the_default_store_speaks_tls_to_redis_py_and_redis_cli(run_cluster, certs):
    c = run_cluster(None, workers=2, route="round-robin", extra=tls_options(certs))
    client = redis.Redis(port=c.port, ssl=True, ssl_ca_certs=certs["ca.pem"],
                         socket_timeout=10)
    for i in range(20):  # keys on both workers, connections on both
        client.set(f"k{i}", f"v{i}")
    assert [client.get(f"k{i}") for i in range(20)] == [b"v%d" % i for i in range(20)]
    client.close()
    out = subprocess.run(["redis-cli", "--tls", "--cacert", certs["ca.pem"], "-p",
                          str(c.port), "GET", "k7"], capture_output=True, text=True,
                         timeout=20)
    assert out.stdout.strip() == "v7", out.stderr
    # a client that does not speak TLS is closed; the others are fine
    plain = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    plain.sendall(b"*1\r\n$4\r\nPING\r\n")
    answer = b""
    while chunk := plain.recv(100):  # at most a TLS alert, then the end
        answer += chunk
    assert b"PONG" not in answer and (not answer or answer[0] == 0x15)  # 0x15: alert
    plain.close()
    again = redis.Redis(port=c.port, ssl=True, ssl_ca_certs=certs["ca.pem"])
    assert again.ping()
    again.close()


def test_key_routing_over_tls_uses_the_server_name(run_cluster, certs):
    c = run_cluster("tests.clusterapps:whoami", workers=2, route="key",
                    extra=tls_options(certs))
    pids = c.pids()
    context = ssl.create_default_context(cafile=certs["ca.pem"])
    context.check_hostname = False  # the names below route; the certificate is for localhost
    seen = {}
    for i in range(12):
        name = f"user{i}"
        raw = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        conn = context.wrap_socket(raw, server_hostname=name)
        greeting = conn.makefile("rb").readline()
        seen[name] = int(greeting)
        conn.close()
        assert seen[name] == pids[f"worker-{ownerOf(name, 2)}"], (name, seen[name], pids)
    assert set(seen.values()) == set(pids.values())
    # names are case-insensitive: USER1 goes where user1 went
    upper = context.wrap_socket(socket.create_connection(("127.0.0.1", c.port), timeout=10),
                                server_hostname="USER1")
    assert int(upper.makefile("rb").readline()) == seen["user1"]
    upper.close()
    # a client by IP address sends no server name: served, by the owner of the empty key
    anonymous = context.wrap_socket(socket.create_connection(("127.0.0.1", c.port),
                                                             timeout=10))
    assert int(anonymous.makefile("rb").readline()) == pids[f"worker-{ownerOf(b'', 2)}"]
    anonymous.close()
    # half a ClientHello, then the end: closed at once, not at the 5 s preamble timeout
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = context.wrap_bio(incoming, outgoing, server_hostname="user1")
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    partial = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    partial.sendall(outgoing.read()[:40])
    partial.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    try:
        assert partial.recv(100) == b""
    except ConnectionResetError:
        pass  # closed with the peeked bytes unread: the kernel answers with a reset
    assert time.monotonic() - started < 3
    partial.close()
