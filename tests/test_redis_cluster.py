"""Redis Cluster's slot scheme in the default store: hash slots and hash tags exactly as a
real redis-server in cluster mode computes them (the oracle), the CLUSTER commands a
client asks, COMMAND's key positions, and redis-py's RedisCluster working through the
gateway's port."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster

from cluster.harness import free_port, free_ports
from cluster.shards import SLOTS, keySlot, ownerOf, slotOf
from tests.redisoracle import redis_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TRICKY = [b"", b"foo", b"{user1}:a", b"{user1}:b", b"{}x", b"a{}b", b"{a}{b}", b"x{",
          b"}{q}", b"{{x}}", b"{x", b"a}b{c}", b"\x00{\xff}", "ключ".encode(), b"{" * 10]


@pytest.fixture(scope="module")
def redis_cluster_node(tmp_path_factory):
    """A real redis-server started in cluster mode: CLUSTER KEYSLOT is the reference."""
    directory = tmp_path_factory.mktemp("redis-cluster")
    with redis_server("--cluster-enabled", "yes", "--cluster-config-file",
                      os.path.join(directory, "nodes.conf"), "--dir", str(directory),
                      "--cluster-port", str(free_port())) as port:  # (not port + 10000)
        client = redis.Redis(port=port, socket_timeout=10)
        yield client
        client.close()


@pytest.fixture(scope="module")
def store(run_cluster_module):
    """The default store without worker ports: the gateway's port is the one node."""
    return run_cluster_module(None, workers=2, route="round-robin", worker_ports=0)


def sample_keys() -> list[bytes]:
    rnd = random.Random(7)
    keys = list(TRICKY)
    for _ in range(300):
        raw = bytes(rnd.choice(b"ab{}:xyz\x00\xfe") for _ in range(rnd.randint(0, 12)))
        keys.append(raw)
    keys += [f"user:{i}".encode() for i in range(100)]
    return keys


def test_the_slot_of_every_key_is_redis_clusters(redis_cluster_node, store):
    ours = redis.Redis(port=store.port, socket_timeout=10)
    for key in sample_keys():
        expected = redis_cluster_node.execute_command("CLUSTER", "KEYSLOT", key)
        assert keySlot(key) == expected, key
        assert slotOf(key) == expected
        assert ours.execute_command("CLUSTER", "KEYSLOT", key) == expected, key
    ours.close()


def test_keys_with_one_hash_tag_share_a_worker_and_a_transaction(store):
    keys = [f"{{order:{i}}}:{field}" for i in range(20) for field in ("items", "total")]
    for i in range(0, len(keys), 2):
        assert ownerOf(keys[i], 2) == ownerOf(keys[i + 1], 2)
    assert {ownerOf(k, 2) for k in keys} == {0, 1}  # the tags spread over both workers
    r = redis.Redis(port=store.port, socket_timeout=10)
    for i in range(0, len(keys), 2):
        p = r.pipeline(transaction=True)
        p.set(keys[i], "3 apples")
        p.incrby(keys[i + 1], 3)
        assert p.execute() == [True, 3]
    r.close()


def test_count_and_get_keys_in_a_slot_ask_its_owner(store):
    r = redis.Redis(port=store.port, socket_timeout=10)
    r.flushall()
    for tag in ("a", "b", "c", "d", "e", "f"):  # several slots, on both workers
        keys = [f"{{{tag}}}:{i}" for i in range(5)]
        r.mset(dict.fromkeys(keys, 1))
        slot = keySlot(tag.encode())
        assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 5
        got = r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 3)
        assert len(got) == 3 and {k.decode() for k in got} <= set(keys)
    assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", keySlot(b"nothing")) == 0
    for bad in ([SLOTS], [-1], ["x"]):
        with pytest.raises(redis.ResponseError, match="slot"):
            r.execute_command("CLUSTER", "COUNTKEYSINSLOT", *bad)
    with pytest.raises(redis.ResponseError, match="unknown subcommand"):
        r.execute_command("CLUSTER", "NOSUCH")
    r.close()


