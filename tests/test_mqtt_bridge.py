"""A site broker bridged to a central one (two real mosquitto processes): a gateway on the site
broker and one on the central broker both reach Home Assistant's broker, trees apart, and HA's
birth message on the central broker reaches the site gateway through the bridge."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from tests.conftest import free_port
from tests.test_mqtt_availability import Broker, _report, _wait


@contextlib.contextmanager
def _mosquitto(conf: Path, port: int):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.skip("mosquitto is not installed")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not start: {proc.stdout.read().decode()}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.slow
def test_site_broker_bridged_to_central_carries_both_gateways(tmp_path):
    central, site = free_port(), free_port()
    (tmp_path / "central.conf").write_text(
        f"listener {central} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    (tmp_path / "site.conf").write_text(
        f"listener {site} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"connection central\naddress 127.0.0.1:{central}\ncleansession false\n"
        "topic csi-edge/# both 1\ntopic homeassistant/# both 1\n"
    )
    with _mosquitto(tmp_path / "central.conf", central), _mosquitto(tmp_path / "site.conf", site):
        ha = Broker("127.0.0.1", central, ("csi-edge/#", "homeassistant/#"), client_id="ha")
        north = MqttSink(
            MqttConfig(host="127.0.0.1", port=site, gateway_id="north", birth_delay_s=0.5)
        )
        south = MqttSink(MqttConfig(host="127.0.0.1", port=central, gateway_id="south"))
        try:
            assert _wait(lambda: north.client.is_connected() and south.client.is_connected())
            for _ in range(3):
                north.publish([_report("10.0.0.7#1")])
                south.publish([_report("10.0.0.7#1")])
                time.sleep(0.5)
            for gw in ("north", "south"):
                node = f"csi-edge/{gw}/nodes/10_0_0_7_1"
                assert _wait(lambda gw=gw: ha.get(f"csi-edge/{gw}/status") == "online"), gw
                assert _wait(lambda node=node: ha.get(f"{node}/availability") == "online"), gw
                assert json.loads(ha.get(f"{node}/state"))["presence"] is True
                assert ha.get(f"homeassistant/device/csi_edge_{gw}_10_0_0_7_1/config")
            config = "homeassistant/device/csi_edge_north_10_0_0_7_1/config"
            n = len(ha.seq(config))
            ha.publish("homeassistant/status", "online")  # HA starts, on the central broker
            assert _wait(lambda: len(ha.seq(config)) > n), "birth did not cross the bridge"
            # the two trees never touched each other: each status went online exactly once
            assert ha.seq("csi-edge/north/status") == ["online"]
            assert ha.seq("csi-edge/south/status") == ["online"]
        finally:
            north.close()
            south.close()
            ha.close()
