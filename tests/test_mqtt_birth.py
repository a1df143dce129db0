"""Home Assistant's birth message (``online`` on ``homeassistant/status``): a restarted HA, or a
device deleted in HA, gets discovery, states and availability back without a gateway restart."""

from __future__ import annotations

import json
import time

import pytest

from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from tests.test_mqtt_availability import Broker, _report, _wait, retained


@pytest.mark.slow
def test_home_assistant_birth_re_announces_after_a_short_random_delay(mosquitto):
    host, port = mosquitto
    gw = "gw-b"
    config = f"homeassistant/device/csi_edge_{gw}_n_1/config"
    state = f"csi-edge/{gw}/nodes/n_1/state"
    avail = f"csi-edge/{gw}/nodes/n_1/availability"
    watch = Broker(host, port, ("homeassistant/#", f"csi-edge/{gw}/#"))
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw, birth_delay_s=1.0))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1", presence=None)])
        assert _wait(lambda: watch.get(avail) == "online" and watch.get(config))
        n_config, n_state, n_avail = (len(watch.seq(t)) for t in (config, state, avail))
        # the user deletes the device in HA: HA clears its retained discovery config
        watch.publish(config, "", retain=True)
        assert _wait(lambda: config not in retained(host, port, "homeassistant/#", 0.3))
        t0 = time.monotonic()
        watch.publish("homeassistant/status", "online")  # HA (re)started
        assert _wait(lambda: len(watch.seq(config)) >= n_config + 2, 5)  # the clear + again
        took = time.monotonic() - t0
        assert _wait(lambda: len(watch.seq(state)) > n_state and len(watch.seq(avail)) > n_avail)
        assert took <= 1.0 + 0.5, took  # the random delay is at most birth_delay_s
        back = retained(host, port, "homeassistant/#")
        presence = json.loads(back[config])["cmps"]["presence"]
        assert presence["unique_id"] == f"csi_edge_{gw}_n_1_presence"
        assert json.loads(watch.seq(state)[-1])["presence"] is None  # the current state
        assert watch.seq(avail)[-1] == "online"
        # HA going offline is not a reason to publish anything
        n = len(watch.log)
        watch.publish("homeassistant/status", "offline")
        time.sleep(1.5)
        with watch.lock:
            assert [t for t, _, _ in watch.log[n:]] == ["homeassistant/status"]
    finally:
        sink.close()
        watch.close()
