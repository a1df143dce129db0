"""The HTTP live view on real sockets: routes, token, /health, /metrics, the live stream, and
clients that misbehave (slowloris, abandoned, 200 at once, 1,100 idle)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from csi_edge.report import NodeReport
from csi_edge.sinks.health import evaluate
from csi_edge.sinks.http import HttpSink


def _report(node: str = "10.0.0.7#3", **kw) -> NodeReport:
    base = dict(
        t=time.time(),
        node=node,
        presence=True,
        motion=False,
        breathing_bpm=14.2,
        breathing_conf=0.8,
        reason="heart: low confidence",
        link={"rssi": -48, "rate_hz": 20.0, "online": True, "frames": 100, "lost": 1},
    )
    base.update(kw)
    return NodeReport(**base)


def _status(**kw) -> dict:
    st = {
        "t": time.time(),
        "uptime_s": 30.0,
        "sources": {"udp 127.0.0.1:5005": {"datagrams": 100}},
        "frames": 100,
        "nodes": {"10.0.0.7#3": {"online": True, "rate_hz": 20.0, "frames": 100, "lost": 1,
                                 "loss_ratio": 0.0099, "last_seen": time.time(), "rssi": -48}},
        "skipped": {"bad-magic": 3},
        "kernel_drops": 0,
        "mqtt": None,
        "report": {"period_s": 1.01, "lag_s": 0.01, "frame_age_s": 0.02, "last_t": time.time()},
    }
    st.update(kw)
    return st


def _get(url: str, headers: dict | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def sink():
    s = HttpSink(port=0, status=_status)
    yield s
    s.close()


def test_page_state_history_and_404(sink):
    sink.publish([_report(), _report(node="/dev/ttyUSB0", presence=False)])
    assert _wait(lambda: len(sink.snapshot()["nodes"]) == 2)
    code, headers, page = _get(sink.url)
    assert code == 200 and b"csi-edge live" in page and b"/api/stream" in page
    assert b"http://" not in page.replace(b"http://www.w3.org", b"")  # no CDN: all served here
    code, _, body = _get(sink.url + "api/state")
    state = json.loads(body)
    assert set(state["nodes"]) == {"10.0.0.7#3", "/dev/ttyUSB0"}
    assert state["nodes"]["/dev/ttyUSB0"]["presence"] is False
    sink.publish([_report(breathing_bpm=15.0)])
    assert _wait(lambda: len(json.loads(_get(sink.url + "api/history")[2])["nodes"]["10.0.0.7#3"]) == 2)
    hist = json.loads(_get(sink.url + "api/history")[2])["nodes"]["10.0.0.7#3"]
    assert [p["b"] for p in hist] == [14.2, 15.0] and hist[0]["p"] is True
    assert _get(sink.url + "nope")[0] == 404


def test_health_is_503_until_the_first_report_then_ok(sink):
    code, _, body = _get(sink.url + "health")
    assert code == 503 and json.loads(body)["status"] == "starting"
    sink.publish([_report()])
    assert _wait(lambda: _get(sink.url + "health")[0] == 200)
    h = json.loads(_get(sink.url + "health")[2])
    assert h["status"] == "ok" and h["nodes"]["10.0.0.7#3"]["online"] is True
    assert h["report"]["lag_s"] == 0.01 and h["problems"] == []


def test_health_rules():
    now = 1000.0
    ok = evaluate(_status(), now - 0.5, now, 1.0)
    assert ok["status"] == "ok"
    stalled = evaluate(_status(), now - 10.0, now, 1.0)  # a frozen loop keeps no status fresh
    assert stalled["status"] == "unhealthy" and "stalled" in stalled["problems"][0]
    offline = _status(nodes={"a": {"online": False}, "b": {"online": True}})
    assert evaluate(offline, now, now, 1.0)["status"] == "degraded"
    none_online = _status(nodes={"a": {"online": False}})
    assert evaluate(none_online, now, now, 1.0)["status"] == "unhealthy"
    silent = _status(nodes={}, uptime_s=60.0)
    assert evaluate(silent, now, now, 1.0)["status"] == "unhealthy"
    fresh = _status(nodes={}, uptime_s=2.0)
    assert evaluate(fresh, now, now, 1.0)["status"] == "degraded"
    broker = _status(mqtt={"connected": False, "broker": "h:1883"})
    assert evaluate(broker, now, now, 1.0)["problems"] == ["MQTT broker h:1883 not connected"]


def test_metrics_are_prometheus_text_with_the_documented_names(sink):
    from prometheus_client.parser import text_string_to_metric_families

    from csi_edge.app.timing import TimedModel

    class Model:
        def run(self, x):
            return x * 2

        other = "passed through"

    timed = TimedModel(Model(), "test-model")
    assert timed.run(21) == 42 and timed.other == "passed through"
    sink.publish([_report()])
    assert _wait(lambda: _get(sink.url + "health")[0] == 200)
    code, headers, body = _get(sink.url + "metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {}
    for fam in text_string_to_metric_families(body.decode()):
        for smp in fam.samples:
            samples.setdefault(smp.name, []).append(smp)
    for name in ("csi_edge_build_info", "csi_edge_frames_received_total", "csi_edge_skipped_total",
                 "csi_edge_node_up", "csi_edge_node_frame_rate_hertz", "csi_edge_node_loss_ratio",
                 "csi_edge_node_last_frame_timestamp_seconds", "csi_edge_report_lag_seconds",
                 "csi_edge_inference_seconds_bucket", "csi_edge_kernel_drops_total",
                 "csi_edge_node_lost_frames_total", "csi_edge_http_connections"):
        assert name in samples, name
    skipped = {s.labels["reason"]: s.value for s in samples["csi_edge_skipped_total"]}
    assert skipped == {"bad-magic": 3.0}
    assert samples["csi_edge_build_info"][0].labels["version"]
    assert samples["csi_edge_node_up"][0].labels == {"node": "10.0.0.7#3"}
    count = [s for s in samples["csi_edge_inference_seconds_count"] if s.labels["model"] == "test-model"]
    assert count[0].value == 1.0
    assert "csi_edge_mqtt_connected" not in samples  # no MQTT configured: not exported as 0


def test_token_is_required_off_loopback_and_kept_in_the_state_dir():
    from csi_edge.sinks.http_token import token_path

    s = HttpSink("0.0.0.0", 0)
    try:
        token = token_path().read_text().strip()
        assert s.token == token and len(token) >= 24
        assert token_path().stat().st_mode & 0o077 == 0
        url = f"http://127.0.0.1:{s.port}/"
        code, _, body = _get(url + "health")
        assert code == 401 and b"csi-edge status --token" in body
        assert _get(url + "health", {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(url + "health", {"Authorization": f"Bearer {token}"})[0] == 503  # no report yet
        code, headers, _ = _get(url + f"?token={token}")
        assert code == 200 and "csi_edge_token=" in headers["Set-Cookie"]
        cookie = headers["Set-Cookie"].split(";")[0]
        assert _get(url + "api/state", {"Cookie": cookie})[0] == 200
    finally:
        s.close()
    again = HttpSink("0.0.0.0", 0)  # generated once: the same token next time
    try:
        assert again.token == token
    finally:
        again.close()
    local = HttpSink("127.0.0.1", 0)
    try:
        assert local.token is None and _get(local.url + "api/state")[0] == 200
    finally:
        local.close()


class _Stream:
    """A live-stream client (http.client reads the chunked body for us)."""

    def __init__(self, sink) -> None:
        import http.client

        self.conn = http.client.HTTPConnection(sink.host, sink.port, timeout=10)
        self.conn.request("GET", "/api/stream")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.headers["Content-Type"].startswith("text/event-stream")

    def next(self) -> dict:
        lines = []
        while True:
            line = self.resp.fp.readline()
            if line == b"":
                raise EOFError
            if line in (b"\n", b"\r\n"):
                if lines:
                    return json.loads(b"".join(lines))
                continue
            if line.startswith(b"data: "):
                lines.append(line[6:].strip())

    def close(self) -> None:
        self.conn.close()


def test_live_stream_pushes_every_report(sink):
    sink.publish([_report(breathing_bpm=12.0)])
    assert _wait(lambda: sink.snapshot()["nodes"])
    stream = _Stream(sink)
    try:
        assert stream.next()["nodes"]["10.0.0.7#3"]["breathing_bpm"] == 12.0  # latest at once
        for bpm in (13.0, 14.0):
            sink.publish([_report(breathing_bpm=bpm)])
            ev = stream.next()
            assert ev["nodes"]["10.0.0.7#3"]["breathing_bpm"] == bpm and "health" in ev
    finally:
        stream.close()


@pytest.mark.slow
def test_slowloris_clients_are_closed_and_the_page_stays_reachable():
    sink = HttpSink(port=0, idle_timeout_s=1.0)
    try:
        slow = []
        for _ in range(20):
            s = socket.create_connection((sink.host, sink.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            slow.append(s)
        for i in range(3):  # dribbling one header byte at a time does not keep it open
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(b"X-a: b\r\n"[i : i + 1])
            assert _get(sink.url)[0] == 200
            time.sleep(0.3)

        def closed(s: socket.socket) -> bool:
            s.settimeout(10)
            try:
                return s.recv(1) == b""
            except (ConnectionResetError, BrokenPipeError):
                return True
            except TimeoutError:
                return False

        assert all(closed(s) for s in slow)  # the server hung up on every one
        assert sink.guard.closed_idle >= 20
        assert _get(sink.url)[0] == 200
    finally:
        for s in slow:
            s.close()
        sink.close()


def test_abandoned_connections_leave_no_tracebacks(sink, caplog):
    sink.publish([_report()])
    assert _wait(lambda: sink.snapshot()["nodes"])
    with caplog.at_level(logging.DEBUG):
        for path in ("/", "/api/state", "/metrics", "/api/stream", "/health"):
            for _ in range(10):
                s = socket.create_connection((sink.host, sink.port))
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()  # RST before reading the answer
        for _ in range(5):  # streams whose reader vanishes mid-stream
            _Stream(sink).close()
        for i in range(3):
            sink.publish([_report(breathing_bpm=10.0 + i)])
            time.sleep(0.1)
        s = socket.create_connection((sink.host, sink.port))
        s.sendall(b"\x16\x03\x01garbage that is not HTTP\r\n\r\n")
        s.recv(100)
        s.close()
        assert _get(sink.url + "api/state")[0] == 200
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_200_concurrent_clients_all_get_answers(sink):
    sink.publish([_report(node=f"n{i}") for i in range(16)])
    assert _wait(lambda: len(sink.snapshot()["nodes"]) == 16)
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(200)

    def client(i: int) -> None:
        barrier.wait()
        path = ("", "api/state", "health", "metrics")[i % 4]
        code = _get(sink.url + path, timeout=30)[0]
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(codes) == 200 and set(codes) == {200}


@pytest.mark.slow
def test_1100_idle_connections_do_not_lock_out_the_page_or_the_stream():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2600:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    sink = HttpSink(port=0, status=_status)
    idle: list[socket.socket] = []
    try:
        stream = _Stream(sink)
        for _ in range(1100):
            idle.append(socket.create_connection((sink.host, sink.port)))
        assert _wait(lambda: len(sink.guard.server.connections) <= 256 + 1, 10)
        for i in range(3):
            assert _get(sink.url, timeout=10)[0] == 200
            sink.publish([_report(breathing_bpm=20.0 + i)])
            ev = stream.next()  # the stream still gets every report
            assert ev["nodes"]["10.0.0.7#3"]["breathing_bpm"] == 20.0 + i
        assert sink.guard.closed_over_limit >= 1100 - 256
        stream.close()
    finally:
        for s in idle:
            s.close()
        sink.close()


def test_forgotten_nodes_leave_state_and_history_so_churn_stays_bounded(sink):
    """A day of node churn (every node reboots under a new key, the old key is forgotten): the
    sink keeps only the live nodes' state and history, not every key it has ever seen."""
    live: list[str] = []
    for gen in range(50):  # 50 generations x 4 nodes x 30 reports
        keys = [f"10.0.{gen}.{i}#1" for i in range(4)]
        for _ in range(30):
            sink.publish([_report(node=k) for k in keys])
        sink.forget(live)
        live = keys
    want = set(live)
    assert _wait(lambda: set(sink.snapshot()["nodes"]) == want)
    hist = json.loads(_get(sink.url + "api/history")[2])["nodes"]
    assert set(hist) == want and all(len(v) == 30 for v in hist.values())
    assert len(sink._history) == 4  # retained size: the live nodes only
