"""Home Assistant MQTT device discovery payloads (topics in :class:`Topics`).

Kept apart from the sink so what Home Assistant is told can be read (and tested) without a
broker. Rules that matter to a user, described in docs/home-assistant.md:

* one retained device config per node (``<discovery>/device/<device id>/config``: ``dev``,
  ``o``, ``cmps``), each ``via_device`` the gateway's own device, which has one too;
* every node entity is available only while the gateway's status topic AND the node's own
  retained availability topic say ``online`` (``availability_mode: all``);
* an unknown presence or motion (``null`` in the state) renders ``None``, which Home Assistant
  shows as ``unknown``, never as ``off`` ("Clear");
* an entity that can never have a value is not announced (heart rate unless it is enabled, RSSI
  from a source that has none): a component left out of a device config is removed by HA.

Home Assistant Core 2025.4.4 (what scripts/check_home_assistant runs) has no
``default_entity_id``; it takes ``object_id`` (deprecated from 2025.10), so that is what is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_edge import __version__
from csi_edge.frames import slug

#: a three-valued binary sensor: null -> "None" (HA: unknown), true -> ON, false -> OFF
_TRISTATE = "{{{{ 'None' if value_json.{0} is none else ('ON' if value_json.{0} else 'OFF') }}}}"
_RATE = "{{{{ value_json.{0} | round({1}) if value_json.{0} is not none else none }}}}"
#: a value that may be null; the sink always writes the key (csi_edge.sinks.mqtt.diagnostics)
_VALUE = "{{{{ value_json.{0} if value_json.{0} is not none else none }}}}"
_DIAG = {"entity_category": "diagnostic"}
ORIGIN = {"name": "csi-edge", "sw": __version__}
#: components whose per-entity config topics (``<discovery>/<component>/<device id>/<what>/
#: config``) older gateways published; they are migrated to the device config (see the sink)
LEGACY_ENTITIES = (
    ("binary_sensor", "presence"),
    ("binary_sensor", "motion"),
    ("sensor", "breathing"),
    ("sensor", "heart_rate"),
    ("sensor", "rssi"),
)


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
        "binary_sensor", "motion", "Motion", _TRISTATE.format("motion"), {"device_class": "motion"}
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
            **_DIAG,
        },
    ),
    Entity(
        "sensor",
        "frame_rate",
        "Frame rate",
        _VALUE.format("diag.rate_hz"),
        {
            "unit_of_measurement": "Hz",
            "device_class": "frequency",
            "state_class": "measurement",
            "suggested_display_precision": 1,
            **_DIAG,
        },
    ),
    Entity(
        "sensor",
        "loss",
        "Frame loss",
        _VALUE.format("diag.loss_pct"),
        {
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "icon": "mdi:wifi-alert",
            "suggested_display_precision": 1,
            **_DIAG,
        },
    ),
    Entity(
        "sensor",
        "baseline",
        "Room baseline",
        "{{ value_json.calibration.state if value_json.calibration else none }}",
        {"icon": "mdi:home-search", **_DIAG},
    ),
    Entity(
        "sensor",
        "last_frame",
        "Last frame",
        _VALUE.format("diag.last_frame"),
        {"device_class": "timestamp", **_DIAG},
        # the one entity that must still read when the node went quiet
        expires=False,
    ),
)

#: the gateway device's entities, on its own state topic (Topics.gateway_state)
GATEWAY_ENTITIES: tuple[Entity, ...] = (
    Entity(
        "sensor", "version", "Version", "{{ value_json.version }}", {"icon": "mdi:tag", **_DIAG}
    ),
    Entity(
        "sensor",
        "uptime",
        "Uptime",
        "{{ value_json.uptime_s }}",
        {
            "unit_of_measurement": "s",
            "device_class": "duration",
            "state_class": "total_increasing",
            "suggested_display_precision": 0,
            **_DIAG,
        },
    ),
    Entity(
        "sensor",
        "frames_per_s",
        "Frames per second",
        "{{ value_json.frames_per_s }}",
        {
            "unit_of_measurement": "frames/s",
            "state_class": "measurement",
            "icon": "mdi:speedometer",
            **_DIAG,
        },
    ),
    Entity(
        "sensor",
        "mqtt_reconnects",
        "MQTT reconnects",
        "{{ value_json.mqtt_reconnects }}",
        {"state_class": "total_increasing", "icon": "mdi:lan-disconnect", **_DIAG},
    ),
    Entity(
        "sensor",
        "nodes_online",
        "Nodes online",
        "{{ value_json.nodes_online }}",
        {"state_class": "measurement", "icon": "mdi:access-point-network", **_DIAG},
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
    def gateway_state(self) -> str:
        """The gateway device's diagnostics (version, uptime, frames/s, ...), about every 10 s."""
        return f"{self.base}/gateway/state"

    @property
    def availability_filter(self) -> str:
        """Every node availability topic of this gateway (read back at start-up)."""
        return f"{self.base}/nodes/+/availability"

    @property
    def legacy_filters(self) -> list[str]:
        """Per-entity discovery topics of older gateways (read back at start-up, so only those
        that exist are migrated: a message on one would make HA warn about a conflict)."""
        return sorted({f"{self.discovery_prefix}/{c}/+/+/config" for c, _ in LEGACY_ENTITIES})

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

    def command(self, node: str, what: str) -> str:
        """Where HA sends a button press or a number (``recalibrate``, ``motion_ratio``)."""
        return f"{self.base}/nodes/{slug(node)}/{what}/set"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/nodes/+/+/set"

    def ratio_state(self, node: str) -> str:
        """The node's motion threshold (retained): HA's number shows it, and a restarted
        gateway reads it back and applies it again."""
        return f"{self.base}/nodes/{slug(node)}/motion_ratio"

    @property
    def ratio_filter(self) -> str:
        return f"{self.base}/nodes/+/motion_ratio"

    def node_of(self, topic: str, tail: str) -> str | None:
        """The node slug of ``<base>/nodes/<slug><tail>``, else None."""
        head = f"{self.base}/nodes/"
        if topic.startswith(head) and topic.endswith(tail):
            node = topic[len(head) : len(topic) - len(tail)]
            return node if node and "/" not in node else None
        return None

    def node_of_availability(self, topic: str) -> str | None:
        """The node slug of an availability topic of this gateway, else None."""
        head, tail = f"{self.base}/nodes/", "/availability"
        if topic.startswith(head) and topic.endswith(tail):
            node = topic[len(head) : -len(tail)]
            return node if node and "/" not in node else None
        return None

    def device_id(self, node: str) -> str:
        """The node's HA device identifier. A board known by its MAC (``mac_...`` key from the
        inventory) is the same board whichever gateway hears it; a provisioned node id's key
        (``id_<gateway>_<n>``) already names its gateway; anything else (an address) only means
        something on this gateway, so the id carries it."""
        s = slug(node)
        if s.startswith(("mac_", "id_")):
            return f"csi_edge_{s}"
        return f"csi_edge_{self.gateway_id}_{s}"

    def room_state(self, area: str) -> str:
        return f"{self.base}/rooms/{slug(area)}/state"

    def room_availability(self, area: str) -> str:
        return f"{self.base}/rooms/{slug(area)}/availability"

    @property
    def room_availability_filter(self) -> str:
        return f"{self.base}/rooms/+/availability"

    def room_device_id(self, area: str) -> str:
        return f"csi_edge_{self.gateway_id}_room_{slug(area)}"

    def room_config(self, area: str) -> str:
        return f"{self.discovery_prefix}/device/{self.room_device_id(area)}/config"

    @property
    def gateway_device_id(self) -> str:
        return f"csi_edge_gateway_{self.gateway_id}"

    def device_config(self, node: str) -> str:
        """The node's device discovery topic."""
        return f"{self.discovery_prefix}/device/{self.device_id(node)}/config"

    @property
    def gateway_config(self) -> str:
        return f"{self.discovery_prefix}/device/{self.gateway_device_id}/config"

    def config(self, component: str, node: str, what: str) -> str:
        """A per-entity discovery topic of the layout before device discovery."""
        return f"{self.discovery_prefix}/{component}/{self.device_id(node)}/{what}/config"

    def legacy_configs(self, node: str) -> dict[str, bool]:
        """Every per-entity discovery topic older gateways used for this node -> True when HA
        can migrate it to the device config (the same discovery id: ``<device id> <what>``,
        so the entity keeps its entity id, history and settings); False for the layout before
        gateway ids (other unique ids: it is only removed)."""
        out = {
            f"{self.discovery_prefix}/{c}/csi_edge_{slug(node)}/{w}/config": False
            for c, w in LEGACY_ENTITIES
        }
        out.update({self.config(c, node, w): True for c, w in LEGACY_ENTITIES})
        return out


