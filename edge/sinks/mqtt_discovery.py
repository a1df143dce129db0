"""Home Assistant MQTT discovery payloads for one node (topics in :class:`Topics`).

Kept apart from the sink so what Home Assistant is told can be read (and tested) without a
broker. Rules that matter to a user, described in docs/home-assistant.md:

* every entity is available only while the gateway's status topic AND the node's own retained
  availability topic say ``online`` (``availability_mode: all``);
* an unknown presence or motion (``null`` in the state) renders ``None``, which Home Assistant
  shows as ``unknown``, never as ``off`` ("Clear");
* an entity that can never have a value is not announced (heart rate unless it is enabled).
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_edge import __version__
from csi_edge.frames import slug

#: a three-valued binary sensor: null -> "None" (HA: unknown), true -> ON, false -> OFF
_TRISTATE = "{{{{ 'None' if value_json.{0} is none else ('ON' if value_json.{0} else 'OFF') }}}}"
_RATE = "{{{{ value_json.{0} | round({1}) if value_json.{0} is not none else none }}}}"


@dataclass(frozen=True)
class Entity:
    component: str
    what: str
    name: str
    template: str
    extra: dict
    #: True: a measurement that goes stale (expire_after applies)
    expires: bool = True


ENTITIES: tuple[Entity, ...] = (
    Entity(
        "binary_sensor",
        "presence",
        "Presence",
        _TRISTATE.format("presence"),
        {"device_class": "occupancy"},
    ),
    Entity(
        "binary_sensor",
        "motion",
        "Motion",
        _TRISTATE.format("motion"),
        {"device_class": "motion"},
    ),
    Entity(
        "sensor",
        "breathing",
        "Breathing rate",
        _RATE.format("breathing_bpm", 1),
        {"unit_of_measurement": "bpm", "state_class": "measurement", "icon": "mdi:lungs"},
    ),
    Entity(
        "sensor",
        "heart_rate",
        "Heart rate",
        _RATE.format("heart_bpm", 0),
        {"unit_of_measurement": "bpm", "state_class": "measurement", "icon": "mdi:heart-pulse"},
    ),
    Entity(
        "sensor",
        "rssi",
        "CSI RSSI",
        "{{ value_json.link.rssi }}",
        {
            "unit_of_measurement": "dBm",
            "device_class": "signal_strength",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        },
    ),
)


@dataclass(frozen=True)
class Topics:
    """The topic tree of one gateway: ``<prefix>/<gateway_id>/...``."""

    prefix: str
    gateway_id: str
    discovery_prefix: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def status(self) -> str:
        """The gateway's own availability (``online``/``offline``; the last will)."""
        return f"{self.base}/status"

    @property
    def availability_filter(self) -> str:
        """Every node availability topic of this gateway (read back at start-up)."""
        return f"{self.base}/nodes/+/availability"

    @property
    def sync(self) -> str:
        """A private, non-retained topic: its echo marks the end of the retained read-back."""
        return f"{self.base}/sync"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic."""
        return f"{self.discovery_prefix}/status"

    def state(self, node: str) -> str:
        return f"{self.base}/nodes/{slug(node)}/state"

    def pose(self, node: str) -> str:
        return f"{self.base}/nodes/{slug(node)}/pose"

    def availability(self, node: str) -> str:
        return f"{self.base}/nodes/{slug(node)}/availability"

    def node_of_availability(self, topic: str) -> str | None:
        """The node slug of an availability topic of this gateway, else None."""
        head, tail = f"{self.base}/nodes/", "/availability"
        if topic.startswith(head) and topic.endswith(tail):
            node = topic[len(head) : -len(tail)]
            return node if node and "/" not in node else None
        return None

    def device_id(self, node: str) -> str:
        """The node's HA device identifier. A board known by its MAC (``mac_...`` key from the
        inventory) is the same board whichever gateway hears it; anything else (an address, a
        provisioned node id) only means something on this gateway, so the id carries it."""
        s = slug(node)
        return f"csi_edge_{s}" if s.startswith("mac_") else f"csi_edge_{self.gateway_id}_{s}"

    def config(self, component: str, node: str, what: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.device_id(node)}/{what}/config"

    def legacy_configs(self, node: str) -> list[str]:
        """Discovery topics of the layout before gateway ids (``csi_edge_<node>``), except
        those the current layout still uses: cleared so an upgrade leaves no dead duplicates."""
        old = [
            f"{self.discovery_prefix}/{e.component}/csi_edge_{slug(node)}/{e.what}/config"
            for e in ENTITIES
        ]
        now = {self.config(e.component, node, e.what) for e in ENTITIES}
        return [t for t in old if t not in now]


def discovery_messages(
    topics: Topics,
    node: str,
    *,
    heart_rate: bool = False,
    expire_after_s: int = 0,
    name: str = "",
    area: str = "",
) -> list[tuple[str, dict | None]]:
    """(topic, payload) per entity of one node; payload None = remove that entity (an empty
    retained config), for entities that cannot have a value (heart rate when disabled).
    ``name`` / ``area``: the node inventory's (NodeReport.name / .area), "" = not configured."""
    dev_id = topics.device_id(node)
    device = {
        "identifiers": [dev_id],
        "name": name or f"CSI node {node}",
        "manufacturer": "Espressif (CSI via csi-edge)",
        "model": "ESP32-S3 CSI node",
        "sw_version": f"csi-edge {__version__}",
    }
    if area:
        device["suggested_area"] = area
    availability = [{"topic": topics.status}, {"topic": topics.availability(node)}]
    out: list[tuple[str, dict | None]] = []
    for e in ENTITIES:
        topic = topics.config(e.component, node, e.what)
        if e.what == "heart_rate" and not heart_rate:
            out.append((topic, None))
            continue
        uid = f"{dev_id}_{e.what}"
        payload = {
            "name": e.name,
            "unique_id": uid,
            "object_id": slug(uid),  # entity ids are [a-z0-9_]: csi_edge_gw_a_... for gw-a
            "state_topic": topics.state(node),
            "value_template": e.template,
            "availability": availability,
            "availability_mode": "all",
            "device": device,
            **e.extra,
        }
        if expire_after_s and e.expires:
            payload["expire_after"] = int(expire_after_s)
        out.append((topic, payload))
    return out
