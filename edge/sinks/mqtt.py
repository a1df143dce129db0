"""MQTT publishing with Home Assistant MQTT discovery; the topic layout is in docs/home-assistant.md.

Every topic is under ``<prefix>/<gateway_id>/`` so gateways sharing a broker never touch each
other's: ``status`` (the gateway: ``online``/``offline``, the last will), and per node
``nodes/<node>/state`` (one JSON report about once a second) and ``nodes/<node>/availability``
(retained ``online``/``offline``). HA discovery configs go under
``<discovery>/<component>/<device id>/<what>/config`` (:mod:`csi_edge.sinks.mqtt_discovery`).

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
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

from csi_edge.errors import ConfigError
from csi_edge.frames import slug
from csi_edge.report import NodeReport
from csi_edge.sinks.mqtt_discovery import Topics, discovery_messages
from csi_edge.sinks.mqtt_transport import Transport, TransportConfig

log = logging.getLogger("csi_edge.mqtt")

ONLINE, OFFLINE = "online", "offline"
#: this many unexpected disconnects within TAKEOVER_WINDOW_S: another client has our client id
TAKEOVER_DISCONNECTS, TAKEOVER_WINDOW_S = 3, 60.0
#: no echo of the sync message within this long (a broker ACL refusing the subscription):
#: announce the gateway online anyway
SYNC_TIMEOUT_S = 3.0


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
        self._names: dict[str, tuple[str, str]] = {}  # node key -> (name, area) of its reports
        self._legacy_cleared: set[str] = set()  # node keys whose pre-gateway-id configs are gone
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
            self._conn_sent.clear()
            self._sync_token = uuid.uuid4().hex
            token = self._sync_token
        # Retained availability first, then the echo of our sync message: when it comes back,
        # every retained availability of this gateway has been seen (see module docstring).
        client.subscribe(
            [
                (self.topics.availability_filter, 1),
                (self.topics.sync, 1),
                (self.topics.ha_status, 1),
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
        else:
            node = self.topics.node_of_availability(msg.topic)
            if node is not None and payload == ONLINE:
                self._stale_online(node, msg.topic)

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
            self.transport.publish(self.status_topic, ONLINE, qos=1, retain=True)
        if timer is not None:
            timer.cancel()

    # -- publishing -------------------------------------------------------------------------
    def _set_avail(self, node_slug: str, topic: str, value: str) -> None:
        """Publish one node's availability (under the lock; retained, QoS 1)."""
        self._avail[node_slug] = value
        self.transport.publish(topic, value, qos=1, retain=True)
        if self.client.is_connected():
            self._conn_sent.add(node_slug)

    def _announce(self, node: str) -> None:
        """Discovery for one node (under the lock, while connected)."""
        name, area = self._names.get(node, ("", ""))
        for topic, payload in discovery_messages(
            self.topics,
            node,
            heart_rate=self.config.heart_rate,
            expire_after_s=self.config.expire_after_s,
            name=name,
            area=area,
        ):
            body = "" if payload is None else json.dumps(payload)
            self.transport.publish(topic, body, qos=1, retain=True)
        if node not in self._legacy_cleared:
            self._legacy_cleared.add(node)
            for topic in self.topics.legacy_configs(node):
                self.transport.publish(topic, "", qos=1, retain=True)
        self._announced.add(node)

    def publish(self, reports: list[NodeReport]) -> None:
        for r in reports:
            s = slug(r.node)
            doc = r.to_json()
            pose = doc.pop("pose", None)
            state = json.dumps(doc)
            # online = it sent frames since this start and recently (ingest's link.online)
            avail = ONLINE if r.link.get("online") else OFFLINE
            with self._lock:
                if self._names.get(r.node, ("", "")) != (r.name, r.area):  # named, renamed
                    self._names[r.node] = (r.name, r.area)
                    self._announced.discard(r.node)
                if r.node not in self._announced and self.client.is_connected():
                    self._announce(r.node)
                self._last[s] = (r.node, state)
                # state before availability: HA must never show the previous run's values as live
                self.transport.publish(self.topics.state(r.node), state, qos=0, retain=True)
                if self.config.pose and pose is not None:
                    self.transport.publish(self.topics.pose(r.node), json.dumps(pose), qos=0)
                if self._avail.get(s) != avail:
                    self._set_avail(s, self.topics.availability(r.node), avail)

    def forget(self, keys: list[str]) -> None:
        """Ingest forgot silent nodes: unavailable in HA (their devices stay, with their history;
        removing a device is an explicit user action)."""
        with self._lock:
            for key in keys:
                s = slug(key)
                self._last.pop(s, None)
                self._set_avail(s, self.topics.availability(key), OFFLINE)

    def reannounce(self) -> None:
        """Discovery, states and availability of every current node again (HA came online)."""
        if not self.client.is_connected():
            return
        with self._lock:
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
                infos.append(
                    self.transport.publish(self.status_topic, OFFLINE, qos=1, retain=True)
                )
            for info in infos:
                if info is not None:
                    info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


def config_from(
    cfg, host: str, port: int, password: str | None, username: str | None = None
) -> MqttConfig:
    """The sink's config from a GatewayConfig's [sinks.mqtt] (one place for both builders)."""
    m = cfg.sinks.mqtt
    vitals = getattr(cfg, "vitals", None)  # the [vitals] section, where the config has one
    return MqttConfig(
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
        transport=TransportConfig(
            tls=m.tls,
            ca_file=m.ca_file,
            cert_file=m.cert_file,
            key_file=m.key_file,
            insecure=m.insecure,
            queue_max=m.queue_max,
        ),
    )