def _component(e: Entity, uid: str, expire_after_s: int) -> dict:
    payload = {
        "p": e.component,
        "name": e.name,
        "unique_id": uid,
        "object_id": slug(uid),  # entity ids are [a-z0-9_]: csi_edge_gw_a_... for gw-a
        "value_template": e.template,
        **e.extra,
    }
    if expire_after_s and e.expires:
        payload["expire_after"] = int(expire_after_s)
    return payload


def node_device(
    topics: Topics,
    node: str,
    *,
    name: str = "",
    area: str = "",
    heart_rate: bool = False,
    rssi: bool = True,
    expire_after_s: int = 0,
    controls: bool = True,
) -> tuple[str, dict]:
    """(topic, payload) of one node's device config. ``name``/``area`` come from the inventory
    (NodeReport.name/area; "" = an automatic name, no suggested area); entities that cannot have
    a value are left out (heart rate unless enabled, RSSI while the source gives none)."""
    dev_id = topics.device_id(node)
    device = {
        "identifiers": [dev_id],
        "name": name or f"CSI node {node}",
        "manufacturer": "Espressif (CSI via csi-edge)",
        "model": "ESP32-S3 CSI node",
        "sw_version": f"csi-edge {__version__}",
        "via_device": topics.gateway_device_id,
    }
    if area:
        device["suggested_area"] = area
    skip = {"heart_rate"} if not heart_rate else set()
    if not rssi:
        skip.add("rssi")
    cmps = {
        e.what: _component(e, f"{dev_id}_{e.what}", expire_after_s)
        for e in ENTITIES
        if e.what not in skip
    }
    if controls:
        cmps.update(_controls(topics, node, dev_id))
    payload = {
        "dev": device,
        "o": ORIGIN,
        "cmps": cmps,
        "state_topic": topics.state(node),
        "availability": [{"topic": topics.status}, {"topic": topics.availability(node)}],
        "availability_mode": "all",
        "qos": 0,
    }
    return topics.device_config(node), payload


