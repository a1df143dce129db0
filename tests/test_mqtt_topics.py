"""What goes where on the broker: pose keypoints off the state topic (their own topic, off by
default) and no dead duplicates left by the layout before gateway ids."""

from __future__ import annotations

import json
import time

import pytest

from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from tests.test_mqtt_availability import Broker, _report, _wait, retained

POSE = {"keypoints": [[0.5, 0.5]] * 17, "confidence": [0.9] * 17, "track": 1}


@pytest.mark.slow
@pytest.mark.parametrize("pose", [False, True])
def test_pose_keypoints_are_off_the_state_topic(mosquitto, pose):
    host, port = mosquitto
    gw = "gw-p"
    watch = Broker(host, port, (f"csi-edge/{gw}/#",))
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw, pose=pose))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1", pose=POSE)])
        state = f"csi-edge/{gw}/nodes/n_1/state"
        assert _wait(lambda: watch.get(state) is not None)
        time.sleep(0.5)
        doc = json.loads(watch.get(state))
        assert "pose" not in doc and doc["presence"] is True
        assert len(watch.get(state)) < 600  # was ~2 KB with keypoints
        sent = watch.get(f"csi-edge/{gw}/nodes/n_1/pose")
        assert (json.loads(sent) == POSE) if pose else sent is None
        assert f"csi-edge/{gw}/nodes/n_1/pose" not in retained(host, port, "#", 0.3)
    finally:
        sink.close()
        watch.close()


@pytest.mark.slow
def test_configs_of_the_layout_before_gateway_ids_are_removed(mosquitto):
    host, port = mosquitto
    old = "homeassistant/binary_sensor/csi_edge_n_1/presence/config"
    pre = Broker(host, port, ("x/none",), client_id="pre")
    pre.publish(old, json.dumps({"name": "Presence", "state_topic": "csi-edge/n_1/state"}), True)
    pre.close()
    assert old in retained(host, port, "homeassistant/#", 0.3)
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id="gw-l"))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1")])
        new = "homeassistant/binary_sensor/csi_edge_gw-l_n_1/presence/config"
        got: dict[str, str] = {}
        assert _wait(lambda: got.update(retained(host, port, "homeassistant/#", 0.3)) or new in got)
        assert old not in retained(host, port, "homeassistant/#", 0.3)
    finally:
        sink.close()
