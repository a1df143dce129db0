"""A report's MQTT messages leave as one batch, promptly, on a real mosquitto (issue #16).

Speed itself is for scripts/bench_gateway_load.py; these tests check the behaviour behind it:
Nagle is off on the broker link (a burst of small states is not held for the broker's delayed
ACK), a 64-node report arrives whole with each node's state before its availability, and the
faster ``NodeReport.to_json`` gives the same document as before.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from dataclasses import asdict, dataclass

from csi_edge.report import NodeReport, jsonable
from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from tests.test_mqtt_availability import _report, _wait


class Arrivals:
    """A subscriber to everything that keeps every message in arrival order."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"order-{port}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#", 1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ARG002
        with self.lock:
            self.seen.append((msg.topic, msg.payload.decode()))

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.seen]

    def payload(self, topic: str) -> str | None:
        with self.lock:
            return next((p for t, p in reversed(self.seen) if t == topic), None)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _nodelay(sink: MqttSink) -> int:
    return sink.client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_nagle_is_off_on_the_broker_link_and_again_after_a_reconnect(mosquitto):
    host, port = mosquitto
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id="nodelay"))
    try:
        assert _wait(sink.client.is_connected)
        first = sink.client.socket()
        assert _nodelay(sink) == 1, "paho's socket keeps Nagle on: a report's states wait for ACKs"
        first.shutdown(socket.SHUT_RDWR)  # the link drops: paho opens a new socket
        assert _wait(lambda: sink.client.is_connected() and sink.client.socket() is not first, 15)
        assert _nodelay(sink) == 1
    finally:
        sink.close()


def test_a_64_node_report_arrives_whole_each_state_before_its_availability(mosquitto):
    host, port = mosquitto
    watch = Arrivals(port)
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id="batch"))
    status = "csi-edge/batch/status"
    try:
        assert _wait(lambda: watch.payload(status) == "online")
        keys = [f"10.0.{i // 200}.{i % 200 + 1}#1" for i in range(64)]
        sink.publish([_report(k, breathing_bpm=10.0 + i / 8) for i, k in enumerate(keys)])
        states = [f"csi-edge/batch/nodes/{k.replace('.', '_').replace('#', '_')}/state" for k in keys]
        assert _wait(lambda: all(watch.payload(t) is not None for t in states))
        topics = watch.topics()
        for i, t in enumerate(states):
            assert json.loads(watch.payload(t))["breathing_bpm"] == 10.0 + i / 8
            avail = t.removesuffix("/state") + "/availability"
            assert _wait(lambda a=avail: watch.payload(a) == "online")
            topics = watch.topics()
            assert topics.index(t) < topics.index(avail), f"{avail} before its state"
        # one announcement per node (+ the gateway's), not one per report
        sink.publish([_report(k) for k in keys])
        assert _wait(lambda: watch.topics().count(states[-1]) == 2)
        configs = [t for t in watch.topics() if t.startswith("homeassistant/device/")]
        assert len(configs) == len(set(configs)) == 65
    finally:
        sink.close()
        watch.close()


@dataclass
class _Inner:
    x: float
    tags: tuple


def test_to_json_is_the_document_asdict_gave():
    r = NodeReport(
        t=1.5,
        node="10.0.0.1#1",
        presence=None,
        breathing_bpm=math.nan,
        heart_bpm=math.inf,
        link={"frames": 3, "rate_hz": math.nan, 7: "int key", "nested": [1, (2.0, math.nan)]},
        pose={"keypoints": [[0.1, 0.2]] * 17, "confidence": [0.5] * 17, "track": 2},
        calibration={"state": "partial", "inner": _Inner(math.nan, ("a", 1))},
        motion_ratio=2.0,
    )
    doc = r.to_json()
    assert doc == jsonable(asdict(r))
    assert list(doc) == list(asdict(r))  # same field order: the JSON text is the same
    assert json.dumps(doc, allow_nan=False)  # NaN and inf became null, everywhere
    assert doc["link"]["7"] == "int key" and doc["calibration"]["inner"] == {"x": None, "tags": ["a", 1]}