#: the motion threshold HA's number may set (csi_edge.estimators.MOTION_RATIO_RANGE)
RATIO_MIN, RATIO_MAX, RATIO_STEP = 1.1, 10.0, 0.1


def _controls(topics: Topics, node: str, dev_id: str) -> dict:
    """The node's Recalibrate button and motion threshold number: they act on the gateway."""
    return {
        "recalibrate": {
            "p": "button",
            "name": "Recalibrate",
            "unique_id": f"{dev_id}_recalibrate",
            "object_id": slug(f"{dev_id}_recalibrate"),
            "command_topic": topics.command(node, "recalibrate"),
            "payload_press": "PRESS",
            "entity_category": "config",
            "icon": "mdi:tune-vertical",
        },
        "motion_ratio": {
            "p": "number",
            "name": "Motion threshold",
            "unique_id": f"{dev_id}_motion_ratio",
            "object_id": slug(f"{dev_id}_motion_ratio"),
            "command_topic": topics.command(node, "motion_ratio"),
            "state_topic": topics.ratio_state(node),  # its own, not the node's JSON state
            "min": RATIO_MIN,
            "max": RATIO_MAX,
            "step": RATIO_STEP,
            "mode": "box",
            "entity_category": "config",
            "icon": "mdi:motion-sensor",
        },
    }


ROOM_ENTITIES: tuple[Entity, ...] = (
    ENTITIES[0],  # presence: occupied if any node decided so, unknown while none has
    ENTITIES[1],  # motion
    ENTITIES[2],  # breathing: the most confident node's
    Entity(
        "sensor",
        "breathing_node",
        "Breathing from",
        _VALUE.format("breathing_node"),
        {"icon": "mdi:access-point", **_DIAG},
    ),
)


def room_device(topics: Topics, area: str, *, expire_after_s: int = 0) -> tuple[str, dict]:
    """(topic, payload) of the room device of one ``area`` (csi_edge.sinks.rooms): available
    while the gateway is online and any node of the room is."""
    dev_id = topics.room_device_id(area)
    device = {
        "identifiers": [dev_id],
        "name": area,
        "suggested_area": area,
        "manufacturer": "csi-edge",
        "model": "CSI room (its nodes combined)",
        "sw_version": f"csi-edge {__version__}",
        "via_device": topics.gateway_device_id,
    }
    cmps = {e.what: _component(e, f"{dev_id}_{e.what}", expire_after_s) for e in ROOM_ENTITIES}
    payload = {
        "dev": device,
        "o": ORIGIN,
        "cmps": cmps,
        "state_topic": topics.room_state(area),
        "availability": [{"topic": topics.status}, {"topic": topics.room_availability(area)}],
        "availability_mode": "all",
        "qos": 0,
    }
    return topics.room_config(area), payload


def gateway_device(topics: Topics, *, host: str = "", expire_after_s: int = 0) -> tuple[str, dict]:
    """(topic, payload) of the gateway's own device: its diagnostics, available while its status
    topic says ``online``."""
    dev_id = topics.gateway_device_id
    device = {
        "identifiers": [dev_id],
        "name": f"CSI gateway {topics.gateway_id}",
        "manufacturer": "csi-edge",
        "model": "CSI gateway" + (f" on {host}" if host else ""),
        "sw_version": __version__,
    }
    # states come every ~10 s: expire only after a few missed ones
    expire = max(int(expire_after_s), 35) if expire_after_s else 0
    cmps = {e.what: _component(e, f"{dev_id}_{e.what}", expire) for e in GATEWAY_ENTITIES}
    payload = {
        "dev": device,
        "o": ORIGIN,
        "cmps": cmps,
        "state_topic": topics.gateway_state,
        "availability_topic": topics.status,
        "qos": 0,
    }
    return topics.gateway_config, payload