def test_cluster_info_slots_nodes_and_stable_ids(store):
    r = redis.Redis(port=store.port, socket_timeout=10)
    info = r.execute_command("CLUSTER", "INFO").decode()
    assert "cluster_state:ok" in info and f"cluster_slots_assigned:{SLOTS}" in info
    slots = r.execute_command("CLUSTER", "SLOTS")
    assert slots == [[0, SLOTS - 1, [b"127.0.0.1", store.port, slots[0][2][2]]]]
    nodes = r.execute_command("CLUSTER", "NODES")
    assert f"127.0.0.1:{store.port}" in str(nodes) and "myself,master" in str(nodes)
    ids = set()
    for _ in range(6):  # round-robin: connections on both workers
        c = redis.Redis(port=store.port, socket_timeout=10)
        ids.add(c.execute_command("CLUSTER", "MYID"))
        c.close()
    assert len(ids) == 2 and all(len(i) == 40 for i in ids)
    store.reload()
    after = set()
    for _ in range(6):
        c = redis.Redis(port=store.port, socket_timeout=10)
        after.add(c.execute_command("CLUSTER", "MYID"))
        c.close()
    assert after == ids  # a worker index keeps its id across a reload
    r.close()


def test_command_describes_keys_as_redis_does(redis_cluster_node, store):
    ours = redis.Redis(port=store.port, socket_timeout=10)
    for args in (["GET", "k"], ["SET", "k", "v", "EX", "10"], ["MSET", "a", "1", "b", "2"],
                 ["MGET", "a", "b", "c"], ["DEL", "a", "b"], ["EXISTS", "x"],
                 ["EXPIRE", "k", "5"], ["INCRBY", "k", "2"]):
        assert ours.command_getkeys(*args) == redis_cluster_node.command_getkeys(*args), args
    for args in (["COMMAND", "INFO", "nope"], ["COMMAND", "GETKEYS", "GET", "a", "b"],
                 ["COMMAND", "GETKEYS"], ["COMMAND", "COUNT", "x"],
                 ["COMMAND", "GETKEYS", "PING"], ["COMMAND", "GETKEYS", "NOPE", "a"],
                 ["COMMAND", "NOPE"]):
        assert raw(ours, args) == raw(redis_cluster_node, args), args
    assert len(raw(ours, ["COMMAND", "INFO"])) == len(raw(ours, ["COMMAND"]))
    names = {c.decode() for c in ours.command_list()}
    theirs = redis_cluster_node.command()
    for name, info in ours.command().items():
        assert name in names
        reference = theirs[name]
        for field in ("arity", "first_key_pos", "last_key_pos", "step_count"):
            assert info[field] == reference[field], (name, field)
    ours.close()


def test_every_command_the_store_runs_is_described():
    from cluster.store import commandinfo, commands, server

    known = {n.lower() for n in [*commands.SINGLE_KEY, *server.CONNECTION_COMMANDS]}
    assert known == set(commandinfo.TABLE)


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_rediscluster_works_through_the_gateway(store, protocol):
    rc = RedisCluster(host="127.0.0.1", port=store.port, protocol=protocol)
    try:
        keys = [f"rc{protocol}:{i}" for i in range(50)]
        for k in keys:
            rc.set(k, k)
        assert [rc.get(k) for k in keys] == [k.encode() for k in keys]
        assert rc.mget("{t}:1", "{t}:2") == [None, None]
        p = rc.pipeline()
        for k in keys[:10]:
            p.incr(k + ":n")
        assert p.execute() == [1] * 10
        assert rc.keyslot("{user1}:a") == keySlot(b"user1")
    finally:
        rc.close()


