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
def test_an_upgrade_migrates_per_entity_configs_to_the_device_config_once(mosquitto):
    """Configs of both older layouts: before gateway ids (other unique ids: only removed) and
    per-entity with gateway ids (same discovery ids: HA's migrate_discovery, then removed),
    both before the device config. A restart touches none of them again: a message on an old
    topic while the device config owns the entity makes HA log a conflict."""
    host, port = mosquitto
    gw = "gw-l"
    before_ids = "homeassistant/binary_sensor/csi_edge_n_1/presence/config"
    per_entity = f"homeassistant/sensor/csi_edge_{gw}_n_1/breathing/config"
    other = f"homeassistant/sensor/csi_edge_{gw}_n_2/breathing/config"  # not reported: kept
    device = f"homeassistant/device/csi_edge_{gw}_n_1/config"
    pre = Broker(host, port, ("x/none",), client_id="pre")
    for t in (before_ids, per_entity, other):
        pre.publish(t, json.dumps({"name": "x", "state_topic": "csi-edge/n_1/state"}), True)
    pre.close()
    watch = Broker(host, port, ("homeassistant/#",))
    for _restart in range(2):
        sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw))
        try:
            assert _wait(sink.client.is_connected)
            sink.publish([_report("n#1")])
            assert _wait(lambda: watch.get(device) is not None)
            time.sleep(0.5)
        finally:
            sink.close()
    with watch.lock:
        log = [(t, p) for t, p, _ in watch.log if t in (before_ids, per_entity, device)]
    sent = [e for e in log if e[1] != "x" and '"name": "x"' not in e[1]]
    # the first run: migrate + clear per-entity, clear the pre-gateway-id one, then the device;
    # the second run: the device config only
    assert sent[:3] == [
        (before_ids, ""),
        (per_entity, '{"migrate_discovery": true}'),
        (per_entity, ""),
    ] or sent[:3] == [
        (per_entity, '{"migrate_discovery": true}'),
        (per_entity, ""),
        (before_ids, ""),
    ], sent
    assert [t for t, _ in sent[3:]] == [device, device], sent
    left = retained(host, port, "homeassistant/#", 0.3)
    assert before_ids not in left and per_entity not in left and other in left
    assert (
        json.loads(left[device])["cmps"]["breathing"]["unique_id"] == f"csi_edge_{gw}_n_1_breathing"
    )
