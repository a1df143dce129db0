"""MQTT publishing with Home Assistant MQTT discovery; the topic layout is in docs/home-assistant.md.

Every topic is under ``<prefix>/<gateway_id>/`` so gateways sharing a broker never touch each
other's: ``status`` (the gateway: ``online``/``offline``, the last will), and per node
``nodes/<node>/state`` (one JSON report about once a second) and ``nodes/<node>/availability``
(retained ``online``/``offline``), and ``gateway/state`` (the gateway's diagnostics, every 10 s).
HA discovery is one device config per node and one for the gateway,
``<discovery>/device/<device id>/config`` (:mod:`csi_edge.sinks.mqtt_discovery`).

Upgrading from per-entity configs (``<discovery>/<component>/<device id>/<what>/config``): the
start-up read-back also collects those that are still retained; when a node is first announced,
each of its own is sent HA's ``{"migrate_discovery": true}`` (the entity keeps its entity id,
history and settings) and then cleared, before the device config goes out. Only topics that
exist are touched: any message on one while the device config owns the entity makes HA log a
conflict warning.

Availability tells the truth: a retained state outlives the gateway, so after a restart a node
that died meanwhile would show its last values as current. At every connection the sink reads its
own retained availability topics back and sets every node that has not sent frames since this
start (and every node the inventory names) ``offline`` *before* it announces the gateway
``online``; a node turns ``online`` only when a report says it is, and ``offline`` again when
ingest marks it offline or forgets it. The end of the read-back is found by echoing a message on
a private topic: the broker delivers it after the retained messages of the earlier subscription.

When Home Assistant announces itself (``online`` on ``<discovery>/status``), discovery, states
and availability are re-published after a random 0-5 s delay (so a fleet of gateways does not
answer at once), so a restarted HA or a deleted device recovers without a gateway restart.

paho-mqtt runs its network loop in its own thread and reconnects by itself, so a broker that is
down is not fatal. Callbacks run on that thread and ``publish`` on the gateway loop, so the
per-node availability state is under one lock. TLS, credentials and the bounded queue that holds
messages while the broker is away are :mod:`csi_edge.sinks.mqtt_transport`; the queue is sent
once the start-up read-back is over, before the gateway is announced ``online``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from csi_edge import __version__
from csi_edge.errors import ConfigError
from csi_edge.frames import slug
from csi_edge.report import NodeReport
from csi_edge.sinks.mqtt_discovery import (
    RATIO_MAX,
    RATIO_MIN,
    Topics,
    gateway_device,
    node_device,
    room_device,
)
from csi_edge.sinks.mqtt_transport import Transport, TransportConfig
from csi_edge.sinks.rooms import NodeView, room_state

log = logging.getLogger("csi_edge.mqtt")

ONLINE, OFFLINE = "online", "offline"
#: this many unexpected disconnects within TAKEOVER_WINDOW_S: another client has our client id
TAKEOVER_DISCONNECTS, TAKEOVER_WINDOW_S = 3, 60.0
#: no echo of the sync message within this long (a broker ACL refusing the subscription):
#: announce the gateway online anyway
SYNC_TIMEOUT_S = 3.0
#: how often the gateway device's state (uptime, frames/s, ...) is published
GATEWAY_STATE_EVERY_S = 10.0
#: HA's request to move an entity from its per-entity config to a device config
MIGRATE = json.dumps({"migrate_discovery": True})


@dataclass
class MqttConfig:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    #: kept out of repr() so a logged config never shows it
    password: str | None = field(default=None, repr=False)
    prefix: str = "csi-edge"
    discovery_prefix: str = "homeassistant"
    #: "" = resolved at start (csi_edge.gatewayid: derived from the host name, kept in the
    #: state directory)
    gateway_id: str = ""
    #: "" = ``csi-edge-<gateway_id>``: one per gateway (a broker disconnects the older of two
    #: clients with the same id, so a fixed id made two gateways knock each other off)
    client_id: str = ""
    #: announce the heart-rate entity (VitalsConfig.heart_enabled); off, it is removed
    heart_rate: bool = False
    #: HA's expire_after on every entity (seconds, 0 = off)
    expire_after_s: int = 30
    #: node keys known from the inventory: set offline at start until they send frames
    known_nodes: tuple[str, ...] = ()
    #: the re-announce after HA's birth message waits a random 0..this many seconds
    birth_delay_s: float = 5.0
    #: pose keypoints (~1.5 KB a report) on their own non-retained topic; off: not sent at all
    #: (Home Assistant renders every template of a state topic per message)
    pose: bool = False
    #: the motion threshold a node has until HA's number sets another ([vitals] motion_ratio)
    motion_ratio: float = 2.0
    #: TLS, the bounded queue (csi_edge.sinks.mqtt_transport)
    transport: TransportConfig = field(default_factory=TransportConfig)

    def __post_init__(self) -> None:
        from csi_edge.gatewayid import resolve_gateway_id

        self.gateway_id = resolve_gateway_id(self.gateway_id)
        if not self.client_id:
            self.client_id = f"csi-edge-{self.gateway_id}"


def refuse_credentials_in_host(host: str) -> None:
    """``user:pw@host`` would put a password on the command line, in ps and shell history."""
    if "@" in host:
        raise ConfigError(
            f"MQTT host {host.rsplit('@', 1)[-1]!r}: credentials in the host are refused; set "
            "sinks.mqtt.username in the config and the password in $CSI_EDGE_MQTT_PASSWORD"
        )


class MqttSink:
    """Publishes node reports, availability and HA discovery (see the module docstring)."""

    def __init__(self, config: MqttConfig) -> None:
        import paho.mqtt.client as mqtt

        refuse_credentials_in_host(config.host)
        self.config = config
        self.topics = Topics(config.prefix, config.gateway_id, config.discovery_prefix)
        self.status_topic = self.topics.status
        self._lock = threading.Lock()
        self._announced: set[str] = set()  # node keys whose discovery is on this connection
        self._meta: dict[str, tuple] = {}  # node key -> (name, area, rssi) last announced
        self._old: set[str] = set()  # per-entity discovery topics still retained (read back)
        self._ready = False  # the read-back of this connection is over: announce
        self._nodes_now: dict[str, tuple[bool, float]] = {}  # node slug -> (online, rate_hz)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._ratio: dict[str, float] = {}  # node slug -> motion threshold set from HA
        self._views: dict[str, tuple[str, NodeView]] = {}  # node slug -> (area, latest view)
        self._room_avail: dict[str, str] = {}  # area slug -> room availability published
        self._rooms_announced: set[str] = set()  # areas whose room config is on this connection
        self._commands: list[tuple[str, str, object]] = []  # (node slug, what, value) to hand on
        self._avail: dict[str, str] = {}  # node slug -> availability last published
        self._conn_sent: set[str] = set()  # node slugs whose availability went on this connection
        self._last: dict[str, tuple[str, str]] = {}  # node slug -> (node key, state JSON)
        self._sync_token = ""
        self._sync_timer: threading.Timer | None = None
        self._birth_timer: threading.Timer | None = None
        self.marked_offline = 0  # stale nodes set offline at start-up (read back or inventory)
        self.reconnects = -1
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id)
        self.transport = Transport(
            self.client, config.transport, config.host, config.port, config.username, config.password
        )
        self.client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._drops: list[float] = []  # monotonic times of unexpected disconnects
        self._takeover_warned = False
        self._fail_logged = False
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        # connect_async + loop_start: a broker that is down at start-up is retried, not fatal.
        self.client.connect_async(config.host, config.port, keepalive=30)
        self.client.loop_start()
        self._ticker = threading.Thread(target=self._tick, name="mqtt-gateway-state", daemon=True)
        self._ticker.start()

    # -- connection -------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        if reason_code.is_failure:
            log.warning(
                "MQTT broker %s:%s refused the connection: %s",
                self.config.host,
                self.config.port,
                reason_code,
            )
            return
        log.info(
            "MQTT connected to %s:%s as %s (topics %s/)",
            self.config.host,
            self.config.port,
            self.config.client_id,
            self.topics.base,
        )
        self._fail_logged = False
        self.transport.accepted()
        self.reconnects += 1
        with self._lock:
            self._announced.clear()  # re-announce in case the broker lost its retained configs
            self._rooms_announced.clear()
            self._conn_sent.clear()
            self._ready = False
            self._sync_token = uuid.uuid4().hex
            token = self._sync_token
        # Retained availability first, then the echo of our sync message: when it comes back,
        # every retained availability of this gateway has been seen (see module docstring).
        client.subscribe(
            [
                (self.topics.availability_filter, 1),
                (self.topics.sync, 1),
                (self.topics.ha_status, 1),
                *((f, 1) for f in self.topics.legacy_filters),
                (self.topics.command_filter, 1),
                (self.topics.ratio_filter, 1),  # read back: applied again after a restart
                (self.topics.room_availability_filter, 1),
            ]
        )
        client.publish(self.topics.sync, token, qos=1, retain=False)
        self._restart_timer("_sync_timer", SYNC_TIMEOUT_S, self._synced, token)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ARG002
        """Dropped again and again right after connecting: a broker does that when a second
        client connects with the same client id (two gateways with one gateway id, e.g. two
        boards both called ``raspberrypi``). paho reconnects silently, so say it, once."""
        self.transport.down()
        if not reason_code.is_failure:
            return  # our own disconnect()
        if self.transport.explain_drop():
            return  # refused by TLS or before the CONNACK: not another client
        now = time.monotonic()
        self._drops = [t for t in self._drops if now - t < TAKEOVER_WINDOW_S] + [now]
        if len(self._drops) >= TAKEOVER_DISCONNECTS and not self._takeover_warned:
            self._takeover_warned = True
            log.warning(
                "MQTT: the broker dropped the connection %d times in %.0f s: another client "
                "probably uses client id %r (a second gateway with gateway id %r?); set a "
                "distinct gateway_id in gateway.toml",
                len(self._drops),
                TAKEOVER_WINDOW_S,
                self.config.client_id,
                self.config.gateway_id,
            )

    def _on_connect_fail(self, client, userdata) -> None:  # noqa: ARG002
        """A wrong host name or a broker that is down is retried silently by paho: say so, once
        per outage, or the user sees nothing at all (a TLS handshake failure: its reason)."""
        if self.transport.log_tls_failure():
            return
        if not self._fail_logged:
            self._fail_logged = True
            log.warning(
                "MQTT broker %s:%s unreachable; retrying in the background",
                self.config.host,
                self.config.port,
            )

    def _restart_timer(self, attr: str, delay: float, fn, *args) -> None:
        old = getattr(self, attr)
        if old is not None:
            old.cancel()
        t = threading.Timer(delay, fn, args)
        t.daemon = True
        setattr(self, attr, t)
        t.start()

    def _on_message(self, client, userdata, msg) -> None:  # noqa: ARG002
        payload = msg.payload.decode("utf-8", "replace")
        if msg.topic == self.topics.sync:
            self._synced(payload)
        elif msg.topic == self.topics.ha_status:
            if payload == ONLINE:
                delay = random.uniform(0.0, self.config.birth_delay_s)
                log.info("Home Assistant is online: re-announcing in %.1f s", delay)
                self._restart_timer("_birth_timer", delay, self.reannounce)
        elif msg.topic.endswith("/set"):
            self._on_command(msg.topic, payload, bool(msg.retain))
        elif (node := self.topics.node_of(msg.topic, "/motion_ratio")) is not None:
            ratio = _ratio(payload)
            with self._lock:
                if ratio is not None and self._ratio.get(node) != ratio:
                    self._ratio[node] = ratio  # a retained value from before this start
                    self._commands.append((node, "motion_ratio", ratio))
        elif (room := self._room_of_availability(msg.topic)) is not None:
            if payload == ONLINE:
                with self._lock:  # a room left online by a gateway that died: not current
                    if self._room_avail.get(room) != ONLINE:
                        self._room_avail[room] = OFFLINE
                        self.transport.publish(msg.topic, OFFLINE, qos=1, retain=True)
        elif msg.topic.startswith(f"{self.config.discovery_prefix}/"):
            if "/csi_edge_" in msg.topic and msg.topic.endswith("/config"):
                with self._lock:  # an old per-entity config (or its removal)
                    (self._old.add if payload else self._old.discard)(msg.topic)
        else:
            node = self.topics.node_of_availability(msg.topic)
            if node is not None and payload == ONLINE:
                self._stale_online(node, msg.topic)

    def _room_of_availability(self, topic: str) -> str | None:
        head, tail = f"{self.topics.base}/rooms/", "/availability"
        if topic.startswith(head) and topic.endswith(tail):
            room = topic[len(head) : -len(tail)]
            return room if room and "/" not in room else None
        return None

    def _publish_rooms(self, areas: set[str]) -> None:
        """The room of each area (under the lock): its config once per connection, its state,
        and its availability on change (online while any of its nodes is)."""
        for area in sorted(areas):
            nodes = [v for a, v in self._views.values() if a == area]
            s = slug(area)
            avail = ONLINE if any(v.online for v in nodes) else OFFLINE
            if self._ready and self.client.is_connected() and s not in self._rooms_announced:
                topic, payload = room_device(
                    self.topics, area, expire_after_s=self.config.expire_after_s
                )
                self.transport.publish(topic, json.dumps(payload), qos=1, retain=True)
                self._rooms_announced.add(s)
            state = json.dumps(room_state(nodes))
            self.transport.publish(self.topics.room_state(area), state, qos=0, retain=True)
            if self._room_avail.get(s) != avail:
                self._room_avail[s] = avail
                self.transport.publish(self.topics.room_availability(area), avail, qos=1, retain=True)

    def _on_command(self, topic: str, payload: str, retained: bool) -> None:
        """HA's Recalibrate button or motion threshold number for one node (handed to the
        gateway by take_commands)."""
        node = self.topics.node_of(topic, "/recalibrate/set")
        if node is not None:
            if retained or payload != "PRESS":
                return  # a press someone left retained must not recalibrate at every start
            with self._lock:
                self._commands.append((node, "recalibrate", None))
            log.info("MQTT: Recalibrate pressed for node %s", node)
            return
        node = self.topics.node_of(topic, "/motion_ratio/set")
        if node is None:
            return
        ratio = _ratio(payload)
        if ratio is None:
            log.warning(
                "MQTT %s: %r is not a motion threshold (expected a number %g..%g); ignored",
                topic,
                payload[:40],
                RATIO_MIN,
                RATIO_MAX,
            )
            return
        with self._lock:
            self._ratio[node] = ratio
            self._commands.append((node, "motion_ratio", ratio))
            self.transport.publish(self.topics.ratio_state(node), f"{ratio:g}", qos=1, retain=True)

    def take_commands(self) -> list[tuple[str, str, object]]:
        """Commands for nodes the gateway reports, as (node key, what, value); called by the
        gateway once per report. A restored threshold waits until its node reports."""
        with self._lock:
            keys = {s: key for s, (key, _state) in self._last.items()}
            out, keep = [], []
            for node, what, value in self._commands:
                if node in keys:
                    out.append((keys[node], what, value))
                elif what == "motion_ratio":
                    keep.append((node, what, value))
                else:
                    log.warning("MQTT: %s for node %s, which is not reporting: ignored", what, node)
            self._commands = keep
        return out

    def _stale_online(self, node: str, topic: str) -> None:
        """A retained ``online`` for a node that has not said so since this start: a node that
        died while the gateway was away. Set it offline (its retained state is not current)."""
        with self._lock:
            if self._avail.get(node) == ONLINE:
                return  # live since this start: our own message
            self.marked_offline += 1
            self._set_avail(node, topic, OFFLINE)
        log.info("MQTT: node %s has sent no frames since the gateway started: offline", node)

    def _synced(self, token: str) -> None:
        """The retained read-back is over (or timed out): the inventory's silent nodes go offline,
        live nodes' availability is re-sent, then the gateway is announced online."""
        with self._lock:
            if token != self._sync_token:
                return  # an old connection's echo or timer
            self._sync_token = ""
            timer = self._sync_timer
            self.transport.go_live()  # what waited while the broker was away, in order
            for key in self.config.known_nodes:
                s = slug(key)
                if s not in self._avail:
                    self.marked_offline += 1
                    self._set_avail(s, self.topics.availability(key), OFFLINE)
            for key, _state in self._last.values():  # not yet sent on this connection
                s = slug(key)
                if s not in self._conn_sent:
                    self._set_avail(s, self.topics.availability(key), self._avail[s])
            self._ready = True
            self._announce_gateway()
            for key, _state in self._last.values():  # reported during the read-back
                if key not in self._announced:
                    self._announce(key)
            self._publish_rooms({a for a, _ in self._views.values() if a})
            self.transport.publish(self.status_topic, ONLINE, qos=1, retain=True)
        # the per-entity configs are known now (each arrived once, retained): stop listening
        self.client.unsubscribe(self.topics.legacy_filters)
        if timer is not None:
            timer.cancel()

    # -- publishing -------------------------------------------------------------------------
    def _set_avail(self, node_slug: str, topic: str, value: str) -> None:
        """Publish one node's availability (under the lock; retained, QoS 1)."""
        self.transport.publish(*self._avail_message(node_slug, topic, value, self.client.is_connected()))

    def _avail_message(
        self, node_slug: str, topic: str, value: str, connected: bool
    ) -> tuple[str, str, int, bool]:
        """Record one node's availability as sent (under the lock) and return its message
        (topic, payload, QoS 1, retained) for :meth:`_set_avail` or a batch."""
        self._avail[node_slug] = value
        if connected:
            self._conn_sent.add(node_slug)
        return topic, value, 1, True

    def _announce(self, node: str) -> None:
        """The device config of one node (under the lock, while connected), after migrating and
        clearing the per-entity configs an older gateway left for it (module docstring)."""
        name, area, rssi = self._meta.get(node, ("", "", True))
        for topic, migrate in self.topics.legacy_configs(node).items():
            if topic in self._old:
                self._old.discard(topic)
                if migrate:
                    self.transport.publish(topic, MIGRATE, qos=1, retain=False)
                self.transport.publish(topic, "", qos=1, retain=True)
        topic, payload = node_device(
            self.topics,
            node,
            name=name,
            area=area,
            heart_rate=self.config.heart_rate,
            rssi=rssi,
            expire_after_s=self.config.expire_after_s,
        )
        self.transport.publish(topic, json.dumps(payload), qos=1, retain=True)
        s = slug(node)
        if s not in self._ratio:  # the number shows the threshold in use, not "unknown"
            self._ratio[s] = self.config.motion_ratio
            self.transport.publish(
                self.topics.ratio_state(node), f"{self.config.motion_ratio:g}", qos=1, retain=True
            )
        self._announced.add(node)

    def _announce_gateway(self) -> None:
        """The gateway's own device config and a first state (under the lock)."""
        topic, payload = gateway_device(
            self.topics, host=socket.gethostname(), expire_after_s=self.config.expire_after_s
        )
        self.transport.publish(topic, json.dumps(payload), qos=1, retain=True)
        self._publish_gateway_state()

    def gateway_state(self) -> dict:
        """The gateway device's state: version, uptime, frames/s, MQTT reconnects, nodes online."""
        nodes = list(self._nodes_now.values())
        return {
            "version": __version__,
            "uptime_s": int(time.monotonic() - self._started),
            "frames_per_s": round(sum(r for on, r in nodes if on), 1),
            "mqtt_reconnects": max(self.reconnects, 0),
            "nodes_online": sum(1 for on, _ in nodes if on),
        }

    def _publish_gateway_state(self) -> None:
        self.transport.publish(
            self.topics.gateway_state, json.dumps(self.gateway_state()), qos=0, retain=True
        )

    def _tick(self) -> None:
        """The gateway state every GATEWAY_STATE_EVERY_S, whether or not nodes send."""
        while not self._stop.wait(GATEWAY_STATE_EVERY_S):
            with self._lock:
                if self._ready and self.client.is_connected():
                    self._publish_gateway_state()

    def publish(self, reports: list[NodeReport]) -> None:
        """Every node's state in one batch (called on the ingest loop, once per report): the
        JSON is built before the lock is taken, new nodes are announced first, then every
        node's state and availability change go to paho together (:meth:`Transport.
        publish_many`). Per node the state comes before the availability (HA must never show
        the previous run's values as live), and the pair stays together, so a full queue while
        the broker is away drops whole older nodes' messages, never a node's state alone."""
        prepared = [self._prepare(r) for r in reports]
        areas: set[str] = set()
        out: list[tuple[str, str, int, bool]] = []
        with self._lock:
            connected = self.client.is_connected()
            can_announce = self._ready and connected
            for r, s, state, pose, meta, avail in prepared:
                if self._meta.get(r.node) != meta:
                    # a first RSSI, or a name/area changed by a reload: announce again
                    self._meta[r.node] = meta
                    self._announced.discard(r.node)
                online = avail == ONLINE
                self._nodes_now[s] = (online, r.link.get("rate_hz") or 0.0)
                old_area = self._views.get(s, ("", None))[0]
                if r.area or old_area:
                    areas.update(a for a in (r.area, old_area) if a)
                    self._views[s] = (r.area, _view(r))
                if can_announce and r.node not in self._announced:
                    self._announce(r.node)
                self._last[s] = (r.node, state)
                out.append((self.topics.state(r.node), state, 0, True))
                if pose is not None:
                    out.append((self.topics.pose(r.node), pose, 0, False))
                if self._avail.get(s) != avail:
                    out.append(self._avail_message(s, self.topics.availability(r.node), avail, connected))
            self.transport.publish_many(out)
            if areas:
                self._publish_rooms(areas)

    def _prepare(self, r: NodeReport) -> tuple:
        """One report's payloads, off the lock: (report, slug, state JSON, pose JSON or None,
        discovery meta, availability)."""
        doc = r.to_json()
        pose = doc.pop("pose", None)
        doc["diag"] = diagnostics(r.link)
        pose_json = json.dumps(pose) if self.config.pose and pose is not None else None
        meta = (r.name, r.area, r.link.get("rssi") is not None)
        # online = it sent frames since this start and recently (ingest's link.online)
        avail = ONLINE if r.link.get("online") else OFFLINE
        return r, slug(r.node), json.dumps(doc), pose_json, meta, avail

    def forget(self, keys: list[str]) -> None:
        """Ingest forgot silent nodes: unavailable in HA (their devices stay, with their history;
        removing a device is an explicit user action)."""
        with self._lock:
            for key in keys:
                s = slug(key)
                self._last.pop(s, None)
                self._nodes_now.pop(s, None)
                area = self._views.pop(s, ("", None))[0]
                if area:
                    self._publish_rooms({area})
                self._set_avail(s, self.topics.availability(key), OFFLINE)

    def reannounce(self) -> None:
        """Discovery, states and availability of every current node again (HA came online)."""
        if not self.client.is_connected():
            return
        with self._lock:
            if self._ready:
                self._announce_gateway()
            self._rooms_announced.clear()
            self._publish_rooms({a for a, _ in self._views.values() if a})
            for key, state in self._last.values():
                self._announce(key)
                self.transport.publish(self.topics.state(key), state, qos=0, retain=True)
                self._set_avail(slug(key), self.topics.availability(key), self._avail[slug(key)])

    def stats(self) -> dict:
        """For /health and /metrics (csi_edge.app.status.mqtt_status)."""
        return {
            "connected": bool(self.client.is_connected()),
            "broker": f"{self.config.host}:{self.config.port}",
            "gateway_id": self.config.gateway_id,
            "reconnects": max(self.reconnects, 0),
            **self.transport.stats(),
        }

    def close(self) -> None:
        self._stop.set()
        for attr in ("_sync_timer", "_birth_timer"):
            t = getattr(self, attr)
            if t is not None:
                t.cancel()
        if self.client.is_connected():
            self.transport.go_live()  # a stop during the start-up read-back
            infos = []
            with self._lock:
                # a clean stop: every node is unavailable too (not only via the gateway status)
                for key, _state in self._last.values():
                    infos.append(
                        self.transport.publish(
                            self.topics.availability(key), OFFLINE, qos=1, retain=True
                        )
                    )
                for area in {a for a, _ in self._views.values() if a}:
                    infos.append(
                        self.transport.publish(
                            self.topics.room_availability(area), OFFLINE, qos=1, retain=True
                        )
                    )
                infos.append(self.transport.publish(self.status_topic, OFFLINE, qos=1, retain=True))
            for info in infos:
                if info is not None:
                    info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


