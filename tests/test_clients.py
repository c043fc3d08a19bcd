"""CLIENT ID, INFO, LIST, KILL, SETNAME over every worker, beside a real redis-server
for the replies Redis defines (errors, the fields a line holds)."""

from __future__ import annotations

import time

import pytest
import redis

from tests.conftest import worker_port
from tests.redisoracle import assert_same, replies

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_client_errors_answer_as_redis(stores, oracle):
    script = [["CLIENT", "BOGUS"], ["CLIENT", "KILL"], ["CLIENT", "KILL", "1.2.3.4:5"],
              ["CLIENT", "KILL", "ID", "999999"], ["CLIENT", "KILL", "ID", "x"],
              ["CLIENT", "KILL", "TYPE", "bogus"], ["CLIENT", "KILL", "ADDR"],
              ["CLIENT", "LIST", "TYPE", "bogus"], ["CLIENT", "LIST", "ID", "x"],
              ["CLIENT", "SETNAME", "a b"], ["CLIENT", "SETNAME", "a", "b"],
              ["CLIENT", "SETNAME", "ok"], ["CLIENT", "GETNAME"], ["CLIENT", "NO-EVICT", "on"],
              ["CLIENT", "NO-EVICT", "maybe"], ["CLIENT", "ID", "x"]]
    assert_same(script, replies(stores[2].port, script), replies(oracle, script))


def test_client_list_and_kill_see_every_worker(stores, oracle):
    c = stores[2]
    conns = [redis.Redis(port=p, socket_timeout=10, single_connection_client=True)
             for p in (worker_port(c, 0), worker_port(c, 1), c.port, c.port)]
    for i, r in enumerate(conns):
        r.client_setname(f"conn{i}")
    me = conns[2]
    ids = [r.client_id() for r in conns]
    assert len(set(ids)) == 4 and all(i > 0 for i in ids)
    listed = {entry["name"]: entry for entry in me.client_list()}
    assert {f"conn{i}" for i in range(4)} <= set(listed)
    reference = redis.Redis(port=oracle, socket_timeout=10).client_list()[0]
    assert set(reference) >= set(listed["conn0"]) - {"resp"}  # Redis's own field names
    assert int(listed["conn1"]["id"]) == ids[1] and listed["conn2"]["cmd"] == "client|list"
    info = me.client_info()
    assert info["name"] == "conn2" and int(info["id"]) == ids[2]
    assert [e["name"] for e in me.client_list(client_id=[ids[0], ids[3]])] in (
        ["conn0", "conn3"], ["conn3", "conn0"])
    assert me.client_kill_filter(_id=ids[1]) == 1  # on the other worker
    assert me.client_kill_filter(_id=ids[2]) == 0  # SKIPME yes: not itself
    addr = listed["conn3"]["addr"]
    assert me.client_kill(addr) is True
    time.sleep(0.2)
    names = {e["name"] for e in me.client_list()}
    assert "conn1" not in names and "conn3" not in names and "conn0" in names
    # (redis-py reconnects by itself: the killed ones come back as new connections)
    assert conns[1].client_id() != ids[1] and conns[3].client_id() != ids[3]
    assert conns[0].client_id() == ids[0] and me.client_id() == ids[2]
    for r in conns:
        r.close()
