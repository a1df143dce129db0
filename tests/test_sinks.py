"""Sinks against real components: a mosquitto broker the test starts, a real HTTP server."""

from __future__ import annotations

import json
import threading
import time

import pytest

from csi_edge.report import NodeReport
from csi_edge.sinks.jsonl import JsonlSink
from csi_edge.sinks.mqtt import MqttConfig, MqttSink


def _report(node: str = "10.0.0.7#3", **kw) -> NodeReport:
    base = dict(
        t=1.0,
        node=node,
        presence=True,
        motion=False,
        breathing_bpm=14.2,
        breathing_conf=0.8,
        heart_bpm=None,
        heart_conf=0.1,
        reason="heart: low confidence",
        link={"rssi": -48, "rate_hz": 20.0, "online": True},
    )
    base.update(kw)
    return NodeReport(**base)


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_mqtt_publishes_state_and_home_assistant_discovery(mosquitto):
    import paho.mqtt.client as mqtt

    host, port = mosquitto
    got: dict[str, bytes] = {}
    lock = threading.Lock()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")

    def on_message(client, userdata, msg):
        with lock:
            got[msg.topic] = msg.payload

    sub.on_message = on_message
    sub.connect(host, port)
    sub.subscribe([("homeassistant/#", 1), ("csi-edge/#", 1)])
    sub.loop_start()
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id="gw1"))
    try:
        assert _wait(sink.client.is_connected), "gateway did not connect to the broker"
        sink.publish([_report()])
        state_topic = "csi-edge/gw1/nodes/10_0_0_7_3/state"
        assert _wait(
            lambda: (
                state_topic in got
                and "homeassistant/device/csi_edge_gw1_10_0_0_7_3/config" in got
            )
        )
        state = json.loads(got[state_topic])
        assert (
            state["breathing_bpm"] == 14.2
            and state["heart_bpm"] is None
            and state["presence"] is True
        )
        disc = json.loads(got["homeassistant/device/csi_edge_gw1_10_0_0_7_3/config"])
        assert disc["state_topic"] == state_topic  # shared by every component
        assert disc["cmps"]["presence"]["device_class"] == "occupancy"
        avail = [a["topic"] for a in disc["availability"]]
        assert disc["availability_mode"] == "all"
        assert avail == ["csi-edge/gw1/status", "csi-edge/gw1/nodes/10_0_0_7_3/availability"]
        assert _wait(lambda: got.get("csi-edge/gw1/status") == b"online")
        assert _wait(lambda: got.get(avail[1]) == b"online")
    finally:
        sink.close()
    assert _wait(lambda: got.get("csi-edge/gw1/status") == b"offline"), "no offline status on close"
    sub.loop_stop()
    sub.disconnect()


def test_mqtt_broker_down_at_start_is_not_fatal_and_catches_up(mosquitto):
    """connect_async: the sink is created before the broker accepts; publishing later works."""
    host, port = mosquitto
    sink = MqttSink(MqttConfig(host=host, port=port, client_id="late"))
    try:
        sink.publish([_report()])  # may run before the connection is up: must not raise
        assert _wait(sink.client.is_connected)
    finally:
        sink.close()


def test_jsonl_sink_appends_one_line_per_report(tmp_path):
    path = tmp_path / "out" / "reports.jsonl"
    sink = JsonlSink(path)
    sink.publish([_report(), _report(node="b")])
    sink.publish([_report(node="c")])
    sink.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["node"] for x in lines] == ["10.0.0.7#3", "b", "c"]


def test_reports_never_carry_nan_into_json(tmp_path):
    """NaN/inf from an estimator become null: json.dumps would write NaN, which is not JSON."""
    rep = _report(
        breathing_bpm=float("nan"),
        breathing_conf=float("inf"),
        model_vitals={"breathing_bpm": float("nan"), "presence": 0.5},
        pose={"keypoints": [[float("nan"), 0.5]], "confidence": [0.9], "track": 1},
        link={"rssi": -48, "rate_hz": float("nan")},
    )
    path = tmp_path / "r.jsonl"
    sink = JsonlSink(path)
    sink.publish([rep])
    sink.close()
    line = path.read_text()
    got = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in JSON: {line}"))
    assert got["breathing_bpm"] is None and got["breathing_conf"] is None
    assert got["model_vitals"] == {"breathing_bpm": None, "presence": 0.5}
    assert got["pose"]["keypoints"] == [[None, 0.5]] and got["link"]["rate_hz"] is None


def test_mqtt_password_is_not_in_the_config_repr():
    assert "hunter2" not in repr(MqttConfig(username="u", password="hunter2"))


@pytest.mark.slow
def test_mqtt_unreachable_broker_is_logged_once(caplog):
    """paho retries a down broker silently; the sink says so once, not every retry."""
    import logging

    from tests.conftest import free_port

    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        sink = MqttSink(MqttConfig(host="127.0.0.1", port=free_port(), client_id="nobody"))
        try:
            assert _wait(lambda: "unreachable" in caplog.text, timeout=10)
            time.sleep(2.5)  # paho retries after 1 s, then 2 s
        finally:
            sink.close()
    assert caplog.text.count("unreachable") == 1


def test_console_prints_the_final_state_at_close_even_between_refreshes():
    """Plain output is throttled; the state at shutdown must still be printed once."""
    import io

    from csi_edge.sinks.console import ConsoleSink

    out = io.StringIO()
    sink = ConsoleSink(out, every_s=60.0, live=False)
    sink.publish([_report(node="first")])  # printed (first refresh)
    sink.publish([_report(node="last")])  # throttled
    assert "last:" not in out.getvalue()
    sink.close()
    assert "first:" in out.getvalue() and "last:" in out.getvalue()


def test_mqtt_client_id_is_per_host_not_fixed():
    import socket

    cid = MqttConfig().client_id
    assert cid != "csi-edge-gateway" and cid.startswith("csi-edge-")
    assert socket.gethostname().lower()[:3] in cid
    assert MqttConfig(gateway_id="attic").client_id == "csi-edge-attic"


def test_mqtt_credentials_in_the_host_are_refused_without_echoing_them():
    from csi_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="CSI_EDGE_MQTT_PASSWORD") as e:
        MqttSink(MqttConfig(host="user:hunter2@broker.local"))
    assert "hunter2" not in str(e.value)


def test_mqtt_credentials_on_the_command_line_are_refused(capsys):
    from click.testing import CliRunner

    from csi_edge.cli import cli

    res = CliRunner().invoke(cli, ["run", "--mqtt", "u:hunter2@broker", "--print-config"])
    assert res.exit_code != 0 and "hunter2" not in res.output
    assert "CSI_EDGE_MQTT_PASSWORD" in str(res.exception) + res.output