def _view(r: NodeReport) -> NodeView:
    return NodeView(
        key=r.node,
        name=r.name,
        online=bool(r.link.get("online")),
        presence=r.presence,
        motion=r.motion,
        breathing_bpm=r.breathing_bpm,
        breathing_conf=float(r.breathing_conf or 0.0),
    )


def _ratio(payload: str) -> float | None:
    """A motion threshold from HA's number (clamped to its range), None if not a number."""
    try:
        v = float(payload)
    except ValueError:
        return None
    return min(max(v, RATIO_MIN), RATIO_MAX) if math.isfinite(v) else None


def diagnostics(link: dict) -> dict:
    """The per-node diagnostic values HA's entities read (``diag`` in the state): frame rate,
    loss since the gateway started (%), last frame (ISO 8601 UTC, for a timestamp sensor).
    Null when not known, so HA shows unknown rather than a made-up 0."""
    frames, lost = link.get("frames") or 0, link.get("lost") or 0
    seen = link.get("last_seen")
    last = None
    if isinstance(seen, (int, float)) and math.isfinite(seen) and seen > 0:
        last = datetime.fromtimestamp(seen, timezone.utc).isoformat(timespec="seconds")
    return {
        "rate_hz": link.get("rate_hz"),
        "loss_pct": round(100.0 * lost / (frames + lost), 2) if frames + lost > 0 else None,
        "last_frame": last,
    }


