"""Home Assistant availability that tells the truth, against a real mosquitto the test starts.

A dead node must never come back as live after a gateway restart, an unknown presence must show
as unknown (not "Clear"), and an entity that can never have a value is not announced.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from csi_edge.report import NodeReport
from csi_edge.sinks.mqtt import MqttConfig, MqttSink

CLI = [sys.executable, "-m", "csi_edge"]


class Broker:
    """A subscriber that records every message (in order) and the latest payload per topic."""

    def __init__(self, host: str, port: int, topics=("#",), client_id: str = "test-watch"):
        import paho.mqtt.client as mqtt

        self.lock = threading.Lock()
        self.log: list[tuple[str, str, bool]] = []  # (topic, payload, retained)
        self.last: dict[str, str] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            p = msg.payload.decode()
            self.log.append((msg.topic, p, bool(msg.retain)))
            self.last[msg.topic] = p

    def get(self, topic: str) -> str | None:
        with self.lock:
            return self.last.get(topic)

    def seq(self, topic: str) -> list[str]:
        with self.lock:
            return [p for t, p, _ in self.log if t == topic]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(host: str, port: int, topic_filter: str, settle: float = 1.0) -> dict[str, str]:
    """What a client connecting now (Home Assistant after a restart) gets as retained."""
    b = Broker(host, port, (topic_filter,), client_id=f"retained-{time.monotonic_ns()}")
    time.sleep(settle)
    b.close()
    with b.lock:
        return {t: p for t, p, r in b.log if r and p != ""}


def _wait(pred, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _report(node: str, online: bool = True, **kw) -> NodeReport:
    base = dict(
        t=time.time(),
        node=node,
        presence=True,
        motion=False,
        breathing_bpm=14.2,
        breathing_conf=0.8,
        link={"rssi": -48, "rate_hz": 20.0, "frames": 100, "online": online},
    )
    base.update(kw)
    return NodeReport(**base)


def _avail(gw: str, node_slug: str) -> str:
    return f"csi-edge/{gw}/nodes/{node_slug}/availability"


def _killed_gateway(host: str, port: int, gw: str, nodes: list[str]) -> None:
    """A gateway process that publishes ``nodes`` as live, then dies by SIGKILL (no clean
    offline: only the broker's last will), like a power cut."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from csi_edge.report import NodeReport
        from csi_edge.sinks.mqtt import MqttConfig, MqttSink
        sink = MqttSink(MqttConfig(host={host!r}, port={port}, gateway_id={gw!r}))
        while not sink.client.is_connected():
            time.sleep(0.02)
        sink.publish([NodeReport(t=time.time(), node=n, presence=True,
                                 link={{"online": True, "frames": 50}}) for n in {nodes!r}])
        time.sleep(0.5)
        print("published", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "published"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


@pytest.mark.slow
def test_node_that_died_while_the_gateway_was_down_stays_offline_after_restart(mosquitto):
    host, port = mosquitto
    gw = "gw-a"
    _killed_gateway(host, port, gw, ["10.0.0.7#1", "10.0.0.8#2"])
    before = retained(host, port, f"csi-edge/{gw}/#")
    # what HA would see: the gateway's last will, and both nodes still "online" (retained)
    assert before[f"csi-edge/{gw}/status"] == "offline"
    assert before[_avail(gw, "10_0_0_7_1")] == "online"
    assert before[_avail(gw, "10_0_0_8_2")] == "online"

    watch = Broker(host, port, (f"csi-edge/{gw}/#",))
    time.sleep(0.3)
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        status = f"csi-edge/{gw}/status"
        assert _wait(lambda: sink.client.is_connected() and watch.get(status) == "online")
        # both nodes were set offline BEFORE the gateway said online: no instant where HA shows
        # the previous run's values as live
        with watch.lock:
            log = [(t, p) for t, p, _ in watch.log]
        online_at = log.index((status, "online"))
        for s in ("10_0_0_7_1", "10_0_0_8_2"):
            assert log.index((_avail(gw, s), "offline")) < online_at, log
        # only node 1 is alive: it goes online once it has sent frames since this start
        for _ in range(3):
            sink.publish([_report("10.0.0.7#1")])
            time.sleep(0.3)
        assert _wait(lambda: watch.get(_avail(gw, "10_0_0_7_1")) == "online")
        time.sleep(1.0)
        after = retained(host, port, f"csi-edge/{gw}/#")
        assert after[status] == "online"
        assert after[_avail(gw, "10_0_0_7_1")] == "online"
        assert after[_avail(gw, "10_0_0_8_2")] == "offline"  # and stays so
        assert watch.seq(_avail(gw, "10_0_0_8_2"))[-1] == "offline"
        assert sink.marked_offline == 2
    finally:
        sink.close()
        watch.close()
    final = retained(host, port, f"csi-edge/{gw}/#")
    assert final[f"csi-edge/{gw}/status"] == "offline"
    assert final[_avail(gw, "10_0_0_7_1")] == "offline"  # a clean stop takes its nodes along


def test_node_that_goes_quiet_or_is_forgotten_becomes_unavailable(mosquitto):
    host, port = mosquitto
    gw = "gw-q"
    watch = Broker(host, port, (f"csi-edge/{gw}/#",))
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1"), _report("n#2")])
        assert _wait(lambda: watch.get(_avail(gw, "n_1")) == "online")
        assert _wait(lambda: watch.get(_avail(gw, "n_2")) == "online")
        sink.publish([_report("n#1", online=False), _report("n#2")])  # ingest: node 1 silent
        assert _wait(lambda: watch.get(_avail(gw, "n_1")) == "offline")
        sink.forget(["n#2"])
        assert _wait(lambda: watch.get(_avail(gw, "n_2")) == "offline")
        # availability is published on change only, not once a second
        assert watch.seq(_avail(gw, "n_1")) == ["online", "offline"]
    finally:
        sink.close()
        watch.close()


def test_inventory_nodes_that_never_send_are_offline_from_the_start(mosquitto):
    host, port = mosquitto
    gw = "gw-inv"
    sink = MqttSink(
        MqttConfig(host=host, port=port, gateway_id=gw, known_nodes=("mac_aabbccddeeff",))
    )
    try:
        assert _wait(sink.client.is_connected)
        got = {}
        assert _wait(
            lambda: (
                got.update(retained(host, port, f"csi-edge/{gw}/#", 0.3))
                or got.get(f"csi-edge/{gw}/status") == "online"
            )
        )
        assert got[_avail(gw, "mac_aabbccddeeff")] == "offline"
    finally:
        sink.close()


def _render(template: str, state: dict) -> str:
    """Render a discovery value_template the way Home Assistant does (Jinja2, value_json)."""
    jinja2 = pytest.importorskip("jinja2")
    return jinja2.Environment().from_string(template).render(value_json=state)


@pytest.mark.slow
def test_unknown_presence_is_published_as_unknown_not_clear(mosquitto):
    host, port = mosquitto
    gw = "gw-u"
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1", presence=None, motion=None, breathing_bpm=None)])
        topic = f"csi-edge/{gw}/nodes/n_1/state"
        device_topic = f"homeassistant/device/csi_edge_{gw}_n_1/config"
        got: dict[str, str] = {}
        assert _wait(
            lambda: got.update(retained(host, port, "#", 0.3)) or {topic, device_topic} <= set(got)
        )
    finally:
        sink.close()
    state = json.loads(got[topic])
    assert state["presence"] is None and state["motion"] is None
    device = json.loads(got[device_topic])
    disc = device["cmps"]
    # HA's MQTT binary_sensor and sensor: a rendered "None" is the unknown state
    assert _render(disc["presence"]["value_template"], state) == "None"
    assert _render(disc["motion"]["value_template"], state) == "None"
    assert _render(disc["breathing"]["value_template"], state) == "None"
    assert _render(disc["presence"]["value_template"], {**state, "presence": False}) == "OFF"
    assert _render(disc["presence"]["value_template"], {**state, "presence": True}) == "ON"
    # shared by every component of the device config
    assert device["availability_mode"] == "all"
    assert [a["topic"] for a in device["availability"]] == [
        f"csi-edge/{gw}/status",
        _avail(gw, "n_1"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("heart", [False, True])
def test_heart_rate_is_announced_only_when_enabled(mosquitto, heart):
    host, port = mosquitto
    gw = "gw-h"
    heart_topic = f"homeassistant/sensor/csi_edge_{gw}_n_1/heart_rate/config"
    # an older gateway announced it: it must go away when heart rate is off
    pre = Broker(host, port, ("x/none",), client_id="pre")
    pre.publish(heart_topic, json.dumps({"name": "Heart rate"}), retain=True)
    pre.close()
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw, heart_rate=heart))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1")])
        device = f"homeassistant/device/csi_edge_{gw}_n_1/config"
        got: dict[str, str] = {}
        assert _wait(
            lambda: got.update(retained(host, port, "homeassistant/#", 0.3)) or device in got
        )
        time.sleep(0.3)
        got = retained(host, port, "homeassistant/#", 0.5)
    finally:
        sink.close()
    assert heart_topic not in got  # the old per-entity config is gone either way
    cmps = json.loads(got[device])["cmps"]
    assert ("heart_rate" in cmps) is heart
    if heart:
        assert cmps["heart_rate"]["unit_of_measurement"] == "bpm"
    sensors = {w: c for w, c in cmps.items() if c["p"] == "sensor" and w != "last_frame"}
    assert sensors and all(c["expire_after"] == 30 for c in sensors.values())
    assert "expire_after" not in cmps["last_frame"]  # it must still read when the node is quiet
    assert cmps["rssi"]["state_class"] == "measurement"


@pytest.mark.slow
def test_a_real_gateway_restart_does_not_resurrect_a_dead_node(tmp_path, mosquitto):
    """End to end: `csi-edge run` with two simulated nodes, SIGKILL, node 2 dies meanwhile, the
    gateway restarts with only node 1 sending."""
    from conftest import free_port

    host, port = mosquitto
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('gateway_id = "e2e"\n')
    avail = {n: _avail("e2e", f"127_0_0_1_{n}") for n in (1, 2)}
    watch = Broker(host, port, ("csi-edge/e2e/#",))

    def gateway(udp: int) -> subprocess.Popen:
        return subprocess.Popen(
            CLI
            + [
                "run",
                "--config",
                str(cfg),
                "--udp",
                f"127.0.0.1:{udp}",
                "--mqtt",
                f"{host}:{port}",
                "--pose",
                "none",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def nodes(udp: int, n: int) -> subprocess.Popen:
        return subprocess.Popen(
            CLI
            + [
                "simulate-nodes",
                "--nodes",
                str(n),
                "--rate",
                "20",
                "--target",
                f"127.0.0.1:{udp}",
                "--duration",
                "30",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    udp = free_port(2)  # SOCK_DGRAM
    gw, sim = gateway(udp), nodes(udp, 2)
    try:
        assert _wait(lambda: all(watch.get(a) == "online" for a in avail.values()), 30)
    finally:
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        sim.terminate()
        sim.wait(10)
    assert _wait(lambda: watch.get("csi-edge/e2e/status") == "offline")  # the last will
    assert retained(host, port, "csi-edge/e2e/#")[avail[2]] == "online"  # stale, as on main

    gw, sim = gateway(udp), nodes(udp, 1)  # node 2 is dead now
    try:
        assert _wait(lambda: watch.get("csi-edge/e2e/status") == "online", 30)
        assert _wait(lambda: watch.get(avail[2]) == "offline")
        assert _wait(lambda: watch.get(avail[1]) == "online", 30)
        time.sleep(3.0)
        now = retained(host, port, "csi-edge/e2e/#")
        assert now[avail[2]] == "offline" and now[avail[1]] == "online"
        assert watch.seq(avail[2])[-1] == "offline"
    finally:
        gw.send_signal(signal.SIGTERM)
        err = gw.communicate(timeout=20)[1]
        sim.terminate()
        sim.wait(10)
        watch.close()
    assert gw.returncode == 0, err
