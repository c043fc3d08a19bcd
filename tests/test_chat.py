"""The chat example over the gateway: many clients, two workers, rooms and private
messages across workers."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

USERS = 30


def login(cluster, name):
    client = cluster.connect()
    assert client.line() == b"HELLO say LOGIN name"
    client.send(f"LOGIN {name}\n".encode())
    assert client.line() == f"OK welcome {name}".encode()
    return client


def test_rooms_and_private_messages_across_workers(run_cluster):
    c = run_cluster("examples.chat:factory", workers=2, route="round-robin")
    clients = {f"u{i}": login(c, f"u{i}") for i in range(USERS)}
    # round-robin put them on both workers (the counts come with the next heartbeat)
    c.wait_until(lambda st: all(p["connections"] > 0 for p in st["processes"]
                                if p["role"] == "worker"), 5, "connections on both workers")

    # a second login with a taken name is refused, whichever worker it lands on
    dup = c.connect()
    dup.line()
    dup.send(b"LOGIN u3\n")
    assert dup.line() == b"ERR u3 is taken"
    dup.close()

    for client in clients.values():
        client.send(b"JOIN lobby\n")
        assert client.line() == b"OK joined lobby"
    clients["u0"].send(b"SAY lobby hello everyone\n")
    clients["u1"].send(b"SAY lobby hi u0\n")
    for name, client in clients.items():
        got = {client.line(), client.line()}  # in order per publisher, not across them
        assert got == {b"MSG lobby u0: hello everyone", b"MSG lobby u1: hi u0"}, name

    # private messages, each to a user who may well be on the other worker
    names = list(clients)
    for i, sender in enumerate(names):
        to = names[(i + 7) % USERS]
        clients[sender].send(f"TELL {to} psst from {sender}\n".encode())
        assert clients[to].line() == f"FROM {sender}: psst from {sender}".encode()
        assert clients[sender].line() == b"OK sent"
    clients["u0"].send(b"TELL nobody hi\n")
    assert clients["u0"].line() == b"ERR no user nobody"

    # a user who left is unregistered: the name is free again
    clients.pop("u5").close()
    for _ in range(50):
        again = c.connect()
        again.line()
        again.send(b"LOGIN u5\n")
        if again.line() == b"OK welcome u5":
            again.close()
            break
        again.close()
    else:
        raise AssertionError("u5 was never freed")
    for client in clients.values():
        client.close()
