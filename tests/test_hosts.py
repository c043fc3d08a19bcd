"""Several hosts as one cluster, on this machine's loopback: each host is its own
``cluster run`` (supervisor, gateway, workers, run directory), and the hosts are one
cluster for ``cluster.rpc`` and the default store. (Separate network namespaces, with
CurveZMQ on the wire: tests/test_hosts_netns.py.)"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest
import redis

from cluster import cli, config, curve
from cluster.harness import free_ports
from cluster.hosts import HostMap, shortHostname
from cluster.shards import ownerOf
from tests.test_rpc_cluster import APP, ask

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def hosts_toml(tmp_path, workers=2):
    """A cluster.toml naming hosts a and b at 127.0.0.1 (RPC on free ports)."""
    lines = [f"workers = {workers}"]
    base = free_ports(2)
    for i, name in enumerate("ab"):
        lines += ["[[hosts]]", f'name = "{name}"', f'rpc = "127.0.0.1:{base + i}"']
    path = tmp_path / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def start_hosts(run_cluster, tmp_path, target=None, workers=2, **options):
    path = hosts_toml(tmp_path, workers)
    hosts = [run_cluster(target, None, config=path, host=name, **options) for name in "ab"]
    for h in hosts:
        h.wait_until(every_host_serving(workers), 30, "every host up")
    return hosts


def every_host_serving(workers):
    """A status predicate: this host's and every other host's processes all run."""
    def serving(st):
        groups = [st["processes"], *(o["processes"] for o in st["hosts"])]
        return all(len(g) == workers + 2 and all(p["state"] == "running" for p in g)
                   for g in groups)
    return serving


def owner(key: str) -> str:
    """The node owning ``key`` in a two-host cluster of two workers each."""
    return HostMap([("a", 2), ("b", 2)], "a").names[ownerOf(key, 4)]


# -- configuration ----------------------------------------------------------------------------

def test_several_hosts_need_keys_off_loopback(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('workers = 1\n[[hosts]]\nname = "a"\nrpc = "10.1.2.3:7000"\n'
                    '[[hosts]]\nname = "b"\nrpc = "10.1.2.4:7000"\n')
    with pytest.raises(ValueError, match="plaintext.*curve-keys"):
        config.load(str(path), {"host": "a"})
    with pytest.raises(ValueError, match=r"this host \('c'\) is not among \[\[hosts\]\]"):
        config.load(str(path), {"host": "c"})


def test_several_hosts_need_one_worker_count_and_no_worker_ports(tmp_path):
    two = '[[hosts]]\nname = "a"\nrpc = "127.0.0.1:7000"\n[[hosts]]\nname = "b"\n' \
          'rpc = "127.0.0.1:7001"\n'
    path = tmp_path / "c.toml"
    path.write_text(two)
    with pytest.raises(ValueError, match="set workers"):
        config.load(str(path), {"host": "a"})
    path.write_text("workers = 2\n" + two)
    with pytest.raises(ValueError, match="worker-ports"):
        config.load(str(path), {"host": "a", "worker_ports": 7100})
    cfg = config.load(str(path), {"host": "b"})
    assert [h.name for h in cfg.hostList] == ["a", "b"] and cfg.worker_ports == 0
    path.write_text("workers = 1\n" + two.replace('name = "b"', 'name = "b"\nworkers = 3'))
    assert config.load(str(path), {"host": "b"}).workers == 3
    path.write_text("workers = 1\n" + two.replace("7001", "7000"))
    with pytest.raises(ValueError, match="same rpc address"):
        config.load(str(path), {"host": "a"})


def test_keys_generate_and_load(tmp_path, capsys):
    keys = tmp_path / "keys"
    for name in ("a", "b"):
        args = cli.parser().parse_args(["keys", "generate", str(keys), "--host", name])
        assert args.func(args) == 0
    assert "a.key_secret" in capsys.readouterr().out
    assert stat.S_IMODE(os.stat(keys / "a.key_secret").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o700
    with pytest.raises(ValueError, match="exists"):
        curve.generate(str(keys), "a")
    loaded = curve.Keys.load(str(keys), "a", ["a", "b"])
    assert loaded.hosts["b"] != loaded.public and loaded.known == set(loaded.hosts.values())
    (keys / "b.key").unlink()
    with pytest.raises(ValueError, match="b.key"):
        curve.Keys.load(str(keys), "a", ["a", "b"])


# -- one cluster over two hosts --------------------------------------------------------------

def test_rpc_spans_the_hosts(run_cluster, tmp_path):
    a, b = start_hosts(run_cluster, tmp_path, APP, route="round-robin")
    pids = {**a.pids(), **b.pids()}
    assert set(pids) == {"a/worker-0", "a/worker-1", "b/worker-0", "b/worker-1"}
    client = a.connect()
    assert ask(client, "bcast") == ("ok", {node: [node, pid] for node, pid in pids.items()})
    for i in range(20):
        key = f"user:{i}"
        assert ask(client, f"shard {key}") == ("ok", [owner(key), pids[owner(key)]])
    assert ask(client, "call b/worker-1 t.whereami") == ("ok", ["b/worker-1",
                                                                pids["b/worker-1"]])
    kind, text = ask(client, "call b/worker-0 t.boom far")
    assert kind == "err" and text.startswith("RemoteError KeyError")
    client.close()
    st = a.status()
    assert {p["host"] for p in st["processes"]} == {"a"}
    [other] = st["hosts"]
    assert other["name"] == "b" and other["state"] == "up"
    assert {p["node"]: p["pid"] for p in other["processes"] if p["role"] == "worker"} == \
        b.pids()
    table = cli.formatStatus(st)
    assert table.splitlines()[1].startswith("HOST") and "b/worker-1" in table


def kill_host(h) -> None:
    """Kill every process of one host at once (a machine gone), by PID."""
    procs = [psutil.Process(pid) for pid in {p["pid"] for p in h.status()["processes"]}
             if pid]
    for p in procs:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
    h.proc.wait(10)


def test_store_across_hosts_and_a_host_lost_and_back(run_cluster, tmp_path):
    a, b = start_hosts(run_cluster, tmp_path, heartbeat_timeout=3)
    ra, rb = (redis.Redis(port=h.port, socket_timeout=10) for h in (a, b))
    keys = [f"k{i}" for i in range(40)]
    ours = [k for k in keys if owner(k).startswith("a/")]
    theirs = [k for k in keys if owner(k).startswith("b/")]
    assert ours and theirs
    for k in keys:
        assert ra.set(k, f"v-{k}")
    assert [rb.get(k) for k in keys] == [f"v-{k}".encode() for k in keys]
    assert rb.mget(["{t}1", "{t}2"]) == [None, None]

    kill_host(b)
    a.wait_until(lambda st: st["hosts"][0]["state"] == "lost", 15, "host b lost")
    for k in theirs:
        with pytest.raises(redis.exceptions.ClusterDownError):  # -CLUSTERDOWN ...
            ra.get(k)
    for command in (ra.flushall, ra.keys, ra.randomkey):  # all or nothing, not a part
        with pytest.raises(redis.exceptions.ClusterDownError, match="b/worker-0 is not up"):
            command()
    assert [ra.get(k) for k in ours] == [f"v-{k}".encode() for k in ours]
    assert "host b lost" in a.logs()

    b2 = run_cluster(None, None, config=str(tmp_path / "cluster.toml"), host="b",
                     bind=f"127.0.0.1:{b.port}", heartbeat_timeout=3)
    for h in (a, b2):
        h.wait_until(every_host_serving(2), 30, "host b back")
    assert [ra.get(k) for k in theirs] == [None] * len(theirs)  # memory only: empty again
    assert ra.set(theirs[0], "again") and rb.get(theirs[0]) == b"again"
    assert [rb.get(k) for k in ours] == [f"v-{k}".encode() for k in ours]


# -- the supervisors' reports, one supervisor alone ------------------------------------------

class FakeRpc:
    """Stands in for the supervisor's RpcNode: the test answers each ``cluster.host`` call
    itself (the real link is exercised by the tests above)."""

    def __init__(self):
        from cluster.testing import Clock

        self.reactor = Clock()
        self.calls = []

    def callPeer(self, peer, method, args, kwargs, timeout):
        from cluster.defer import Deferred

        d = Deferred()
        self.calls.append((peer, method, d))
        return d


def test_host_reports_are_believed_only_from_the_host_asked(monkeypatch):
    from cluster import hostlink
    from cluster.hosts import Host

    now = [100.0]
    monkeypatch.setattr(hostlink.time, "monotonic", lambda: now[0])
    changes = []
    hosts = [Host("a", "127.0.0.1", 1, 2), Host("b", "127.0.0.1", 2, 2),
             Host("c", "127.0.0.1", 3, 2)]
    fake = FakeRpc()
    link = hostlink.HostLink(fake, hosts, "a", 16384, timeout=3.0, interval=0.5,
                             report=lambda: {"serving": {}, "others": [], "rows": []},
                             changed=lambda: changes.append(1))

    def report(host, incarnation="i1", **over):
        r = {"host": host, "incarnation": incarnation, "map": link.map,
             "serving": {f"{host}/worker-0": [11, "tcp://127.0.0.1:5000"]}, "others": [],
             "rows": [{"role": "worker", "node": f"{host}/worker-0", "state": "running"}]}
        return {**r, **over}

    def answer(name, value):
        link.tick()
        pending = [(p, d) for p, _, d in fake.calls if p.node == f"{name}/supervisor"
                   and not d.called]
        pending[-1][1].callback(value)

    answer("b", report("c"))  # b answering as c: not believed, for either
    answer("b", report("b", map=[["a", 2], ["c", 2], ["b", 2], 16384]))  # another order
    answer("b", report("b", map=[["a", 2], ["b", 3], ["c", 2], 16384]))  # other workers
    answer("b", report("b", serving={"b/worker-0": [11, "ipc:///x"]}))  # not tcp://
    answer("b", report("b", serving={"c/worker-0": [11, "tcp://127.0.0.1:5000"]}))
    answer("b", ["not", "a", "map"])
    assert link.serving() == {} and changes == []
    assert link.refused.total == 6

    answer("b", report("b"))
    assert link.serving() == {"b/worker-0": [11, "tcp://127.0.0.1:5000"]}
    assert len(changes) == 1 and link.status()[0]["state"] == "up"
    answer("b", report("b"))  # the same again: nothing to announce
    assert len(changes) == 1

    now[0] += 3.5  # silent past the timeout: lost, its workers leave the announcement
    link.tick()
    assert link.serving() == {} and len(changes) == 2
    assert {h["name"]: h["state"] for h in link.status()} == {"b": "lost", "c": "unknown"}
    answer("b", report("b", incarnation="i2"))  # restarted: serves again
    assert link.serving() == {"b/worker-0": [11, "tcp://127.0.0.1:5000"]}
    assert len(changes) == 3 and link.remotes["b"].incarnation == "i2"
    now[0] += 10  # our own loop stood still: the others' silence counts from now
    link.heardAll(now[0])
    link.tick()
    assert link.status()[0]["state"] == "up" and len(changes) == 3


def test_a_rolling_reload_of_one_host_moves_its_own_slots(run_cluster, tmp_path):
    a, b = start_hosts(run_cluster, tmp_path)
    ra = redis.Redis(port=a.port, socket_timeout=10)
    keys = [f"r{i}" for i in range(200)]
    assert {owner(k) for k in keys} == {"a/worker-0", "a/worker-1", "b/worker-0",
                                        "b/worker-1"}
    for k in keys:
        ra.set(k, k)
    old = b.pids()
    b.reload()
    assert set(b.pids().values()).isdisjoint(old.values())
    for h in (a, b):
        h.wait_until(every_host_serving(2), 30, "the reloaded host serving")
    assert [ra.get(k) for k in keys] == [k.encode() for k in keys]


def test_hosts_with_another_map_do_not_join(run_cluster, tmp_path):
    base = free_ports(2)
    entries = {name: ["[[hosts]]", f'name = "{name}"', f'rpc = "127.0.0.1:{base + i}"']
               for i, name in enumerate("ab")}
    for name, order in (("a", "ab"), ("b", "ba")):  # b lists the hosts in another order
        (tmp_path / f"{name}.toml").write_text(
            "\n".join(["workers = 2", *(line for h in order for line in entries[h])]) + "\n")
    a, b = (run_cluster(None, None, config=str(tmp_path / f"{n}.toml"), host=n) for n in "ab")
    for h in (a, b):
        h.wait_until(lambda st, h=h: "another shard map" in h.logs(), 15, "the refusal")
        assert h.status()["hosts"][0]["state"] == "unknown"
    key = next(f"o{i}" for i in range(100) if owner(f"o{i}").startswith("b/"))
    with pytest.raises(redis.exceptions.ClusterDownError):
        redis.Redis(port=a.port, socket_timeout=10).set(key, "x")


def test_a_host_paused_past_the_timeout_keeps_its_processes(run_cluster, tmp_path):
    a, b = start_hosts(run_cluster, tmp_path, heartbeat_timeout=3)
    procs = [psutil.Process(p["pid"]) for p in b.status()["processes"]]
    for p in procs:
        p.suspend()
    try:
        a.wait_until(lambda st: st["hosts"][0]["state"] == "lost", 15, "host b lost")
        time.sleep(1.5)  # b's own clocks now say its children were silent past 3 s
    finally:
        for p in procs:
            p.resume()
    for h in (a, b):
        h.wait_until(every_host_serving(2), 30, "host b back")
    assert {p["pid"] for p in b.status()["processes"]} == {p.pid for p in procs}
    assert "late: the silence of its children" in b.logs()


def test_key_routing_prefers_this_hosts_owner_of_the_key():
    from types import SimpleNamespace

    from gateway.routing import policy

    hosts = HostMap([("a", 2), ("b", 2)], "b")
    slots = [SimpleNamespace(index=i) for i in range(2)]
    keyed = policy("key", 16384, hosts)
    for i in range(50):
        key = f"user:{i}"
        first = keyed.order(slots, None, key, 2)[0].index
        node = owner(key)
        if node.startswith("b/"):  # b's own worker gets the key's connections
            assert first == int(node[-1])
        else:  # another host owns it: any of b's workers (it calls the owner)
            assert first == 0


def test_status_ready_is_about_this_host_only(run_cluster, tmp_path):
    a, b = start_hosts(run_cluster, tmp_path, heartbeat_timeout=3)

    def ready(h):
        return subprocess.run([sys.executable, "-m", "cluster", "status", "--ready",
                               "--name", h.name], capture_output=True, timeout=30).returncode

    assert ready(a) == 0 and ready(b) == 0
    kill_host(b)
    a.wait_until(lambda st: st["hosts"][0]["state"] == "lost", 15, "host b lost")
    assert ready(a) == 0  # another host's loss does not make this one unready
    st = a.status()
    assert cli.isReady(st)
    st["processes"][-1]["state"] = "down"  # a worker of this host down: not ready
    assert not cli.isReady(st)
    st["processes"] = [p for p in st["processes"] if p["role"] != "gateway"]
    assert not cli.isReady(st)


def test_blocked_pops_of_a_lost_hosts_clients_end_though_pids_repeat():
    from cluster.store.blocking import Blocked
    from cluster.store.keyspace import Keyspace
    from cluster.testing import Clock

    waits = Blocked(Keyspace())
    clock = Clock()
    ours = waits.block([b"BLPOP", b"q", b"0"], False, ("a/worker-0", 100, 1), clock)
    theirs = waits.block([b"BLPOP", b"q", b"0"], False, ("b/worker-0", 100, 2), clock)
    ended = []
    theirs.addCallback(ended.append)
    waits.forgetGone({("a/worker-0", 100)}.__contains__)  # host b is gone; pid 100 too
    assert ended and b"UNBLOCKED" in ended[0]
    assert not ours.called and list(waits.byToken) == [("a/worker-0", 100, 1)]


def test_settings_of_several_hosts_are_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("workers = 1\n")
    with pytest.raises(ValueError, match=r"\[\[hosts\]\]"):
        config.load(str(path), {"curve_keys": str(tmp_path)})
    path.write_text('workers = 1\n[[hosts]]\nname = "a"\nrpc = "0.0.0.0:7000"\n')
    with pytest.raises(ValueError, match="dial"):
        config.load(str(path), {"host": "a"})
    with pytest.raises(ValueError, match="name"):
        curve.generate(str(tmp_path / "keys"), "../x")
    me = shortHostname()
    path.write_text(f'[[hosts]]\nname = "{me}"\nrpc = "127.0.0.1:7000"\nworkers = 3\n')
    cfg = config.load(str(path), {})
    assert cfg.host == me and cfg.workers == 3  # --host: the short hostname by default


def test_curve_on_loopback(run_cluster, tmp_path):
    """CurveZMQ without namespaces: calls work, an unknown key is refused and logged."""
    import zmq

    keys = tmp_path / "keys"
    for name in "ab":
        curve.generate(str(keys), name)
    a, b = start_hosts(run_cluster, tmp_path, APP, curve_keys=str(keys))
    pids = {**a.pids(), **b.pids()}
    client = a.connect()
    assert ask(client, "call b/worker-0 t.whereami") == ("ok", ["b/worker-0",
                                                                pids["b/worker-0"]])
    rpc_port = next(h.port for h in config.load(a.options["config"], {"host": "a"}).hostList
                    if h.name == "a")
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.curve_serverkey = curve.Keys.load(str(keys), "a", ["a", "b"]).public
    sock.connect(f"tcp://127.0.0.1:{rpc_port}")
    sock.send(b"\x92\x01\x90")  # [1, []]: a message that would be answered if let in
    try:
        a.wait_until(lambda st: "refused an RPC connection from 127.0.0.1: an unknown CURVE "
                     "key" in a.logs(), 15, "the refusal in the log")
        assert not sock.poll(500)
    finally:
        sock.close()


def test_an_ipv6_rpc_address_binds(tmp_path):
    from cluster.reactor import reactor
    from cluster.rpc import RpcNode

    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    node = RpcNode(reactor, "b/worker-0", str(tmp_path), 1,
                   hostMap=HostMap([("a", 1), ("b", 1)], "b"), remoteAt="tcp://[::1]:*")
    try:
        assert node.remoteEndpoint.startswith("tcp://[::1]:")
    finally:
        node.close()


def test_calls_to_another_host_share_one_message_with_curve(runner, tmp_path):
    """Batching per peer and per reactor iteration holds for a peer on another host
    (tcp://, CurveZMQ), as for one of this host."""
    from cluster.defer import ensureDeferred
    from cluster.rpc import RpcNode, expose

    expose("t.hostecho")(lambda value: value)
    keys = tmp_path / "keys"
    for name in "ab":
        curve.generate(str(keys), name)
    r = runner.reactor

    def node(name, **kw):
        return RpcNode(r, f"{name}/worker-0", str(tmp_path), 1,
                       hostMap=HostMap([("a", 1), ("b", 1)], name),
                       keys=curve.Keys.load(str(keys), name, ["a", "b"]), **kw).start()

    b = node("b", remoteAt="tcp://127.0.0.1:*")
    a = node("a")
    a.setPeers({"b/worker-0": [os.getpid(), b.remoteEndpoint]})
    n = a.batchLimit - 1

    async def go():
        sent = a.messagesSent
        ds = [a.callRemote("b/worker-0", "t.hostecho", (i,), {}) for i in range(n)]
        return [await d for d in ds], a.messagesSent - sent, b.messagesSent

    try:
        assert runner.run_until(ensureDeferred(go()), 10) == (list(range(n)), 1, 1)
    finally:
        a.close()
        b.close()
