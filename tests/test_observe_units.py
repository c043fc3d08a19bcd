"""Units of ``--metrics`` and ``--log-format``: the HTTP server's bounds, the Prometheus
exposition, the scrape's gathering, JSON log lines. (The whole of it, with real
processes, is in test_metrics.py.)"""

from __future__ import annotations

import json
import logging
import sys
import threading
import warnings

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster import exposition, logs, monitor, web
from cluster.address import IPv4Address
from cluster.defer import Deferred
from cluster.metrics import MAX_APP_SERIES, Histogram, appMetrics
from cluster.testing import Clock, StringTransport


def serve(routes: dict, data: bytes, local: str = "10.0.0.1",
          factory: web.WebFactory | None = None) -> tuple[bytes, StringTransport, Clock]:
    clock = Clock()
    factory = factory or web.WebFactory(clock, routes)
    proto = factory.buildProtocol(None)
    transport = StringTransport(hostAddress=IPv4Address("TCP", local, 9180))
    proto.makeConnection(transport)
    proto.dataReceived(data)
    return transport.value(), transport, clock


def hello() -> web.Response:
    return web.Response(b"hello")


def test_web_answers_get_and_head_then_closes():
    out, transport, _ = serve({"/x": hello}, b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 5" in head
    assert body == b"hello" and transport.disconnecting
    out, _, _ = serve({"/x": hello}, b"HEAD /x HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("request_, status", [
    (b"GET /nope HTTP/1.1\r\n\r\n", b"404"),
    (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", b"405"),
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /x SPDY/3\r\n\r\n", b"400"),
    (b"GET /x HTTP/1.1\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
])
def test_web_refuses_bad_requests_with_a_status(request_, status):
    out, transport, _ = serve({"/x": hello}, request_)
    assert out.split(b" ", 2)[1] == status and transport.disconnecting


def test_web_bounds_a_head_that_never_ends():
    out, transport, _ = serve({"/x": hello}, b"GET /x HTTP/1.1\r\n" + b"X: y\r\n" * 2000)
    assert out.startswith(b"HTTP/1.1 431") and transport.disconnecting


def test_web_closes_a_silent_client_after_the_head_timeout():
    out, transport, clock = serve({"/x": hello}, b"GET /x HT")
    assert out == b"" and not transport.disconnecting
    clock.advance(web.HEAD_TIMEOUT + 0.1)
    assert transport.aborted


@pytest.mark.parametrize("host, status", [
    (b"localhost:9180", b"200"), (b"127.0.0.1:9180", b"200"), (b"[::1]:9180", b"200"),
    (b"LOCALHOST", b"200"), (None, b"200"),
    (b"evil.example:9180", b"421"), (b"10.1.2.3:9180", b"421"), (b"", b"421")])
def test_web_on_loopback_answers_only_a_loopback_host(host, status):
    request = b"GET /x HTTP/1.1\r\n" + (b"Host: " + host + b"\r\n" if host is not None
                                        else b"") + b"\r\n"
    out, _, _ = serve({"/x": hello}, request, local="127.0.0.1")
    assert out.split(b" ", 2)[1] == status
    # elsewhere (bound to a routable address on purpose) any Host will do
    out, _, _ = serve({"/x": hello}, request, local="10.0.0.1")
    assert out.split(b" ", 2)[1] == b"200"


def test_web_refuses_connections_past_its_limit():
    factory = web.WebFactory(Clock(), {"/x": hello})
    factory.open = web.MAX_CONNECTIONS
    out, transport, _ = serve({}, b"", factory=factory)
    assert out.startswith(b"HTTP/1.1 503") and transport.disconnecting
    factory.open = web.MAX_CONNECTIONS - 1
    out, _, _ = serve({}, b"GET /x HTTP/1.1\r\n\r\n", factory=factory)
    assert out.startswith(b"HTTP/1.1 200")


def test_web_waits_for_a_deferred_answer_and_reports_a_failing_handler():
    d = Deferred()
    out, transport, clock = serve({"/x": lambda: d}, b"GET /x HTTP/1.1\r\n\r\n")
    assert out == b""
    clock.advance(web.HEAD_TIMEOUT + 1)  # the head came: no timeout while we gather
    assert not transport.aborted
    d.callback(web.Response(b"late"))
    assert transport.value().endswith(b"\r\n\r\nlate")

    def broken():
        raise RuntimeError("boom")

    out, _, _ = serve({"/x": broken}, b"GET /x HTTP/1.1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500")


def _status(rows: list[dict]) -> dict:
    base = {"pid": 1, "uptime": 1.0, "restarts": 0, "connections": 0, "cpu_percent": 0.0,
            "rss": 1000, "fds": 5, "accepted": 0, "requests": 0, "cpu_seconds": 0.5}
    return {"name": "c1", "processes": [{**base, **row} for row in rows]}


def _families(text: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_exposition_parses_and_labels_every_series():
    latency = Histogram((0.001, 0.01))
    for value in (0.0005, 0.002, 0.002, 5.0):
        latency.observe(value)
    rpc = {"calls": 4, "served": 2, "errors": {"RemoteError": 1, "TimeoutError": 0,
                                                "NodeLost": 2},
           "messages": 3, "items": 6, "latency": latency.snapshot(),
           "items_per_message": Histogram((1, 2)).snapshot()}
    status = _status([
        {"role": "supervisor", "node": "supervisor", "state": "running"},
        {"role": "gateway", "node": "gateway", "state": "running"},
        {"role": "worker", "node": "worker-0", "state": "running", "restarts": 2},
        {"role": "worker", "node": "worker-1", "state": "down", "pid": 0, "restarts": 1}])
    snapshots = {
        "gateway": {"accepted": 7, "outcomes": {"preferred": 6, "refused": 1},
                    "handed_to": {"worker-0": 6}, "rpc": None},
        "worker-0": {"open": 3, "accepted": 6, "requests": 40, "rpc": rpc,
                     "app": {"cluster_store_commands_total": ["command", {"GET": 30}],
                             "cluster_store_keys": 12}}}
    fams = _families(exposition.render(status, snapshots, "h1", 1))
    for fam in fams.values():
        for sample in fam.samples:
            assert {"cluster", "host", "node", "role"} <= sample.labels.keys(), sample
            assert sample.labels["cluster"] == "c1" and sample.labels["host"] == "h1"

    def value(family, name=None, **labels):
        fam = fams[family]
        return next(s.value for s in fam.samples if (name is None or s.name == name)
                    and labels.items() <= s.labels.items())

    assert value("cluster_up", node="worker-1") == 0 and value("cluster_up", node="gateway") == 1
    assert value("cluster_process_restarts", node="worker-0") == 2
    assert value("cluster_process_cpu_seconds", node="worker-0") == 0.5
    assert value("cluster_gateway_connections", outcome="refused") == 1
    assert value("cluster_gateway_handed_off", worker="worker-0") == 6
    assert value("cluster_requests", node="worker-0") == 40
    assert value("cluster_rpc_errors", kind="NodeLost") == 2
    assert value("cluster_rpc_latency_seconds", "cluster_rpc_latency_seconds_bucket",
                 le="0.01") == 3
    assert value("cluster_rpc_latency_seconds", "cluster_rpc_latency_seconds_count") == 4
    assert value("cluster_store_commands", command="GET") == 30
    assert fams["cluster_store_commands"].type == "counter"
    assert fams["cluster_store_keys"].type == "gauge"
    assert value("cluster_metrics_unanswered") == 1


def test_exposition_shows_one_process_per_node_during_a_reload():
    status = _status([
        {"role": "supervisor", "node": "supervisor", "state": "running"},
        {"role": "worker", "node": "worker-0", "state": "draining", "pid": 10, "rss": 1},
        {"role": "worker", "node": "worker-0", "state": "running", "pid": 11, "rss": 2},
        {"role": "worker", "node": "worker-1", "state": "running", "pid": 12, "rss": 3},
        {"role": "worker", "node": "worker-1", "state": "starting", "pid": 13, "rss": 4}])
    rss = _families(exposition.render(status, {}, "h", 0))[
        "cluster_process_resident_memory_bytes"]
    assert sorted((s.labels["node"], s.value) for s in rss.samples) == [
        ("supervisor", 1000), ("worker-0", 2), ("worker-1", 3)]


class _App:
    def __init__(self, value) -> None:
        self.value = value

    def metrics(self):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _Problems:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def record(self, detail: str) -> None:
        self.seen.append(detail)


def test_app_metrics_are_checked():
    good = {"ok_total": 3, "fam": ["label", {"a": 1, "b": 2.5}], "requests": 9}
    assert appMetrics(_App(good)) == good
    assert appMetrics(object()) == {}


@pytest.mark.parametrize("value, why", [
    (RuntimeError("no"), "RuntimeError: no"),
    ([1, 2], "must return a dict"),
    ({"bad name": 1}, "not a metric name"),
    ({"cluster_up": 1}, "not a metric name of its own"),
    ({"cluster_requests_total": 1}, "not a metric name of its own"),
    ({"_total": 1}, "not a metric name"),
    ({"flag": True}, "not a finite number"),
    ({"x": float("nan")}, "not a finite number"),
    ({"requests": float("inf")}, "not a finite number"),
    ({"fam": ["node", {"a": 1}]}, "not a label name of its own"),
    ({"fam": ["no good", {"a": 1}]}, "not a label name"),
    ({"fam": ["label", {"a": "1"}]}, "not a finite number"),
    ({"fam": ["label", {str(i): i for i in range(MAX_APP_SERIES + 1)}]}, "series"),
])
def test_a_bad_app_metrics_gives_nothing_and_says_why(value, why):
    problems = _Problems()
    assert appMetrics(_App(value), problems) == {}
    assert len(problems.seen) == 1 and why in problems.seen[0]


class _Channel:
    def __init__(self, ok: bool = True) -> None:
        self.sent: list = []
        self.ok = ok
        self.closed = False

    def send(self, msg):
        self.sent.append(msg)
        return self.ok


class _Child:
    def __init__(self, node: str, state: str = "running", ok: bool = True) -> None:
        self.node = node
        self.state = state
        self.channel = _Channel(ok)


class _Supervisor:
    def __init__(self, children: list) -> None:
        self.children = children
        self.reactor = Clock()


def _monitor(children: list) -> monitor.Monitor:
    m = monitor.Monitor.__new__(monitor.Monitor)  # no listening socket for this unit
    m.supervisor = _Supervisor(children)
    m.reactor = m.supervisor.reactor
    m.nextSeq = 0
    m.gatherings = {}
    return m


def test_a_scrape_costs_each_process_one_small_message():
    old = _Child("worker-0", "draining")
    children = [_Child("gateway"), old, _Child("worker-0"), _Child("worker-1"),
                _Child("worker-2", "starting")]
    m = _monitor(children)
    results = []
    m.gather().addCallback(results.append)
    assert old.channel.sent == [] and children[4].channel.sent == []  # the serving one only
    for child in children[:1] + children[2:4]:
        assert len(child.channel.sent) == 1
        assert len(msgpack.packb(child.channel.sent[0])) < 16
    seq = children[0].channel.sent[0][1]
    m.answered(children[0], seq, {"accepted": 1})
    m.answered(children[2], seq, {"open": 0})
    m.answered(children[2], seq, {"open": 99})  # a second answer changes nothing
    assert results == []
    m.answered(children[3], seq, {"open": 1})
    assert results[0].snapshots == {"gateway": {"accepted": 1}, "worker-0": {"open": 0},
                                    "worker-1": {"open": 1}}
    assert not m.gatherings


def test_a_scrape_does_not_wait_for_a_process_that_does_not_answer():
    children = [_Child("worker-0"), _Child("worker-1"), _Child("worker-2", ok=False)]
    m = _monitor(children)
    results = []
    m.gather().addCallback(results.append)
    m.answered(children[0], children[0].channel.sent[0][1], {"open": 0})
    assert results == []
    m.reactor.advance(monitor.ANSWER_WITHIN)
    assert list(results[0].snapshots) == ["worker-0"] and len(results[0].waiting) == 1
    assert results[0].unreachable == 1  # worker-2's channel would not take the request
    m.answered(children[1], children[1].channel.sent[0][1], {"open": 0})  # late: dropped
    assert list(results[0].snapshots) == ["worker-0"]


def test_scrapes_at_the_same_time_ask_each_process_once():
    children = [_Child("worker-0"), _Child("worker-1")]
    m = _monitor(children)
    results = []
    for _ in range(3):
        m.gather().addCallback(results.append)
    assert [len(c.channel.sent) for c in children] == [1, 1]
    for c in children:
        m.answered(c, c.channel.sent[0][1], {"open": 0})
    assert len(results) == 3 and all(r is results[0] for r in results)
    m.gather()  # the next scrape asks again
    assert [len(c.channel.sent) for c in children] == [2, 2]


def test_json_logs_are_one_object_per_line(capsys):
    logs.setup("worker", "INFO", "json", "worker-3")
    try:
        log = logging.getLogger("cluster.test")
        log.info("hello %s", "wörld")
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("it failed")
    finally:
        logs.setup("test", "WARNING")  # back to text for the other tests
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first.keys() == {"time", "level", "role", "node", "pid", "logger", "message"}
    assert first["message"] == "hello wörld" and first["role"] == "worker"
    assert first["node"] == "worker-3" and first["level"] == "INFO"
    assert first["logger"] == "cluster.test" and first["time"].endswith("Z")
    assert "ValueError: bad" in second["exc"] and second["level"] == "ERROR"


def test_json_logs_catch_uncaught_exceptions_and_warnings(capsys):
    logging.captureWarnings(False)  # pytest swaps warnings.showwarning around each test
    logs.setup("gateway", "INFO", "json", "gateway")
    try:
        try:
            raise KeyError("lost")
        except KeyError:
            sys.excepthook(*sys.exc_info())
        t = threading.Thread(target=lambda: 1 / 0, name="doomed")
        t.start()
        t.join()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
    finally:
        logs.setup("test", "WARNING")
        logging.captureWarnings(False)
    crash, thread, warning = (json.loads(line) for line in
                              capsys.readouterr().err.strip().splitlines())
    assert crash["level"] == "CRITICAL" and "KeyError: 'lost'" in crash["exc"]
    assert "doomed" in thread["message"] and "ZeroDivisionError" in thread["exc"]
    assert warning["logger"] == "py.warnings" and "old API" in warning["message"]
