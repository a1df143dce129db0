"""Device-based Home Assistant discovery against a real mosquitto: one device config per node
(named and placed from the inventory, via the gateway's device), the gateway's own device with
states that update, and ``csi-edge ha forget`` removing a node's device."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest

from csi_edge import __version__
from csi_edge.sinks import mqtt as mqtt_mod
from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from tests.test_mqtt_availability import Broker, _render, _report, _wait, retained

CLI = [sys.executable, "-m", "csi_edge"]


def _device(host: str, port: int, topic: str) -> dict:
    got: dict[str, str] = {}
    assert _wait(lambda: got.update(retained(host, port, "homeassistant/#", 0.3)) or topic in got)
    return json.loads(got[topic])


@pytest.mark.slow
def test_node_device_config_names_places_and_links_the_node(mosquitto):
    host, port = mosquitto
    gw = "gw-d"
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        named = _report("mac_aabbccddeeff", name="Bedroom", area="Upstairs")
        named.link.update(lost=25, last_seen=1_765_000_000.5)
        sink.publish([named, _report("10.0.0.9#2")])
        bedroom = _device(host, port, "homeassistant/device/csi_edge_mac_aabbccddeeff/config")
        auto = _device(host, port, f"homeassistant/device/csi_edge_{gw}_10_0_0_9_2/config")
        state = json.loads(
            retained(host, port, f"csi-edge/{gw}/nodes/#", 0.3)[
                f"csi-edge/{gw}/nodes/mac_aabbccddeeff/state"
            ]
        )
    finally:
        sink.close()
    dev = bedroom["dev"]
    assert dev["name"] == "Bedroom" and dev["suggested_area"] == "Upstairs"
    assert dev["identifiers"] == ["csi_edge_mac_aabbccddeeff"]  # the board, not its address
    assert dev["via_device"] == f"csi_edge_gateway_{gw}"
    assert auto["dev"]["name"] == "CSI node 10.0.0.9#2" and "suggested_area" not in auto["dev"]
    assert bedroom["o"] == {"name": "csi-edge", "sw": __version__}
    cmps = bedroom["cmps"]
    # heart rate is off by default: it can never have a value, so it is not there
    assert set(cmps) == {
        "recalibrate",  # a button and a number that act on the gateway (test_mqtt_controls)
        "motion_ratio",
        "presence",
        "motion",
        "breathing",
        "rssi",
        "frame_rate",
        "loss",
        "baseline",  # the room baseline's state (test_node_commands)
        "last_frame",
    }
    for what, c in cmps.items():
        assert c["unique_id"] == f"csi_edge_mac_aabbccddeeff_{what}"
        assert c["object_id"] == c["unique_id"]  # HA 2025.4.4 has no default_entity_id
    assert bedroom["availability_mode"] == "all"
    # the diagnostics render what the state carries
    assert _render(cmps["frame_rate"]["value_template"], state) == "20.0"
    assert _render(cmps["loss"]["value_template"], state) == "20.0"  # 25 of 125
    when = datetime.fromisoformat(_render(cmps["last_frame"]["value_template"], state))
    assert when.tzinfo is not None and when.timestamp() == 1_765_000_000
    assert cmps["last_frame"]["device_class"] == "timestamp"
    assert cmps["rssi"]["state_class"] == "measurement"
    assert all(
        c.get("entity_category") == "diagnostic"
        for w, c in cmps.items()
        if w in ("rssi", "frame_rate", "loss", "last_frame")
    )


@pytest.mark.slow
def test_rssi_is_announced_only_once_the_source_gives_one(mosquitto):
    host, port = mosquitto
    gw = "gw-r"
    topic = f"homeassistant/device/csi_edge_{gw}_n_1/config"
    watch = Broker(host, port, (topic,))
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        bare = _report("n#1")
        bare.link["rssi"] = None  # a RuView .csi.jsonl replay: no trustworthy RSSI
        sink.publish([bare])
        assert _wait(lambda: watch.get(topic) is not None)
        assert "rssi" not in json.loads(watch.get(topic))["cmps"]
        sink.publish([bare])
        time.sleep(0.3)
        assert len(watch.seq(topic)) == 1  # not re-sent per report
        sink.publish([_report("n#1")])
        assert _wait(lambda: len(watch.seq(topic)) == 2)
        assert "rssi" in json.loads(watch.get(topic))["cmps"]
    finally:
        sink.close()
        watch.close()


@pytest.mark.slow
def test_gateway_device_and_its_states_update(mosquitto, monkeypatch):
    monkeypatch.setattr(mqtt_mod, "GATEWAY_STATE_EVERY_S", 0.5)
    host, port = mosquitto
    gw = "gw-g"
    state = f"csi-edge/{gw}/gateway/state"
    watch = Broker(host, port, (state,))
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        config = _device(host, port, f"homeassistant/device/csi_edge_gateway_{gw}/config")
        sink.publish([_report("n#1"), _report("n#2"), _report("n#3", online=False)])
        # states come every 0.5 s; the ones sent before the reports count no nodes
        assert _wait(lambda: bool(s := watch.seq(state)) and json.loads(s[-1])["nodes_online"] == 2)
        assert _wait(lambda: len(watch.seq(state)) >= 4)
        first, last = json.loads(watch.seq(state)[0]), json.loads(watch.seq(state)[-1])
    finally:
        sink.close()
        watch.close()
    assert config["availability_topic"] == f"csi-edge/{gw}/status"
    assert config["state_topic"] == state
    assert config["dev"]["identifiers"] == [f"csi_edge_gateway_{gw}"]
    assert set(config["cmps"]) == {
        "version",
        "uptime",
        "frames_per_s",
        "mqtt_reconnects",
        "nodes_online",
    }
    assert last["version"] == __version__ and last["mqtt_reconnects"] == 0
    assert last["nodes_online"] == 2 and last["frames_per_s"] == 40.0  # 2 online x 20 Hz
    assert last["uptime_s"] >= first["uptime_s"]
    for what, c in config["cmps"].items():
        assert _render(c["value_template"], last) == str(
            last[{"uptime": "uptime_s"}.get(what, what)]
        )


@pytest.mark.slow
def test_ha_forget_removes_the_device_and_the_nodes_retained_topics(mosquitto, tmp_path):
    host, port = mosquitto
    gw = "gw-f"
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("10.0.0.7#1", name="Bedroom"), _report("10.0.0.8#2")])
        _device(host, port, f"homeassistant/device/csi_edge_{gw}_10_0_0_8_2/config")
    finally:
        sink.close()
    broker = ["--broker", f"{host}:{port}", "--gateway-id", gw]
    env = {"CSI_EDGE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    # a wrong name: one line that lists what exists
    bad = subprocess.run(
        CLI + ["ha", "forget", "Kitchen", *broker], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1, bad.stderr
    assert (
        bad.stderr.count("\n") == 1
        and "10_0_0_7_1 (Bedroom)" in bad.stderr
        and "10_0_0_8_2" in bad.stderr
    )
    wrong_gw = subprocess.run(
        CLI + ["ha", "forget", "Bedroom", "--broker", f"{host}:{port}", "--gateway-id", "nope"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert wrong_gw.returncode == 1 and "gateway ids on this broker: gw-f" in wrong_gw.stderr
    # by its Home Assistant name
    ok = subprocess.run(
        CLI + ["ha", "forget", "bedroom", *broker, "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    dev = f"homeassistant/device/csi_edge_{gw}_10_0_0_7_1/config"
    base = f"csi-edge/{gw}/nodes/10_0_0_7_1"
    assert res["node"] == "10_0_0_7_1" and res["name"] == "Bedroom" and not res["was_online"]
    assert set(res["cleared"]) == {
        dev,
        f"{base}/state",
        f"{base}/availability",
        f"{base}/motion_ratio",
    }
    left = retained(host, port, "#", 0.5)
    assert dev not in left and f"{base}/state" not in left and f"{base}/availability" not in left
    # the other node is untouched
    assert f"homeassistant/device/csi_edge_{gw}_10_0_0_8_2/config" in left
    assert f"csi-edge/{gw}/nodes/10_0_0_8_2/state" in left
    # by node key, plain output
    again = subprocess.run(
        CLI + ["ha", "forget", "10.0.0.8#2", *broker], capture_output=True, text=True, env=env
    )
    assert again.returncode == 0 and again.stdout.startswith(
        "forgot 10_0_0_8_2 (CSI node 10.0.0.8#2) of gateway gw-f"
    )
