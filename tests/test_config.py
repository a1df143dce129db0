"""The gateway config file: round trip, defaults, and a clear error for each kind of mistake."""

from __future__ import annotations

import pytest

from csi_edge.config import (
    ConfigError,
    GatewayConfig,
    SerialSource,
    dump_config,
    load_config,
    parse_hostport,
)


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg.ingest.udp == ["0.0.0.0:5005"]
    assert cfg.models.precision == "int8"


def test_dump_then_load_round_trips(tmp_path):
    cfg = GatewayConfig()
    cfg.ingest.serial.append(SerialSource("/dev/ttyUSB0", 2000000))
    cfg.sinks.mqtt.host = "broker.lan"
    cfg.sinks.http = "0.0.0.0:8080"
    path = tmp_path / "gw.toml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[models]\nprecision = "int4"\n',
            "models.precision must be one of fp32, int8, int8-tflite, got 'int4'",
        ),
        ('[sinks]\nmqt = {host = "x"}\n', "unknown key 'sinks.mqt'"),
        ("[ingest]\nudp = 5005\n", "ingest.udp must be a list of strings"),
        ('[sinks.mqtt]\nport = "1883"\n', "sinks.mqtt.port must be int, got '1883'"),
        ("[ingest\n", "not valid TOML"),
        ("[[ingest.serial]]\nbaud = 115200\nport = 3\n", "ingest.serial[0].port must be str"),
        ('gateway_id = "a/b"\n', "gateway_id: expected 1-32 characters a-z, 0-9"),
        ("gateway_id = 7\n", "gateway_id must be str, got 7"),
        ("[sinks.mqtt]\nexpire_after_s = -1\n", "sinks.mqtt.expire_after_s must be >= 0"),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "gw.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a text file"):
        load_config(bad)


def test_parse_hostport():
    assert parse_hostport("5005") == ("0.0.0.0", 5005)
    assert parse_hostport(":6000") == ("0.0.0.0", 6000)
    assert parse_hostport("127.0.0.1:7") == ("127.0.0.1", 7)
    assert parse_hostport("[::1]:5005") == ("::1", 5005)
    with pytest.raises(ConfigError, match="port must be 0..65535"):
        parse_hostport("host:99999", what="sinks.http")
    with pytest.raises(ConfigError, match="sinks.http 'host:abc': expected HOST:PORT"):
        parse_hostport("host:abc", what="sinks.http")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("report_interval_s = 0\n", "report_interval_s must be > 0, got 0.0"),
        ("[ingest]\noffline_after_s = -1\n", "ingest.offline_after_s must be > 0"),
        ("[models]\nthreads = 0\n", "models.threads must be > 0"),
    ],
)
def test_numbers_that_must_be_positive(tmp_path, text, message):
    path = tmp_path / "gw.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_the_vitals_section_reaches_the_estimators(tmp_path):
    from csi_edge.config import load_config
    from csi_edge.errors import ConfigError
    from csi_edge.gateway import Gateway

    p = tmp_path / "g.toml"
    p.write_text("[vitals]\nheart_enabled = true\npresence_hold_s = 60\n")
    cfg = load_config(p)
    gw = Gateway(cfg, [], [])
    vc = gw.estimators.config
    assert vc.heart_enabled is True and vc.presence_hold_s == 60.0
    assert vc.motion_ratio == 2.0  # untouched knobs keep the tested defaults
    assert gw.estimators.node("n").cfg.heart_enabled is True
    p.write_text("[vitals]\npresence_hold_s = -1\n")
    with pytest.raises(ConfigError, match="vitals.presence_hold_s must be > 0"):
        load_config(p)
