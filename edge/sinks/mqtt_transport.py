"""How the MQTT sink reaches its broker: TLS, credentials, and a bounded queue while it is down.

Kept apart from :mod:`csi_edge.sinks.mqtt` (what is published) so the transport's rules live in
one place; docs/home-assistant.md ("TLS and credentials") is the user's view.

* **TLS** uses one :class:`ssl.SSLContext` built here (CA file or the system CAs, an optional
  client certificate, ``insecure`` turning verification off with a warning). paho retries a failed
  handshake silently, so the context's sockets record their handshake error and the sink logs it
  as one line naming the broker.
* **Credentials** never come from the command line: the password is read from
  ``$CSI_EDGE_MQTT_PASSWORD`` (``password_env``) or ``password_file`` (a bare name is looked up in
  systemd's ``$CREDENTIALS_DIRECTORY``, for ``LoadCredential=``), the username from the config or
  ``$CSI_EDGE_MQTT_USERNAME``.
* **The queue.** paho keeps every QoS 1 message published while disconnected, without bound, and
  drops QoS 0 ones (the states) silently. Instead, nothing is handed to paho until the sink says
  the connection is ready (:meth:`Transport.go_live`); until then messages wait here, at most
  ``queue_max``. A retained message replaces the queued one for the same topic (the broker keeps
  only the last retained value per topic, so this loses nothing a subscriber could see: per node
  only the latest state and availability wait); past ``queue_max`` the oldest is dropped and
  counted (``stats()["dropped"]``, /health, /metrics).
* **No Nagle.** paho leaves Nagle's algorithm on: a burst of small messages (a report's states,
  ~500 B each) then waits for the broker's delayed ACK (40 ms on Linux) before all but the
  first leave the gateway. ``TCP_NODELAY`` is set on every socket paho opens (each
  reconnect too); with it the report -> subscriber lag p95 at 64 nodes fell from 99-111 ms
  to 57-75 ms (26-49 ms with the broker's own ``set_tcp_nodelay true``; docs/home-assistant.md).
  A report's messages go to paho in one batch (:meth:`Transport.publish_many`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_edge.errors import ConfigError

log = logging.getLogger("csi_edge.mqtt")

PLAIN_PORT, TLS_PORT = 1883, 8883
USERNAME_ENV = "CSI_EDGE_MQTT_USERNAME"
#: QoS 1 messages paho may hold unacknowledged (every node's discovery at once fits)
PAHO_MAX_QUEUED = 4096


@dataclass
class TransportConfig:
    """The transport part of the sink's config (from ``[sinks.mqtt]``)."""

    tls: bool = False
    #: PEM CA bundle the broker's certificate must chain to; "" = the system's CAs
    ca_file: str = ""
    #: client certificate and key (PEM) for brokers that require one; key "" = in cert_file
    cert_file: str = ""
    key_file: str = ""
    #: skip certificate and host name verification (a self-signed broker); logs a warning
    insecure: bool = False
    #: most messages held while the broker is not reachable; past it the oldest are dropped
    queue_max: int = 1000


def default_port(tls: bool) -> int:
    return TLS_PORT if tls else PLAIN_PORT


def is_loopback(host: str) -> bool:
    """Loopback by name or address (no DNS lookup: it would block the start)."""
    h = host.strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