def config_from(
    cfg, host: str, port: int, password: str | None, username: str | None = None
) -> MqttConfig:
    """The sink's config from a GatewayConfig's [sinks.mqtt] (one place for both builders)."""
    m = cfg.sinks.mqtt
    vitals = getattr(cfg, "vitals", None)  # the [vitals] section, where the config has one
    known: tuple[str, ...] = ()
    if getattr(cfg, "nodes", None) or getattr(getattr(cfg, "inventory", None), "results", None):
        from csi_edge.gatewayid import resolve_gateway_id
        from csi_edge.inventory import inventory_from_config

        # the inventory's boards exist before they send: offline until they do
        known = tuple(inventory_from_config(cfg, resolve_gateway_id(cfg.gateway_id)).keys())
    return MqttConfig(
        known_nodes=known,
        host=host,
        port=port,
        username=username or m.username or None,
        password=password,
        prefix=m.prefix,
        discovery_prefix=m.discovery_prefix,
        gateway_id=cfg.gateway_id,
        pose=bool(m.pose),
        heart_rate=bool(getattr(vitals, "heart_enabled", False)),
        expire_after_s=int(m.expire_after_s),
        motion_ratio=float(getattr(vitals, "motion_ratio", 2.0)),
        transport=TransportConfig(
            tls=m.tls,
            ca_file=m.ca_file,
            cert_file=m.cert_file,
            key_file=m.key_file,
            insecure=m.insecure,
            queue_max=m.queue_max,
        ),
    )