def test_redis_cli_in_cluster_mode(store):
    out = subprocess.run(["redis-cli", "-c", "-p", str(store.port), "set", "{x}:1", "v"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "OK"
    out = subprocess.run(["redis-cli", "-c", "-p", str(store.port), "get", "{x}:1"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == "v"


@pytest.fixture(scope="module")
def nodes(run_cluster_module):
    """The default store with each worker also on its own port (a Redis Cluster node)."""
    base = free_ports(3)
    c = run_cluster_module(None, workers=2, worker_ports=base)
    c.base = base
    return c


def test_cluster_slots_advertise_each_workers_port(nodes):
    for port in (nodes.port, nodes.base, nodes.base + 1):  # gateway and workers alike
        r = redis.Redis(port=port, socket_timeout=10)
        slots = r.execute_command("CLUSTER", "SLOTS")
        assert [(a, b, node[1]) for a, b, node in slots] == [
            (0, 8191, nodes.base), (8192, SLOTS - 1, nodes.base + 1)]
        assert "cluster_known_nodes:2" in r.execute_command("CLUSTER", "INFO").decode()
        r.close()
    me = redis.Redis(port=nodes.base + 1).execute_command("CLUSTER", "NODES").decode()
    assert f"127.0.0.1:{nodes.base + 1}@0 myself,master" in me
    assert nodes.status()["worker_ports"] == nodes.base


def test_a_worker_port_redirects_what_it_does_not_own(nodes):
    k0, k1 = keys_on(0, 1)[0], keys_on(1, 1)[0]
    w0 = redis.Redis(port=nodes.base, socket_timeout=10)
    assert w0.set(k0, "here")
    with pytest.raises(redis.exceptions.MovedError,
                       match=rf"^{keySlot(k1.encode())} 127.0.0.1:{nodes.base + 1}$"):
        w0.set(k1, "there")
    with pytest.raises(redis.ResponseError, match="same slot"):
        w0.mget(k0, keys_on(0, 2)[1])  # one worker, but two slots: as Redis Cluster
    tag = next(t for t in (f"t{i}" for i in range(100)) if ownerOf(t, 2) == 0)
    assert w0.mget(f"{{{tag}}}:1", f"{{{tag}}}:2") == [None, None]  # one slot, its own
    assert w0.execute_command("READONLY") and w0.execute_command("ASKING")
    w0.close()


def keys_on(worker: int, n: int) -> list[str]:
    return [k for k in (f"key:{i}" for i in range(2000)) if ownerOf(k, 2) == worker][:n]


def remote_commands(nodes) -> list[int]:
    out = []
    for port in (nodes.base, nodes.base + 1):
        r = redis.Redis(port=port, socket_timeout=10)
        out.append(int(r.info()["remote_commands"]))
        r.close()
    return out


@pytest.mark.parametrize("protocol", [2, 3])
def test_rediscluster_talks_to_each_owner_with_no_hop_between_workers(nodes, protocol):
    rc = RedisCluster(host="127.0.0.1", port=nodes.port, protocol=protocol)
    try:
        assert {n.port for n in rc.get_nodes()} == {nodes.base, nodes.base + 1}
        before = remote_commands(nodes)
        keys = [f"direct{protocol}:{i}" for i in range(200)]
        for k in keys:
            rc.set(k, k)
        assert [rc.get(k) for k in keys] == [k.encode() for k in keys]
        assert rc.mget("{d}:1", "{d}:2") == [None, None]
        assert remote_commands(nodes) == before  # every command ran where its key lives
    finally:
        rc.close()


def test_a_reload_keeps_each_worker_on_its_port_and_rediscluster_serving(nodes):
    def pid_at(port):
        r = redis.Redis(port=port, socket_timeout=10)
        try:
            return int(r.info("server")["process_id"])
        finally:
            r.close()

    before = [pid_at(nodes.base), pid_at(nodes.base + 1)]
    errors: list[str] = []
    done = threading.Event()
    served = [0]

    def load():
        rc = RedisCluster(host="127.0.0.1", port=nodes.base)
        i = 0
        while not done.is_set():
            key = f"reload:{i % 500}"
            try:
                rc.set(key, i)
                rc.get(key)
                served[0] += 1
            except Exception as e:  # noqa: BLE001 - reported by the assert below
                errors.append(repr(e))
            i += 1
        rc.close()

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.5)
        nodes.reload()
        time.sleep(0.5)
    finally:
        done.set()
        t.join(30)
    assert errors == [] and served[0] > 100
    after = [pid_at(nodes.base), pid_at(nodes.base + 1)]
    assert set(after).isdisjoint(before)
    assert after == [nodes.pids()["worker-0"], nodes.pids()["worker-1"]]


def test_redis_benchmark_in_cluster_mode_never_hops(nodes):
    before = remote_commands(nodes)
    out = subprocess.run(["redis-benchmark", "--cluster", "-p", str(nodes.base), "-t",
                          "set,get", "-n", "20000", "-r", "1000", "-P", "8", "-q"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SET:" in out.stdout and "GET:" in out.stdout and "ERR" not in out.stdout
    assert remote_commands(nodes) == before


def test_rediscluster_recovers_from_a_killed_worker_and_follows_ttin_and_ttou(run_cluster):
    base = free_ports(4)
    c = run_cluster(None, workers=2, worker_ports=base)
    rc = RedisCluster(host="127.0.0.1", port=c.port)
    try:
        keys = [f"{{p{i % 40}}}:{i}" for i in range(400)]  # 40 tags over both workers
        for k in keys:
            rc.set(k, k)
        # TTIN: a third worker takes a third of the slots, with their keys
        c.proc.send_signal(signal.SIGTTIN)
        c.wait_until(lambda st: sum(p["role"] == "worker" and p["state"] == "running"
                                    for p in st["processes"]) == 3, 20, "worker-2")
        deadline = time.monotonic() + 20
        while len(redis.Redis(port=c.port).execute_command("CLUSTER", "SLOTS")) != 3:
            assert time.monotonic() < deadline, "CLUSTER SLOTS never showed worker-2"
            time.sleep(0.1)
        assert [rc.get(k) for k in keys] == [k.encode() for k in keys]  # MOVED, refresh
        assert base + 2 in {n.port for n in rc.get_nodes()}
        # TTOU: back to two, the keys come back with their slots
        c.proc.send_signal(signal.SIGTTOU)
        c.wait_until(lambda st: sum(p["role"] == "worker" for p in st["processes"]) == 2,
                     20, "back to two workers")
        assert [rc.get(k) for k in keys] == [k.encode() for k in keys]
        # a killed worker comes back empty on its port; the client goes on
        victim = c.pids()["worker-1"]
        c.kill("worker-1")
        c.wait_until(lambda st: any(p["node"] == "worker-1" and p["state"] == "running"
                                    and p["pid"] != victim for p in st["processes"]), 20,
                     "worker-1's replacement")
        on1 = [k for k in keys if ownerOf(k, 2) == 1]
        deadline = time.monotonic() + 20
        while True:
            try:
                assert rc.get(on1[0]) is None  # lost with its worker: memory only
                break
            except (redis.ConnectionError, redis.ClusterDownError, redis.TimeoutError):
                assert time.monotonic() < deadline, "the client never recovered"
                time.sleep(0.2)
        rc.set(on1[0], "again")
        assert rc.get(on1[0]) == b"again"
        kept = [k for k in keys if ownerOf(k, 2) == 0]
        assert [rc.get(k) for k in kept] == [k.encode() for k in kept]
    finally:
        rc.close()


def test_redis_cli_follows_moved_from_one_worker_port_to_another(nodes):
    key = keys_on(1, 1)[0]

    def cli(*args):
        return subprocess.run(["redis-cli", *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    assert cli("-p", str(nodes.base), "set", key, "v").startswith(
        f"MOVED {keySlot(key.encode())} 127.0.0.1:{nodes.base + 1}")
    assert cli("-c", "-p", str(nodes.base), "set", key, "v") == "OK"
    assert cli("-c", "-p", str(nodes.base), "get", key) == "v"


def test_ttin_right_after_ttou_takes_the_port_back(run_cluster):
    base = free_ports(3)
    c = run_cluster(None, workers=3, worker_ports=base)
    busy = redis.Redis(port=base + 2, socket_timeout=10)  # a client of the removed worker
    assert busy.ping()
    c.proc.send_signal(signal.SIGTTOU)
    time.sleep(0.3)
    c.proc.send_signal(signal.SIGTTIN)  # queued behind the TTOU, which must free the port
    c.wait_until(lambda st: sum(p["role"] == "worker" and p["state"] == "running"
                                for p in st["processes"]) == 3 and not st["operation"], 30,
                 "worker-2 back")
    deadline = time.monotonic() + 10
    while True:
        try:
            assert redis.Redis(port=base + 2, socket_timeout=5).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, c.logs()
            time.sleep(0.1)
    assert "Address already in use" not in c.logs()
    busy.close()


def raw(client: redis.Redis, args: list[str]):
    """A reply without redis-py's parsing (an error as its text, up to the first '.')."""
    conn = client.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        try:
            return conn.read_response()
        except redis.ResponseError as e:
            return str(e).split(".")[0]
    finally:
        client.connection_pool.release(conn)


def test_a_worker_port_that_is_taken_turns_worker_ports_off_not_the_ttin(run_cluster):
    base = free_ports(3)
    c = run_cluster(None, workers=2, worker_ports=base)
    rc = RedisCluster(host="127.0.0.1", port=c.port)
    keys = [f"taken:{i}" for i in range(100)]
    try:
        for k in keys:
            rc.set(k, k)
        with socket.socket() as squatter:  # what an outgoing connection's local port does
            squatter.bind(("127.0.0.1", base + 2))
            squatter.listen()
            c.proc.send_signal(signal.SIGTTIN)
            c.wait_until(lambda st: st["workers"] == 3 and st["operation"] is None, 30,
                         "the TTIN")
        assert c.status()["worker_ports"] is None
        assert "worker ports are off" in c.logs()
        w0 = redis.Redis(port=base, socket_timeout=10)  # no more MOVED: a proxy port now
        assert [w0.get(k) for k in keys] == [k.encode() for k in keys]
        assert w0.execute_command("CLUSTER", "SLOTS")[0][:2] == [0, SLOTS - 1]
        w0.close()
        rc.close()
        rc = RedisCluster(host="127.0.0.1", port=c.port)  # a new client: the gateway
        assert [rc.get(k) for k in keys] == [k.encode() for k in keys]
    finally:
        rc.close()