# -- credentials --------------------------------------------------------------------------------
def credential_path(name: str) -> Path:
    """``password_file``: a bare name is a systemd credential when ``$CREDENTIALS_DIRECTORY`` is
    set (``LoadCredential=mqtt-password:/etc/csi-edge/mqtt-password`` -> ``mqtt-password``)."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and "/" not in name:
        return Path(creds) / name
    return Path(name).expanduser()


def read_password_file(name: str, what: str = "sinks.mqtt.password_file") -> str:
    path = credential_path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path}: not a text file") from None
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"{what} {path}: empty (expected the password on one line)")
    return password


def credentials(section: Any) -> tuple[str | None, str | None]:
    """(username, password) for a ``[sinks.mqtt]`` section: the file wins over the environment
    (it was configured on purpose); a password without a username is refused."""
    username = section.username or os.environ.get(USERNAME_ENV) or None
    password = None
    if section.password_file:
        password = read_password_file(section.password_file)
    elif section.password_env:
        password = os.environ.get(section.password_env) or None
    if password and not username:
        raise ConfigError(
            "sinks.mqtt: a password is set but no username (set sinks.mqtt.username or "
            f"${USERNAME_ENV})"
        )
    if username and not password:
        log.warning(
            "sinks.mqtt: username %r is set but $%s is empty and no sinks.mqtt.password_file "
            "is set: connecting without a password",
            username,
            section.password_env or "CSI_EDGE_MQTT_PASSWORD",
        )
    return username, password


# -- TLS ----------------------------------------------------------------------------------------
class _RecordingSocket(ssl.SSLSocket):
    """Keeps the last TLS error on its context: paho swallows it and only retries. With TLS 1.3
    a refused client certificate arrives after the handshake, as an alert on the first read."""

    def do_handshake(self, *args, **kwargs):
        try:
            out = super().do_handshake(*args, **kwargs)
        except (ssl.SSLError, OSError) as e:
            self.context.last_error = e  # type: ignore[attr-defined]
            raise
        self.context.last_error = None  # type: ignore[attr-defined]
        return out

    def recv(self, *args, **kwargs):
        try:
            return super().recv(*args, **kwargs)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as e:
            self.context.last_error = e  # type: ignore[attr-defined]
            raise


def _readable(path: str, key: str) -> str:
    p = Path(path).expanduser()
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise ConfigError(f"sinks.mqtt.{key} {p}: cannot read: {e.strerror or e}") from None
    return str(p)


def tls_context(cfg: TransportConfig) -> ssl.SSLContext:
    """The client context, with a one-line error naming the key and file for each bad file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.ca_file:
        path = _readable(cfg.ca_file, "ca_file")
        try:
            ctx.load_verify_locations(cafile=path)
        except ssl.SSLError as e:
            raise ConfigError(
                f"sinks.mqtt.ca_file {path}: not a PEM CA certificate ({e.reason or e})"
            ) from None
    else:
        ctx.load_default_certs()
    if cfg.key_file and not cfg.cert_file:
        raise ConfigError("sinks.mqtt.key_file is set but cert_file is not (the client certificate)")
    if cfg.cert_file:
        cert = _readable(cfg.cert_file, "cert_file")
        key = _readable(cfg.key_file, "key_file") if cfg.key_file else None
        try:
            # an encrypted key would make OpenSSL prompt on the terminal: refuse it instead
            ctx.load_cert_chain(cert, key, password=lambda: b"")
        except ssl.SSLError as e:
            raise ConfigError(
                f"sinks.mqtt.cert_file {cert} / key_file {key or cert}: cannot load the client "
                f"certificate and key ({e.reason or e}; PEM, the key unencrypted and matching "
                "the certificate)"
            ) from None
    if cfg.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.sslsocket_class = _RecordingSocket
    ctx.last_error = None  # type: ignore[attr-defined]
    return ctx


def describe_tls_error(e: BaseException) -> str:
    """``certificate verify failed: unable to get local issuer certificate`` and the like."""
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        return str(e.reason or e).replace("_", " ").lower()
    return str(getattr(e, "strerror", None) or e)


def tls_hint(message: str) -> str:
    if "verify failed" in message:
        return "check sinks.mqtt.ca_file (or insecure = true for a self-signed broker)"
    if (
        "wrong version number" in message
        or "record layer" in message
        or "reset by peer" in message
        or "eof" in message
    ):
        return "is this port a TLS listener? (1883 is usually plaintext, 8883 TLS)"
    if "certificate required" in message or "handshake failure" in message:
        return "the broker may require a client certificate: sinks.mqtt.cert_file / key_file"
    return "check the broker's TLS listener and sinks.mqtt.ca_file / cert_file / key_file"


