"""Two hosts as separate network namespaces (made by the test, joined by a veth pair, with
addresses inside the namespaces only), each running its own ``cluster run`` with CurveZMQ
keys: clients in one namespace reach keys the other host owns through either gateway; an
unknown key and a plaintext peer are refused; the bytes on the veth do not show the values
the hosts exchange. Needs root (``ip netns``); skipped with the reason otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest

from cluster import curve
from cluster import netns as netnsmod
from cluster.hosts import HostMap
from cluster.shards import ownerOf
from tests.test_hosts import every_host_serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

RPC_PORT, REDIS_PORT = 7000, 6380


@pytest.fixture(scope="module")
def netns():
    """Two namespaces ``{"a": Namespace, "b": Namespace}`` joined by a veth pair."""
    try:
        with netnsmod.pair() as spaces:
            yield spaces
    except netnsmod.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def keys(netns, tmp_path_factory):
    """Both hosts' certificates, made as a user would (``cluster keys generate``)."""
    keys = tmp_path_factory.mktemp("keys")
    for name in netns:
        subprocess.run([sys.executable, "-m", "cluster", "keys", "generate", str(keys),
                        "--host", name], check=True, timeout=30)
    return keys


def start_pair(netns, keys, run_cluster, directory, target=None, ports=0, **options):
    """Host a and host b, each its own ``cluster run`` in its own namespace (on the
    usual ports + ``ports``)."""
    lines = ["workers = 2", f'curve-keys = "{keys}"']
    for name, ns in netns.items():
        lines += ["[[hosts]]", f'name = "{name}"', f'rpc = "{ns.address}:{RPC_PORT + ports}"']
    path = directory / "cluster.toml"
    path.write_text("\n".join(lines) + "\n")
    hosts = {name: run_cluster(target, None, prefix=ns.prefix, config=str(path), host=name,
                               bind=f"{ns.address}:{REDIS_PORT + ports}", **options)
             for name, ns in netns.items()}
    for h in hosts.values():
        h.wait_until(every_host_serving(2), 40, "both hosts up")
    return hosts


@pytest.fixture(scope="module")
def two_hosts(netns, keys, run_cluster_module, tmp_path_factory):
    """The default store on hosts a and b."""
    return start_pair(netns, keys, run_cluster_module, tmp_path_factory.mktemp("hosts"))


def in_ns(netns, name: str, *argv: str, timeout: float = 30) -> str:
    out = subprocess.run([*netns[name].prefix, *argv], capture_output=True, text=True,
                         timeout=timeout, check=True)
    return out.stdout


def owner(key: str) -> str:
    return HostMap([("a", 2), ("b", 2)], "a").names[ownerOf(key, 4)]


CAPTURE = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
    s.bind((sys.argv[1], 0))
    s.settimeout(0.2)
    print("capturing", flush=True)
    frames, deadline = [], time.monotonic() + float(sys.argv[3])
    while time.monotonic() < deadline:
        try:
            frames.append(s.recv(65536))
        except socket.timeout:
            pass
    open(sys.argv[2], "wb").write(b"".join(len(f).to_bytes(4, "big") + f for f in frames))
""")


def test_clients_reach_the_other_hosts_keys_and_the_wire_is_encrypted(netns, two_hosts,
                                                                       tmp_path):
    addr_a, addr_b, if_a = netns["a"].address, netns["b"].address, netns["a"].interface
    secret = f"secret-{uuid.uuid4().hex}"
    keys = [f"{{u{i}}}:name" for i in range(12)]
    theirs = [k for k in keys if owner(k).startswith("b/")]
    assert theirs
    dump = tmp_path / "wire"
    capture = subprocess.Popen([*netns["a"].prefix, sys.executable, "-c", CAPTURE, if_a,
                                str(dump), "4"], stdout=subprocess.PIPE, text=True)
    try:
        assert capture.stdout.readline().strip() == "capturing"
        for k in theirs:  # a client in a's namespace, through a's gateway (over lo)
            assert in_ns(netns, "a", "redis-cli", "-h", addr_a, "-p", str(REDIS_PORT),
                         "set", k, f"{secret}-{k}").strip() == "OK"
    finally:
        capture.wait(20)
    # read back through both gateways, from a's namespace (b's is across the veth: after
    # the capture, since redis-cli's own traffic is plaintext)
    for k in theirs:
        for address in (addr_a, addr_b):
            assert in_ns(netns, "a", "redis-cli", "-h", address, "-p", str(REDIS_PORT),
                         "get", k).strip() == f"{secret}-{k}"
    raw = dump.read_bytes()
    frames, at = [], 0
    while at < len(raw):
        n = int.from_bytes(raw[at:at + 4], "big")
        frames.append(raw[at + 4:at + 4 + n])
        at += 4 + n
    # frames of TCP between the two hosts' addresses: the RPC traffic was captured ...
    a_bytes, b_bytes = (bytes(map(int, x.split("."))) for x in (addr_a, addr_b))
    between = [f for f in frames if len(f) > 34 and f[23] == 6 and {f[26:30], f[30:34]}
               == {a_bytes, b_bytes}]
    assert sum(len(f) for f in between) > 2000, f"{len(frames)} frames, {len(between)} TCP"
    # ... and none of it shows what was written
    assert secret.encode() not in raw
    assert not any(k.encode() in raw for k in theirs)


PROBE = textwrap.dedent("""
    import sys, msgpack, zmq
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    if sys.argv[2] == "curve":
        public, secret = zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = sys.argv[3].encode()
    sock.connect(sys.argv[1])
    report = {"host": "b", "incarnation": "x", "workers": 2, "serving": {}, "others": [],
              "rows": []}
    sock.send(msgpack.packb([1, [["call", 1, "cluster.host", [report], {}]]]))
    print("answered" if sock.poll(3000) else "no answer")
