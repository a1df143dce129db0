"""``csi-edge ha forget``: remove one node's device from Home Assistant.

Home Assistant removes an MQTT device (its entities, then the device) when its retained device
config becomes empty. This reads the broker's retained topics of one gateway back first, so the
node can be given by its key, topic slug, device id or HA device name, so a typo gets a list of
what exists instead of a silent no-op, and so only topics that hold something are cleared (an
empty message on a per-entity topic the device config owns makes HA log a conflict). The node's
retained state and availability are cleared too, or they would sit on the broker for ever.

A node that still sends comes back: the running gateway re-announces it when it reconnects or
Home Assistant restarts. Stop the node (or remove it from the inventory) first.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from csi_edge.errors import DeviceError, InputError
from csi_edge.frames import slug
from csi_edge.sinks.mqtt_discovery import Topics

#: how long to wait for the broker (connect, read-back, publish acknowledgements)
TIMEOUT_S = 5.0


@dataclass
class KnownNode:
    """One node of the gateway as the broker has it retained."""

    slug: str
    name: str = ""
    device_topic: str = ""
    availability: str = ""


@dataclass
class ForgetResult:
    node: str
    name: str
    gateway_id: str
    broker: str
    device_id: str
    #: topics now empty (retained messages deleted)
    cleared: list[str] = field(default_factory=list)
    #: the node's availability was "online": it is sending, and will come back
    was_online: bool = False

    def to_json(self) -> dict:
        return dict(self.__dict__)


class _ReadBack:
    """Every retained message under some filters, until the echo of a private token."""

    def __init__(self, client, filters: list[str], sync_topic: str) -> None:
        self.client, self.sync_topic = client, sync_topic
        self.token = uuid.uuid4().hex
        self.got: dict[str, str] = {}
        self.done = threading.Event()
        client.on_message = self._on_message
        client.subscribe([(f, 1) for f in filters] + [(sync_topic, 1)])
        client.publish(sync_topic, self.token, qos=1)

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ARG002
        payload = msg.payload.decode("utf-8", "replace")
        if msg.topic == self.sync_topic:
            if payload == self.token:
                self.done.set()
        elif msg.retain and payload:
            self.got[msg.topic] = payload


def _known(topics: Topics, got: dict[str, str]) -> dict[str, KnownNode]:
    """This gateway's nodes, by slug, from retained availability and device configs."""
    nodes: dict[str, KnownNode] = {}
    for topic, payload in got.items():
        s = topics.node_of_availability(topic)
        if s is not None:
            nodes.setdefault(s, KnownNode(s)).availability = payload
    head = f"{topics.base}/nodes/"
    for topic in got:
        if topic.startswith(head) and topic.endswith("/state"):
            s = topic[len(head) : -len("/state")]
            nodes.setdefault(s, KnownNode(s))
    for topic, payload in got.items():
        if not topic.startswith(f"{topics.discovery_prefix}/device/"):
            continue
        try:
            doc = json.loads(payload)
            state = str(doc.get("state_topic", ""))
            name = str(doc.get("dev", doc.get("device", {})).get("name", ""))
        except (ValueError, AttributeError):
            continue  # not a config csi-edge wrote
        if state.startswith(head) and state.endswith("/state"):
            s = state[len(head) : -len("/state")]
            k = nodes.setdefault(s, KnownNode(s))
            k.name, k.device_topic = name, topic
    return nodes


def _match(node: str, nodes: dict[str, KnownNode], topics: Topics) -> KnownNode | None:
    want = node.strip()
    for k in nodes.values():
        if want.casefold() in (k.name.casefold(), k.slug) or slug(want) == k.slug:
            return k
        if k.device_topic and want == topics.device_id(k.slug):
            return k
    return None


def forget_node(
    node: str,
    *,
    host: str,
    port: int,
    gateway_id: str,
    prefix: str = "csi-edge",
    discovery_prefix: str = "homeassistant",
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = TIMEOUT_S,
    settle_s: float = 1.0,
) -> ForgetResult:
    """Clear one node's retained device config, per-entity configs, state and availability.

    Raises DeviceError when the broker cannot be reached and InputError (listing the nodes
    that exist, or the gateway ids seen) when the node is not one of this gateway's."""
    import paho.mqtt.client as mqtt

    if not node.strip():
        raise InputError("NODE: expected a node key, slug, device id or Home Assistant name")
    topics = Topics(prefix, gateway_id, discovery_prefix)
    broker = f"{host}:{port}"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"csi-edge-forget-{uuid.uuid4().hex[:8]}"
    )
    if username:
        client.username_pw_set(username, password)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG001
        if reason_code.is_failure:
            refused.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=30)
    except (OSError, ValueError) as e:
        raise DeviceError(f"MQTT broker {broker}: cannot connect ({e})") from None
    client.loop_start()
    try:
        if not connected.wait(timeout_s) or refused:
            why = refused[0] if refused else f"no answer within {timeout_s:.0f} s"
            raise DeviceError(f"MQTT broker {broker} refused the connection: {why}")
        filters = [
            f"{discovery_prefix}/device/+/config",
            topics.availability_filter,
            f"{topics.base}/nodes/+/state",
            topics.ratio_filter,
            f"{prefix}/+/status",
            *topics.legacy_filters,
        ]
        rb = _ReadBack(client, filters, f"{topics.base}/forget")
        if not rb.done.wait(timeout_s):
            raise DeviceError(
                f"MQTT broker {broker}: no answer within {timeout_s:.0f} s (refused the "
                "subscription? check the user's ACL)"
            )
        nodes = _known(topics, rb.got)
        hit = _match(node, nodes, topics)
        if hit is None:
            raise InputError(_not_found(node, topics, nodes, rb.got, broker))
        device_topic = hit.device_topic or topics.device_config(hit.slug)
        wanted = [
            device_topic,
            *topics.legacy_configs(hit.slug),
            topics.state(hit.slug),
            topics.availability(hit.slug),
            topics.ratio_state(hit.slug),
        ]
        cleared = [t for t in dict.fromkeys(wanted) if t in rb.got]
        configs = [t for t in cleared if t.startswith(f"{discovery_prefix}/")]
        for group in (configs, [t for t in cleared if t not in configs]):
            infos = [client.publish(t, "", qos=1, retain=True) for t in group]
            for info in infos:
                info.wait_for_publish(timeout_s)
            if group is configs and configs and len(cleared) > len(configs):
                # HA removes the entities first: an empty state on a topic a live entity still
                # reads would make it log a template warning
                time.sleep(settle_s)
        return ForgetResult(
            node=hit.slug,
            name=hit.name,
            gateway_id=gateway_id,
            broker=broker,
            device_id=topics.device_id(hit.slug),
            cleared=cleared,
            was_online=hit.availability == "online",
        )
    finally:
        client.loop_stop()
        client.disconnect()


def _not_found(node: str, topics: Topics, nodes: dict, got: dict, broker: str) -> str:
    if nodes:
        listed = ", ".join(
            f"{k.slug} ({k.name})" if k.name else k.slug
            for k in sorted(nodes.values(), key=lambda k: k.slug)
        )
        return f"node {node!r}: not one of gateway {topics.gateway_id!r}'s nodes on {broker}; it has: {listed}"
    seen = sorted(
        t.split("/")[-2] for t in got if t.startswith(f"{topics.prefix}/") and t.endswith("/status")
    )
    hint = (
        f"gateway ids on this broker: {', '.join(seen)}"
        if seen
        else "no csi-edge gateway has published there"
    )
    return f"node {node!r}: gateway {topics.gateway_id!r} has no nodes on {broker} ({hint}; set --gateway-id)"