# -- the transport ------------------------------------------------------------------------------
def _no_delay(client: Any, userdata: Any, sock: Any) -> None:  # noqa: ARG001 - paho's signature
    """paho's on_socket_open: Nagle off (see the module docstring). A socket without TCP
    options (a websocket wrapper, a unix socket) is left as it is."""
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Transport:
    """Sets a paho client up (TLS, credentials, warnings) and owns the queue of messages that
    wait while the connection is not ready (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        cfg: TransportConfig,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if cfg.queue_max < 1:
            raise ConfigError(f"sinks.mqtt.queue_max must be >= 1, got {cfg.queue_max}")
        self.client = client
        self.cfg = cfg
        self.broker = f"{host}:{port}"
        self._lock = threading.Lock()
        self._pending: OrderedDict[Any, tuple[str, str, int, bool]] = OrderedDict()
        self._seq = 0  # keys for non-retained messages, which never replace each other
        self._live = False
        self.dropped = 0  # messages lost: the queue was full (oldest first) or paho refused one
        self.coalesced = 0  # retained messages replaced by a newer one for the same topic
        self._tls_logged = ""
        self._accepted = False  # this connection got its CONNACK
        self._early_logged = False
        self.context: ssl.SSLContext | None = None
        if username:
            client.username_pw_set(username, password)
        if cfg.tls:
            self.context = tls_context(cfg)
            client.tls_set_context(self.context)
            if cfg.insecure:
                client.tls_insecure_set(True)
                log.warning(
                    "MQTT: sinks.mqtt.insecure = true: the certificate of broker %s is not "
                    "verified (anyone on the path can pose as it); set ca_file instead",
                    self.broker,
                )
        elif username or not is_loopback(host):
            why = "with a username and password " if username else ""
            log.warning(
                "MQTT: connecting %sin plaintext to %s; set [sinks.mqtt] tls = true",
                why,
                self.broker,
            )
        client.on_socket_open = _no_delay
        # paho's own queue (QoS 1 awaiting the broker's ack) is bounded too; it only fills while
        # connected (nothing is handed over while down), so it must fit a discovery burst
        client.max_queued_messages_set(max(cfg.queue_max, PAHO_MAX_QUEUED))

    # -- connection state -----------------------------------------------------------------------
    def go_live(self) -> None:
        """The connection is ready: send what waited (in order), then publish directly."""
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
            for topic, payload, qos, retain in pending:
                self._send(topic, payload, qos, retain)
            self._live = True
        if pending:
            log.info("MQTT: sent %d messages queued while the broker was away", len(pending))

    def accepted(self) -> None:
        """The broker accepted this connection (CONNACK)."""
        self._accepted = True

    def down(self) -> None:
        """The connection is gone: queue from now on."""
        with self._lock:
            self._live = False

    def explain_drop(self) -> bool:
        """An unexpected disconnect (after :meth:`down`): True when it is a TLS failure or the
        broker closed the connection before accepting it, logged here (once per reason) so the
        sink does not take it for another client with its client id."""
        was_accepted, self._accepted = self._accepted, False
        if self.log_tls_failure():
            return True
        if was_accepted:
            return False
        if not self._early_logged:
            self._early_logged = True
            hint = (
                "check sinks.mqtt.cert_file / key_file and the broker's log"
                if self.cfg.tls
                else "a TLS listener? set [sinks.mqtt] tls = true (8883 is usually TLS)"
            )
            log.warning(
                "MQTT broker %s closed the connection before accepting it; %s (retrying in "
                "the background)",
                self.broker,
                hint,
            )
        return True

    def handshake_error(self) -> str | None:
        """The last TLS handshake error in words, or None (no TLS, or the last one worked)."""
        e = getattr(self.context, "last_error", None)
        return None if e is None else describe_tls_error(e)

    def log_tls_failure(self) -> bool:
        """Log a TLS failure once per distinct error; False when there was none."""
        msg = self.handshake_error()
        if msg is None:
            return False
        self.context.last_error = None  # type: ignore[union-attr]  # consumed: one per attempt
        if msg != self._tls_logged:
            self._tls_logged = msg
            log.warning(
                "MQTT broker %s: TLS handshake failed: %s; %s (retrying in the background)",
                self.broker,
                msg,
                tls_hint(msg),
            )
        return True

    # -- publishing ----------------------------------------------------------------------------
    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False) -> Any:
        """paho's MQTTMessageInfo when sent now, None when queued."""
        with self._lock:
            return self._publish(topic, payload, qos, retain)

    def publish_many(self, messages: list[tuple[str, str, int, bool]]) -> None:
        """(topic, payload, qos, retain) messages in order, under one lock: a report's states
        leave together, with nothing of another thread's between them."""
        with self._lock:
            for topic, payload, qos, retain in messages:
                self._publish(topic, payload, qos, retain)

    def _publish(self, topic: str, payload: str, qos: int, retain: bool) -> Any:
        """:meth:`publish` under the lock."""
        if self._live:
            return self._send(topic, payload, qos, retain)
        if retain:
            key: Any = topic
            if key in self._pending:
                self.coalesced += 1
                del self._pending[key]  # the newest goes to the end: the oldest drop first
        else:
            self._seq += 1
            key = self._seq
        self._pending[key] = (topic, payload, qos, retain)
        while len(self._pending) > self.cfg.queue_max:
            self._pending.popitem(last=False)
            self.dropped += 1
        return None

    def _send(self, topic: str, payload: str, qos: int, retain: bool) -> Any:
        import paho.mqtt.client as mqtt

        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
        return info

    def stats(self) -> dict:
        with self._lock:
            queued = len(self._pending)
        return {
            "tls": self.cfg.tls,
            "queued": queued,
            "dropped": self.dropped,
            "coalesced": self.coalesced,
        }