""")


@pytest.mark.parametrize("how", ["curve", "plaintext"])
def test_a_peer_without_a_hosts_key_is_refused(netns, keys, two_hosts, how):
    a = two_hosts["a"]
    public = curve.Keys.load(str(keys), "a", ["a", "b"]).public.decode()
    endpoint = f"tcp://{netns['a'].address}:{RPC_PORT}"
    before = a.logs().count("refused an RPC connection")
    for _ in range(2):
        out = in_ns(netns, "b", sys.executable, "-c", PROBE, endpoint, how, public)
        assert out.strip() == "no answer"
    if how == "curve":  # the handshake reached ZAP, which said no, and said so in the log
        deadline = time.monotonic() + 10
        while a.logs().count("refused an RPC connection") == before:
            assert time.monotonic() < deadline, a.log_tail()
            time.sleep(0.1)
        assert f"from {netns['b'].address}: an unknown CURVE key" in a.logs()
        # once per episode (then a count), not once per knock
        lines = [line for line in a.logs().splitlines()
                 if "refused an RPC connection" in line and "more like it" not in line]
        assert len(lines) == before + 1
    assert all(o["state"] == "up" for o in a.status()["hosts"])  # the real b still is


ASK = textwrap.dedent("""
    import json, socket, sys
    f = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30).makefile("rwb")
    for line in sys.argv[3:]:
        f.write(line.encode() + b"\\n")
        f.flush()
        print(f.readline().decode().rstrip("\\n"), flush=True)
""")


def ask_in(netns, name: str, host, *lines: str) -> list:
    """Send ``tests.rpcapps`` command lines to ``host``'s gateway from namespace ``name``;
    its replies as ("ok", value) or ("err", text)."""
    out = in_ns(netns, name, sys.executable, "-c", ASK, host.host, str(host.port), *lines)
    replies = []
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        replies.append((kind, json.loads(rest)) if kind == "ok" else (kind, rest))
    return replies


def test_rpc_across_hosts_and_a_host_killed_and_back(netns, keys, run_cluster, tmp_path):
    hosts = start_pair(netns, keys, run_cluster, tmp_path, "tests.rpcapps:factory", ports=1,
                       heartbeat_timeout=3)
    a, b = hosts["a"], hosts["b"]
    pids = {**a.pids(), **b.pids()}
    words = [f"k{i}" for i in range(16)]
    theirs = [k for k in words if owner(k).startswith("b/")]
    ours = [k for k in words if owner(k).startswith("a/")]
    replies = ask_in(netns, "a", a, "bcast", *(f"shard {k}" for k in words))
    assert replies[0] == ("ok", {node: [node, pid] for node, pid in pids.items()})
    assert replies[1:] == [("ok", [owner(k), pids[owner(k)]]) for k in words]

    procs = [psutil.Process(p["pid"]) for p in b.status()["processes"]]
    for p in procs:  # host b's whole process tree, at once
        p.kill()
    psutil.wait_procs(procs, timeout=10)
    a.wait_until(lambda st: st["hosts"][0]["state"] == "lost", 15, "host b lost")
    replies = ask_in(netns, "a", a, *(f"shard {k}" for k in theirs + ours))
    assert all(kind == "err" and text.startswith("NodeLost")
               for kind, text in replies[:len(theirs)]), replies
    assert replies[len(theirs):] == [("ok", [owner(k), pids[owner(k)]]) for k in ours]

    b2 = run_cluster("tests.rpcapps:factory", None, prefix=netns["b"].prefix,
                     config=b.options["config"], host="b", bind=f"{b.host}:{b.port}",
                     heartbeat_timeout=3)
    for h in (a, b2):
        h.wait_until(every_host_serving(2), 40, "host b back")
    back = b2.pids()
    assert ask_in(netns, "a", a, *(f"shard {k}" for k in theirs)) == [
        ("ok", [owner(k), back[owner(k)]]) for k in theirs]


def test_a_partition_makes_no_second_owner(netns, keys, run_cluster, tmp_path):
    """The veth goes down: each side serves its own slots and answers -CLUSTERDOWN for
    the other's (nobody takes them over); once it is up again both serve, and what each
    side wrote meanwhile is where it was written."""
    hosts = start_pair(netns, keys, run_cluster, tmp_path, ports=2, heartbeat_timeout=3)
    a, b = hosts["a"], hosts["b"]
    port = REDIS_PORT + 2
    ka = next(f"p{i}" for i in range(100) if owner(f"p{i}").startswith("a/"))
    kb = next(f"p{i}" for i in range(100) if owner(f"p{i}").startswith("b/"))

    def cli(name, host, *command):
        return in_ns(netns, name, "redis-cli", "-h", netns[host].address, "-p", str(port),
                     *command).strip()

    subprocess.run(["ip", "-n", netns["a"].name, "link", "set", netns["a"].interface,
                    "down"], check=True, timeout=30)
    try:
        for h in (a, b):
            h.wait_until(lambda st: st["hosts"][0]["state"] == "lost", 20, "the partition")
        assert cli("a", "a", "set", ka, "from-a") == "OK"
        assert cli("b", "b", "set", kb, "from-b") == "OK"
        assert cli("a", "a", "set", kb, "x").startswith("CLUSTERDOWN")
        assert cli("b", "b", "get", ka).startswith("CLUSTERDOWN")
    finally:
        subprocess.run(["ip", "-n", netns["a"].name, "link", "set", netns["a"].interface,
                        "up"], check=True, timeout=30)
    for h in (a, b):
        h.wait_until(every_host_serving(2), 30, "the hosts together again")
    for via in ("a", "b"):
        assert cli("a", via, "get", ka) == "from-a" and cli("a", via, "get", kb) == "from-b"
