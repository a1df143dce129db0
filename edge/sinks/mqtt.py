"""MQTT publishing with Home Assistant MQTT discovery.

Per node the gateway publishes one retained JSON state message to ``<prefix>/<node>/state`` and,
once per node, HA discovery configs under ``<discovery>/<component>/csi_edge_<node>/<what>/config``
so presence, motion, breathing and heart rate appear in Home Assistant with no YAML. The gateway's
availability topic ``<prefix>/status`` carries ``online``/``offline`` (the broker sends ``offline``
as the last will when the gateway dies); each node's entities are available only while that topic
is online and the node itself is (``link.online`` in its state).

paho-mqtt runs its network loop in its own thread and reconnects by itself, so a broker that is
down is not fatal. State messages (QoS 0) published while disconnected are dropped by paho; each is
a retained snapshot that the next second's state replaces, and discovery is re-announced after
every reconnect, so a broker restart loses only the time it was down.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from csi_edge import __version__
from csi_edge.errors import ConfigError
from csi_edge.frames import slug
from csi_edge.report import NodeReport

log = logging.getLogger("csi_edge.mqtt")

#: (component, what, name, value_template, extra config) for every HA entity per node.
_ENTITIES: tuple[tuple[str, str, str, str, dict], ...] = (
    (
        "binary_sensor",
        "presence",
        "Presence",
        "{{ 'ON' if value_json.presence else 'OFF' }}",
        {"device_class": "occupancy"},
    ),
    (
        "binary_sensor",
        "motion",
        "Motion",
        "{{ 'ON' if value_json.motion else 'OFF' }}",
        {"device_class": "motion"},
    ),
    (
        "sensor",
        "breathing",
        "Breathing rate",
        "{{ value_json.breathing_bpm | round(1) if value_json.breathing_bpm is not none else none }}",
        {"unit_of_measurement": "bpm", "state_class": "measurement", "icon": "mdi:lungs"},
    ),
    (
        "sensor",
        "heart_rate",
        "Heart rate",
        "{{ value_json.heart_bpm | round(0) if value_json.heart_bpm is not none else none }}",
        {"unit_of_measurement": "bpm", "state_class": "measurement", "icon": "mdi:heart-pulse"},
    ),
    (
        "sensor",
        "rssi",
        "CSI RSSI",
        "{{ value_json.link.rssi }}",
        {
            "unit_of_measurement": "dBm",
            "device_class": "signal_strength",
            "entity_category": "diagnostic",
        },
    ),
)


@dataclass
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    #: kept out of repr() so a logged config never shows it
    password: str | None = field(default=None, repr=False)
    prefix: str = "csi-edge"
    discovery_prefix: str = "homeassistant"
    #: one per gateway: a broker disconnects the older of two clients with the same id, so a
    #: fixed id made two gateways knock each other off every second
    client_id: str = field(default_factory=lambda: default_client_id())


def default_client_id() -> str:
    """``csi-edge-<host name>``: distinct per gateway host, stable across restarts."""
    import socket

    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-") or "gateway"
    return f"csi-edge-{host}"


def refuse_credentials_in_host(host: str) -> None:
    """``user:pw@host`` would put a password on the command line, in ps and shell history."""
    if "@" in host:
        raise ConfigError(
            f"MQTT host {host.rsplit('@', 1)[-1]!r}: credentials in the host are refused; set "
            "sinks.mqtt.username in the config and the password in $CSI_EDGE_MQTT_PASSWORD"
        )


class MqttSink:
    """Publishes node reports and HA discovery; see module docstring for the topics."""

    def __init__(self, config: MqttConfig) -> None:
        import paho.mqtt.client as mqtt

        refuse_credentials_in_host(config.host)
        self.config = config
        self._announced: set[str] = set()
        self.status_topic = f"{config.prefix}/status"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id)
        if config.username:
            self.client.username_pw_set(config.username, config.password)
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self._fail_logged = False
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        # connect_async + loop_start: a broker that is down at start-up is retried, not fatal.
        self.client.connect_async(config.host, config.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        if reason_code.is_failure:
            log.warning(
                "MQTT broker %s:%s refused the connection: %s",
                self.config.host,
                self.config.port,
                reason_code,
            )
            return
        log.info("MQTT connected to %s:%s", self.config.host, self.config.port)
        self._fail_logged = False
        client.publish(self.status_topic, "online", qos=1, retain=True)
        # Discovery configs are retained, but re-announce after a reconnect in case the broker lost them.
        self._announced.clear()

    def _on_connect_fail(self, client, userdata) -> None:  # noqa: ARG002
        """A wrong host name or a broker that is down is retried silently by paho: say so, once
        per outage, or the user sees nothing at all."""
        if not self._fail_logged:
            self._fail_logged = True
            log.warning(
                "MQTT broker %s:%s unreachable; retrying in the background",
                self.config.host,
                self.config.port,
            )

    def state_topic(self, node: str) -> str:
        return f"{self.config.prefix}/{slug(node)}/state"

    def discovery_messages(self, node: str) -> list[tuple[str, dict]]:
        """The HA discovery (topic, payload) pairs for one node."""
        node_slug = slug(node)
        device = {
            "identifiers": [f"csi_edge_{node_slug}"],
            "name": f"CSI node {node}",
            "manufacturer": "Espressif (CSI via csi-edge)",
            "model": "ESP32-S3 CSI node",
            "sw_version": f"csi-edge {__version__}",
        }
        out = []
        for component, what, name, template, extra in _ENTITIES:
            uid = f"csi_edge_{node_slug}_{what}"
            payload = {
                "name": name,
                "unique_id": uid,
                "object_id": uid,
                "state_topic": self.state_topic(node),
                "value_template": template,
                # available while the gateway is up AND the node is online (a node that went
                # quiet must not keep showing its last retained state as current)
                "availability": [
                    {"topic": self.status_topic},
                    {
                        "topic": self.state_topic(node),
                        "value_template": "{{ 'online' if value_json.link.online else 'offline' }}",
                    },
                ],
                "availability_mode": "all",
                "device": device,
                **extra,
            }
            out.append(
                (
                    f"{self.config.discovery_prefix}/{component}/csi_edge_{node_slug}/{what}/config",
                    payload,
                )
            )
        return out

    def publish(self, reports: list[NodeReport]) -> None:
        for r in reports:
            if r.node not in self._announced and self.client.is_connected():
                for topic, payload in self.discovery_messages(r.node):
                    self.client.publish(topic, json.dumps(payload), qos=1, retain=True)
                self._announced.add(r.node)
            self.client.publish(
                self.state_topic(r.node), json.dumps(r.to_json()), qos=0, retain=True
            )

    def close(self) -> None:
        if self.client.is_connected():
            self.client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(
                2
            )
        self.client.disconnect()
        self.client.loop_stop()
