"""Many gateways on one broker: each has its own id (client id, topic tree, status topic, device
ids), derived from the host name once and kept, and two of them never knock each other off."""

from __future__ import annotations

import json
import time

import pytest

from csi_edge.config import load_config
from csi_edge.errors import ConfigError
from csi_edge.gatewayid import resolve_gateway_id
from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from tests.test_mqtt_availability import Broker, _report, _wait


def test_gateway_id_is_derived_once_and_kept(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(socket, "gethostname", lambda: "Pi-Kitchen.local")
    assert resolve_gateway_id() == "pi-kitchen"
    assert (tmp_path / "state" / "gateway_id").read_text().strip() == "pi-kitchen"
    monkeypatch.setattr(socket, "gethostname", lambda: "renamed")
    assert resolve_gateway_id() == "pi-kitchen"  # a host rename keeps the devices
    assert resolve_gateway_id("attic") == "attic"  # configured wins
    assert MqttConfig(gateway_id="attic").client_id == "csi-edge-attic"


def test_a_stock_host_name_gets_part_of_the_mac(monkeypatch):
    """Two boards flashed from one image are both ``raspberrypi``: their ids must differ."""
    import re
    import socket
    import uuid

    from csi_edge.gatewayid import derive_gateway_id

    monkeypatch.setattr(socket, "gethostname", lambda: "raspberrypi")
    monkeypatch.setattr(uuid, "getnode", lambda: 0xDCA6323FA2C1)
    assert derive_gateway_id() == "raspberrypi-3fa2c1"
    monkeypatch.setattr(socket, "gethostname", lambda: "x" * 40)
    assert derive_gateway_id() == "x" * 32
    assert re.fullmatch(r"[a-z0-9-]+", derive_gateway_id())


def test_bad_gateway_ids_are_one_line_errors(tmp_path, monkeypatch):
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('gateway_id = "house/+"\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert str(e.value).startswith(f"{cfg}: gateway_id: expected 1-32 characters")
    assert "\n" not in str(e.value)
    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "gateway_id").write_text("#bad\n")
    with pytest.raises(ConfigError, match="state/gateway_id: expected"):
        resolve_gateway_id()
    cfg.write_text('gateway_id = "house-2"\n')
    assert load_config(cfg).gateway_id == "house-2"


def _run_two(host: str, port: int, a: MqttConfig, b: MqttConfig, seconds: float):
    """Two gateways publishing the same node key (two sites both have 192.168.4.2#1) once a
    second for ``seconds``; returns the watcher and both sinks' stats."""
    same_id = a.client_id == b.client_id
    watch = Broker(host, port, ("csi-edge/#", "homeassistant/#"))
    sinks = [MqttSink(a), MqttSink(b)]
    try:
        # with one client id they are never connected at once (the control below)
        assert same_id or _wait(lambda: all(s.client.is_connected() for s in sinks))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for s in sinks:
                s.publish([_report("192.168.4.2#1"), _report(f"node-of-{s.config.gateway_id}")])
            time.sleep(1.0)
        stats = [s.stats() for s in sinks]
    finally:
        for s in sinks:
            s.close()
        time.sleep(0.3)
        watch.close()
    return watch, stats


@pytest.mark.slow
def test_two_gateways_on_one_broker_do_not_flap(mosquitto):
    host, port = mosquitto
    watch, stats = _run_two(
        host,
        port,
        MqttConfig(host=host, port=port, gateway_id="north"),
        MqttConfig(host=host, port=port, gateway_id="south"),
        4.0,
    )
    assert [s["reconnects"] for s in stats] == [0, 0]
    for gw in ("north", "south"):
        # one online at start, one offline at the clean stop: nothing in between
        assert watch.seq(f"csi-edge/{gw}/status") == ["online", "offline"]
        for node in ("192_168_4_2_1", f"node_of_{gw}"):
            assert watch.seq(f"csi-edge/{gw}/nodes/{node}/availability") == ["online", "offline"]
        device = f"homeassistant/device/csi_edge_{gw}_192_168_4_2_1/config"
        assert len(watch.seq(device)) == 1  # discovery once, not re-sent by a reconnect loop
        disc = json.loads(watch.seq(device)[0])
        assert disc["cmps"]["presence"]["unique_id"] == f"csi_edge_{gw}_192_168_4_2_1_presence"
        assert disc["dev"]["identifiers"] == [f"csi_edge_{gw}_192_168_4_2_1"]
        assert disc["dev"]["via_device"] == f"csi_edge_gateway_{gw}"
        assert disc["availability"][0]["topic"] == f"csi-edge/{gw}/status"
    with watch.lock:
        topics = {t for t, _, _ in watch.log}
    # nothing outside the two trees and discovery: no shared status topic any more
    assert not [
        t for t in topics if t.startswith("csi-edge/") and t.split("/")[1] not in ("north", "south")
    ]


@pytest.mark.slow
def test_the_flapping_this_prevents_is_real(mosquitto, caplog):
    """Control: the same two gateways forced onto one client id knock each other off (what a
    fixed id did on main), so the test above would see it."""
    host, port = mosquitto
    import logging

    with caplog.at_level(logging.WARNING, logger="csi_edge.mqtt"):
        _, stats = _run_two(
            host,
            port,
            MqttConfig(host=host, port=port, gateway_id="north", client_id="same"),
            MqttConfig(host=host, port=port, gateway_id="south", client_id="same"),
            6.0,
        )
    assert sum(s["reconnects"] for s in stats) >= 2
    # ... and the gateway says so (paho reconnects silently): one line, naming the fix
    said = [r.getMessage() for r in caplog.records if "another client" in r.getMessage()]
    assert said and all("set a distinct gateway_id" in m and "\n" not in m for m in said)
