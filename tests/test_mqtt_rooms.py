"""Rooms: nodes with the same inventory area form one Home Assistant room device (the logic on
its own, then on a real mosquitto)."""

from __future__ import annotations

import json
import time

import pytest

from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from csi_edge.sinks.rooms import NodeView, room_state
from tests.test_mqtt_availability import Broker, _render, _report, _wait, retained


def _v(key, presence=None, motion=None, bpm=None, conf=0.0, online=True, name=""):
    return NodeView(key, name, online, presence, motion, bpm, conf)


def test_room_is_unknown_until_a_node_decides_and_occupied_if_any_does():
    assert room_state([_v("a"), _v("b")])["presence"] is None  # none decided: unknown
    assert room_state([_v("a", presence=False), _v("b")])["presence"] is False
    assert room_state([_v("a", presence=False), _v("b", presence=True)])["presence"] is True
    # a silent node's last values are not current
    assert room_state([_v("a", presence=True, online=False), _v("b")])["presence"] is None
    assert room_state([_v("a", motion=True), _v("b", motion=False)])["motion"] is True
    best = room_state(
        [_v("a", bpm=12.0, conf=0.4, name="Desk"), _v("b", bpm=15.5, conf=0.9, name="Bed"), _v("c")]
    )
    assert (best["breathing_bpm"], best["breathing_node"]) == (15.5, "Bed")
    assert best["nodes"] == ["Bed", "Desk", "c"] and best["nodes_online"] == 3
    assert room_state([_v("a")])["breathing_bpm"] is None


@pytest.mark.slow
def test_nodes_with_one_area_form_a_room_device(mosquitto):
    host, port = mosquitto
    gw = "gw-room"
    room = f"csi-edge/{gw}/rooms/bedroom"
    watch = Broker(host, port, (f"{room}/#",))
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
    try:
        assert _wait(sink.client.is_connected)
        a = _report("n#1", name="Bed", area="Bedroom", presence=None, breathing_bpm=None)
        b = _report("n#2", name="Desk", area="Bedroom", presence=True, breathing_bpm=13.0)
        other = _report("n#3", area="", presence=True)
        sink.publish([a, b, other])
        topic = f"homeassistant/device/csi_edge_{gw}_room_bedroom/config"
        got: dict[str, str] = {}
        assert _wait(
            lambda: got.update(retained(host, port, "homeassistant/#", 0.3)) or topic in got
        )
        assert _wait(lambda: watch.get(f"{room}/availability") == "online")
        state = json.loads(watch.get(f"{room}/state"))
        # node 2 went silent: the room is unknown again (node 1 has not decided), not "clear"
        sink.publish([a, _report("n#2", online=False, name="Desk", area="Bedroom")])
        time.sleep(0.3)
        later = json.loads(watch.get(f"{room}/state"))
        sink.publish([_report(k, online=False, area="Bedroom") for k in ("n#1", "n#2")])
        assert _wait(lambda: watch.get(f"{room}/availability") == "offline")
    finally:
        sink.close()
        watch.close()
    config = json.loads(got[topic])
    assert config["dev"]["name"] == "Bedroom" and config["dev"]["suggested_area"] == "Bedroom"
    assert config["dev"]["via_device"] == f"csi_edge_gateway_{gw}"
    assert [a["topic"] for a in config["availability"]] == [
        f"csi-edge/{gw}/status",
        f"{room}/availability",
    ]
    cmps = config["cmps"]
    assert set(cmps) == {"presence", "motion", "breathing", "breathing_node"}
    assert state["presence"] is True and state["breathing_bpm"] == 13.0
    assert state["breathing_node"] == "Desk" and state["nodes"] == ["Bed", "Desk"]
    assert _render(cmps["presence"]["value_template"], state) == "ON"
    assert _render(cmps["breathing_node"]["value_template"], state) == "Desk"
    assert (
        later["presence"] is None and _render(cmps["presence"]["value_template"], later) == "None"
    )
    # no room for the node without an area
    assert not [t for t in got if "_room_" in t and t != topic]


@pytest.mark.slow
def test_a_room_left_online_by_a_dead_gateway_is_set_offline_at_start(mosquitto):
    host, port = mosquitto
    room = "csi-edge/gw-rd/rooms/bedroom/availability"
    pre = Broker(host, port, ("x/none",), client_id="pre")
    pre.publish(room, "online", retain=True)  # what a SIGKILLed gateway leaves
    pre.close()
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id="gw-rd"))
    try:
        assert _wait(lambda: retained(host, port, room, 0.3).get(room) == "offline")
    finally:
        sink.close()
