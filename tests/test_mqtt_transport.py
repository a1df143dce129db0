"""The MQTT transport against real mosquitto brokers the tests start: TLS with a test CA and
certificates made here (cryptography), client-certificate auth, password auth from the
environment or a file (never in any output), and the bounded queue while the broker is down.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from csi_edge.errors import ConfigError
from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from csi_edge.sinks.mqtt_transport import Transport, TransportConfig, credentials
from tests.conftest import free_port, start_mosquitto
from tests.test_mqtt_availability import _report, _wait

CLI = [sys.executable, "-m", "csi_edge"]
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
PASSWD = shutil.which("mosquitto_passwd")
SECRET = "Tr0ub4dor-zebra-7781"

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None,
    reason="mosquitto is not installed (scripts/test installs it with apt-get when run as root)",
)


# -- a test PKI ---------------------------------------------------------------------------------
def _pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1, a client certificate, and a second
    CA that signed nothing here (the "wrong CA")."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    out: dict[str, Path] = {}

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, cert, key) -> None:
        out[f"{stem}_cert"] = folder / f"{stem}.pem"
        out[f"{stem}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{stem}_key"] = folder / f"{stem}.key"
        out[f"{stem}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def ca(cn: str):
        key = ec.generate_private_key(ec.SECP256R1())
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def leaf(cn: str, issuer, issuer_key, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(issuer_key, hashes.SHA256()), key

    ca_cert, ca_key = ca("csi-edge test CA")
    write("ca", ca_cert, ca_key)
    write("other_ca", *ca("some other CA"))
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    write("server", *leaf("localhost", ca_cert, ca_key, ExtendedKeyUsageOID.SERVER_AUTH, san))
    write("client", *leaf("gateway-1", ca_cert, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH))
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    return _pki(tmp_path_factory.mktemp("pki"))


# -- brokers ------------------------------------------------------------------------------------
class Brokers:
    """Starts mosquitto processes with a given listener config; stops them all at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self, lines: list[str], port: int | None = None) -> int:
        port = port or free_port()
        conf = self.folder / f"mosquitto-{port}.conf"
        # run as root, mosquitto would switch to the 'mosquitto' user and not read tmp files
        conf.write_text(
            "\n".join([f"user {getpass.getuser()}", "persistence false",
                       f"listener {port} 127.0.0.1", *lines]) + "\n"
        )  # fmt: skip
        proc = start_mosquitto(MOSQUITTO, conf, port)
        self.procs[port] = proc
        return port

    def stop(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.terminate()
        proc.wait(timeout=5)

    def close(self) -> None:
        for port in list(self.procs):
            self.stop(port)


@pytest.fixture
def brokers(tmp_path):
    b = Brokers(tmp_path)
    yield b
    b.close()


def tls_lines(pki, *extra: str) -> list[str]:
    return [
        f"cafile {pki['ca_cert']}",
        f"certfile {pki['server_cert']}",
        f"keyfile {pki['server_key']}",
        "allow_anonymous true",
        *extra,
    ]


class Watch:
    """A subscriber (TLS when given a CA) that keeps the latest payload per topic."""

    def __init__(self, port: int, ca=None, cert=None, key=None, auth=None, topic="csi-edge/#"):
        import paho.mqtt.client as mqtt

        self.last: dict[str, str] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{port}")
        if ca:
            self.client.tls_set(ca_certs=str(ca), certfile=cert and str(cert), keyfile=key and str(key))
        if auth:
            self.client.username_pw_set(*auth)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, 1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.last[msg.topic] = msg.payload.decode()

    def states(self) -> dict[str, dict]:
        with self.lock:
            # the nodes' states (the gateway device has a state topic of its own)
            return {
                t: json.loads(p)
                for t, p in self.last.items()
                if "/nodes/" in t and t.endswith("/state") and p
            }

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _sink(port: int, gw: str, **transport) -> MqttSink:
    return MqttSink(
        MqttConfig(host="127.0.0.1", port=port, gateway_id=gw, transport=TransportConfig(**transport))
    )


def _messages(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- TLS ----------------------------------------------------------------------------------------
def test_tls_connects_with_the_test_ca_and_the_state_arrives(brokers, pki, caplog):
    port = brokers.start(tls_lines(pki))
    watch = Watch(port, ca=pki["ca_cert"])
    with caplog.at_level(logging.INFO, logger="csi_edge.mqtt"):
        sink = _sink(port, "tls1", tls=True, ca_file=str(pki["ca_cert"]))
        try:
            assert _wait(sink.client.is_connected)
            sink.publish([_report("10.0.0.7#1", breathing_bpm=13.5)])
            assert _wait(lambda: watch.states())
            (state,) = watch.states().values()
            assert state["breathing_bpm"] == 13.5
            assert sink.stats()["tls"] is True and sink.stats()["connected"] is True
        finally:
            sink.close()
            watch.close()
    assert not _messages(caplog, "plaintext") and not _messages(caplog, "insecure")


@pytest.mark.slow
def test_a_wrong_ca_is_refused_with_one_clear_line(brokers, pki, caplog):
    port = brokers.start(tls_lines(pki))
    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        sink = _sink(port, "tls2", tls=True, ca_file=str(pki["other_ca_cert"]))
        try:
            assert _wait(lambda: _messages(caplog, "TLS handshake failed"))
            time.sleep(1.5)  # a retry or two: still one line
            assert not sink.client.is_connected()
        finally:
            sink.close()
    (line,) = _messages(caplog, "TLS handshake failed")
    assert f"127.0.0.1:{port}" in line and "certificate verify failed" in line
    assert "sinks.mqtt.ca_file" in line and "\n" not in line
    assert not _messages(caplog, "unreachable")  # the reason, not a generic "unreachable"


def test_insecure_warns_once_naming_the_broker_and_works(brokers, pki, caplog):
    port = brokers.start(tls_lines(pki))
    watch = Watch(port, ca=pki["ca_cert"])
    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        # the wrong CA, the host name not checked: only insecure lets this through
        sink = _sink(port, "tls3", tls=True, ca_file=str(pki["other_ca_cert"]), insecure=True)
        try:
            assert _wait(sink.client.is_connected)
            sink.publish([_report("10.0.0.7#1")])
            assert _wait(lambda: watch.states())
        finally:
            sink.close()
            watch.close()
    (line,) = _messages(caplog, "insecure")
    assert f"127.0.0.1:{port}" in line and "not verified" in line


@pytest.mark.slow
def test_client_certificate_auth(brokers, pki, caplog):
    port = brokers.start(tls_lines(pki, "require_certificate true"))
    watch = Watch(port, ca=pki["ca_cert"], cert=pki["client_cert"], key=pki["client_key"])
    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        anonymous = _sink(port, "tls4a", tls=True, ca_file=str(pki["ca_cert"]))
        try:
            assert _wait(lambda: _messages(caplog, "TLS handshake failed"))
            assert not anonymous.client.is_connected()
        finally:
            anonymous.close()
        sink = _sink(
            port,
            "tls4",
            tls=True,
            ca_file=str(pki["ca_cert"]),
            cert_file=str(pki["client_cert"]),
            key_file=str(pki["client_key"]),
        )
        try:
            assert _wait(sink.client.is_connected)
            sink.publish([_report("10.0.0.7#2")])
            assert _wait(lambda: "csi-edge/tls4/nodes/10_0_0_7_2/state" in watch.states())
        finally:
            sink.close()
            watch.close()
    (line,) = _messages(caplog, "TLS handshake failed")
    assert "client certificate" in line or "certificate required" in line, line


@pytest.mark.slow
def test_tls_and_plaintext_mixed_up_say_so_not_another_client(brokers, pki, caplog):
    tls_port = brokers.start(tls_lines(pki))
    plain_port = brokers.start(["allow_anonymous true"])
    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        plain = _sink(tls_port, "mix1")  # plaintext to the TLS listener
        tls = _sink(plain_port, "mix2", tls=True, ca_file=str(pki["ca_cert"]))
        try:
            assert _wait(lambda: _messages(caplog, "before accepting it"))
            assert _wait(lambda: _messages(caplog, "TLS handshake failed"))
            time.sleep(4.0)  # several retries: still one line each, and no takeover warning
        finally:
            plain.close()
            tls.close()
    (line,) = _messages(caplog, "before accepting it")
    assert f"127.0.0.1:{tls_port}" in line and "tls = true" in line
    (line,) = _messages(caplog, "TLS handshake failed")
    assert f"127.0.0.1:{plain_port}" in line and "is this port a TLS listener?" in line
    assert not _messages(caplog, "another client")


def test_the_transport_keys_in_gateway_toml_and_on_the_command_line(tmp_path):
    from csi_edge.config import load_config

    p = tmp_path / "gateway.toml"
    p.write_text(
        '[sinks.mqtt]\nhost = "b"\ntls = true\nca_file = "/etc/ca.pem"\ninsecure = false\n'
        'password_file = "mqtt-password"\nqueue_max = 50\n'
    )
    m = load_config(p).sinks.mqtt
    assert (m.tls, m.ca_file, m.password_file, m.queue_max) == (True, "/etc/ca.pem", "mqtt-password", 50)
    for bad, msg in [
        ("queue_max = 0", "sinks.mqtt.queue_max must be > 0, got 0"),
        ('tls = "yes"', "sinks.mqtt.tls must be bool, got 'yes'"),
        ("password = 'x'", "unknown key 'sinks.mqtt.password'"),
    ]:
        p.write_text(f"[sinks.mqtt]\n{bad}\n")
        with pytest.raises(ConfigError, match=msg):
            load_config(p)
    r = subprocess.run(
        CLI + ["run", "--mqtt", "b", "--mqtt-ca-file", "/etc/ca.pem", "--mqtt-cert-file", "/c.pem",
               "--mqtt-key-file", "/k.pem", "--mqtt-insecure", "--print-config"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for line in ('tls = true', 'ca_file = "/etc/ca.pem"', 'cert_file = "/c.pem"',
                 'key_file = "/k.pem"', "insecure = true"):  # fmt: skip
        assert line in r.stdout.splitlines()
    r = subprocess.run(CLI + ["run", "--mqtt-password", "x"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "No such option '--mqtt-password'" in r.stderr


@pytest.mark.parametrize(
    "key, expected",
    [
        ("ca_file", "sinks.mqtt.ca_file {p}: cannot read: No such file or directory"),
        ("cert_file", "sinks.mqtt.cert_file {p}: cannot read: No such file or directory"),
    ],
)
def test_a_missing_ca_or_cert_file_is_one_line_naming_file_and_key(key, expected, tmp_path):
    p = tmp_path / "nope.pem"
    flag = {"ca_file": "--mqtt-ca-file", "cert_file": "--mqtt-cert-file"}[key]
    r = subprocess.run(
        CLI + ["run", "--mqtt", "127.0.0.1:1", flag, str(p), "--pose", "none", "--quiet",
               "--vitals-model", "none", "--udp", "127.0.0.1:0", "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "Error: " + expected.format(p=p)
    assert "Traceback" not in r.stderr


def test_bad_tls_files_are_clear_config_errors(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"sinks.mqtt.ca_file .*junk.pem: not a PEM CA"):
        Transport(_client(), TransportConfig(tls=True, ca_file=str(junk)), "127.0.0.1", 8883)
    cfg = TransportConfig(tls=True, cert_file=str(pki["client_cert"]), key_file=str(pki["server_key"]))
    with pytest.raises(ConfigError, match=r"cannot load the client certificate and key"):
        Transport(_client(), cfg, "127.0.0.1", 8883)  # a key that is not the certificate's
    with pytest.raises(ConfigError, match=r"key_file is set but cert_file is not"):
        Transport(_client(), TransportConfig(tls=True, key_file=str(pki["client_key"])), "h", 1)


def _client():
    import paho.mqtt.client as mqtt

    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="unit")


def test_plaintext_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        Transport(_client(), TransportConfig(), "localhost", 1883)
        Transport(_client(), TransportConfig(), "127.0.0.1", 1883)
        assert not _messages(caplog, "plaintext")
        Transport(_client(), TransportConfig(), "10.0.0.5", 1883)
        Transport(_client(), TransportConfig(), "127.0.0.1", 1883, "gw", SECRET)
    lines = _messages(caplog, "plaintext")
    assert lines == [
        "MQTT: connecting in plaintext to 10.0.0.5:1883; set [sinks.mqtt] tls = true",
        "MQTT: connecting with a username and password in plaintext to 127.0.0.1:1883; set "
        "[sinks.mqtt] tls = true",
    ]
    assert SECRET not in caplog.text


def test_tls_default_port_is_8883():
    from csi_edge.config import GatewayConfig
    from csi_edge.sinks.build import SinkContext, mqtt

    cfg = GatewayConfig()
    cfg.sinks.mqtt.host = "127.0.0.1"
    cfg.sinks.mqtt.tls = True
    cfg.sinks.mqtt.insecure = True
    sink = mqtt(cfg, SinkContext())
    try:
        assert sink.config.port == 8883
    finally:
        sink.close()
    cfg.sinks.mqtt.tls = cfg.sinks.mqtt.insecure = False
    sink = mqtt(cfg, SinkContext())
    try:
        assert sink.config.port == 1883
    finally:
        sink.close()


# -- credentials --------------------------------------------------------------------------------
def _passwd_broker(brokers, folder: Path) -> int:
    if PASSWD is None:
        pytest.skip("mosquitto_passwd is not installed (Debian's mosquitto package has it)")
    pw = folder / "passwd"
    subprocess.run([PASSWD, "-b", "-c", str(pw), "gw", SECRET], check=True, capture_output=True)
    return brokers.start([f"password_file {pw}", "allow_anonymous false"])


@pytest.mark.parametrize("source", ["env", "file", "credentials-dir"])
@pytest.mark.slow
def test_password_reaches_the_broker_and_appears_in_no_output(source, brokers, tmp_path):
    port = _passwd_broker(brokers, tmp_path)
    watch = Watch(port, auth=("gw", SECRET))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSI_EDGE_MQTT")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    conf = ['gateway_id = "cred"', "[sinks.mqtt]", 'username = "gw"']
    if source == "env":
        env["CSI_EDGE_MQTT_PASSWORD"] = SECRET
    elif source == "file":
        (tmp_path / "pw").write_text(SECRET + "\n")
        conf.append(f'password_file = "{tmp_path / "pw"}"')
    else:  # systemd LoadCredential=mqtt-password:... puts it in $CREDENTIALS_DIRECTORY
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "mqtt-password").write_text(SECRET)
        env["CREDENTIALS_DIRECTORY"] = str(creds)
        conf.append('password_file = "mqtt-password"')
    cfg = tmp_path / "gateway.toml"
    cfg.write_text("\n".join(conf) + "\n")
    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    common = ["run", "-c", str(cfg), "--mqtt", f"127.0.0.1:{port}"]
    printed = subprocess.run(
        CLI + common + ["--print-config"], capture_output=True, text=True, env=env, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    gw = subprocess.Popen(
        CLI + common + ["--udp", f"127.0.0.1:{udp}", "--http", f"127.0.0.1:{http}", "--pose",
                        "none", "--vitals-model", "none", "--json", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    sim = subprocess.Popen(
        CLI + ["simulate-nodes", "--nodes", "1", "--rate", "20", "--target", f"127.0.0.1:{udp}",
               "--duration", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pages = []
    try:
        arrived = _wait(lambda: watch.states(), 40)
        if arrived:
            for page in ("health", "metrics"):
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/{page}", timeout=5) as r:
                    pages.append(r.read().decode())
    finally:
        sim.terminate()
        sim.wait(10)
        gw.send_signal(signal.SIGTERM)
        out, err = gw.communicate(timeout=30)
        watch.close()
    assert arrived, f"no state reached the password broker: {err}"
    assert gw.returncode == 0, err
    assert json.loads(out)  # the --json summary
    health = json.loads(pages[0])
    assert health["mqtt"]["connected"] is True and health["mqtt"]["dropped"] == 0
    assert "csi_edge_mqtt_dropped_messages_total 0.0" in pages[1]
    for what, text in [("--print-config", printed.stdout + printed.stderr), ("stdout", out),
                       ("stderr", err), ("/health", pages[0]), ("/metrics", pages[1])]:  # fmt: skip
        assert SECRET not in text, f"the password is in {what}"
    assert "plaintext to 127.0.0.1" in err  # a password in plaintext: warned


def test_a_wrong_password_is_refused_without_showing_it(brokers, tmp_path, caplog, monkeypatch):
    port = _passwd_broker(brokers, tmp_path)
    monkeypatch.setenv("CSI_EDGE_MQTT_PASSWORD", "not-" + SECRET)
    from csi_edge.config import MqttSection

    user, pw = credentials(MqttSection(username="gw"))
    with caplog.at_level(logging.INFO):
        sink = MqttSink(MqttConfig(host="127.0.0.1", port=port, gateway_id="cred2", username=user,
                                   password=pw))  # fmt: skip
        try:
            assert _wait(lambda: _messages(caplog, "refused the connection"))
            assert not sink.client.is_connected()
        finally:
            sink.close()
    assert pw not in caplog.text and pw not in repr(sink.config)


def test_credential_errors(tmp_path, monkeypatch):
    from csi_edge.config import MqttSection

    monkeypatch.delenv("CSI_EDGE_MQTT_USERNAME", raising=False)
    monkeypatch.setenv("CSI_EDGE_MQTT_PASSWORD", SECRET)
    with pytest.raises(ConfigError, match="a password is set but no username"):
        credentials(MqttSection())
    monkeypatch.setenv("CSI_EDGE_MQTT_USERNAME", "gw")
    assert credentials(MqttSection()) == ("gw", SECRET)
    missing = tmp_path / "none"
    with pytest.raises(ConfigError, match=rf"sinks.mqtt.password_file {missing}: cannot read"):
        credentials(MqttSection(password_file=str(missing)))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        credentials(MqttSection(password_file=str(tmp_path / "empty")))


# -- the bounded queue --------------------------------------------------------------------------
@pytest.mark.slow
def test_broker_down_the_queue_is_bounded_drops_are_counted_and_the_latest_state_arrives(brokers):
    port = brokers.start(["allow_anonymous true"])
    sink = _sink(port, "queue", queue_max=6)
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report(f"10.0.0.{i}#1", breathing_bpm=10.0) for i in range(2)])
        assert _wait(lambda: sink.stats()["queued"] == 0)
        brokers.stop(port)
        assert _wait(lambda: not sink.client.is_connected())
        # 10 reports for each of 2 nodes: coalesced to the latest per topic, within the bound
        for k in range(10):
            sink.publish([_report(f"10.0.0.{i}#1", breathing_bpm=10.0 + k) for i in range(2)])
        s = sink.stats()
        assert s["connected"] is False and s["queued"] == 2 and s["dropped"] == 0
        assert s["coalesced"] == 18
        # 8 more nodes appear: 20 retained topics (state + availability) for a queue of 6
        sink.publish([_report(f"10.0.1.{i}#1", breathing_bpm=20.0 + i) for i in range(8)])
        s = sink.stats()
        assert s["queued"] == 6 and s["dropped"] == 2 + 16 - 6
        brokers.start(["allow_anonymous true"], port=port)  # the broker is back (empty)
        watch = Watch(port)
        try:
            assert _wait(sink.client.is_connected, 40)
            assert _wait(lambda: sink.stats()["queued"] == 0)
            # the newest messages waited: the last nodes' latest states arrive at once
            assert _wait(lambda: "csi-edge/queue/nodes/10_0_1_7_1/state" in watch.states())
            assert watch.states()["csi-edge/queue/nodes/10_0_1_7_1/state"]["breathing_bpm"] == 27.0
            sink.publish([_report(f"10.0.0.{i}#1", breathing_bpm=33.0) for i in range(2)])
            assert _wait(
                lambda: watch.states().get("csi-edge/queue/nodes/10_0_0_1_1/state", {}).get(
                    "breathing_bpm"
                )
                == 33.0
            )
        finally:
            watch.close()
        assert sink.stats()["dropped"] == 12  # nothing more lost once connected
    finally:
        sink.close()
