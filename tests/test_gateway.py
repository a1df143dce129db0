"""The gateway end to end: simulated nodes -> real UDP -> `csi-edge run` -> JSONL, HTTP, MQTT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from tests.conftest import free_port

CLI = [sys.executable, "-m", "edge"]


def _wait(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_gateway_serves_every_sink_and_stops_cleanly_on_sigterm(tmp_path, mosquitto):
    import paho.mqtt.client as mqtt

    host, mport = mosquitto
    got: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        with lock:
            got[msg.topic] = msg.payload

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-test")
    sub.on_message = on_message
    sub.connect(host, mport)
    sub.subscribe([("homeassistant/#", 1), ("csi-edge/#", 1)])
    sub.loop_start()

    udp, http = free_port(), free_port()
    jsonl = tmp_path / "reports.jsonl"
    gw = subprocess.Popen(
        CLI
        + [
            "run",
            "--udp",
            f"127.0.0.1:{udp}",
            "--http",
            f"127.0.0.1:{http}",
            "--mqtt",
            f"{host}:{mport}",
            "--jsonl",
            str(jsonl),
            "--pose",
            "none",
            "--quiet",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sim = subprocess.Popen(
        CLI
        + [
            "simulate-nodes",
            "--nodes",
            "2",
            "--rate",
            "20",
            "--target",
            f"127.0.0.1:{udp}",
            "--duration",
            "6",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait(
            lambda: (
                jsonl.exists()
                and len({json.loads(x)["node"] for x in jsonl.read_text().splitlines()}) == 2
            )
        )
        state = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{http}/api/state", timeout=5).read()
        )
        assert sorted(state["nodes"]) == ["127.0.0.1#1", "127.0.0.1#2"]
        assert state["nodes"]["127.0.0.1#1"]["link"]["frames"] > 0
        assert _wait(
            lambda: (
                "csi-edge/127_0_0_1_2/state" in got
                and "homeassistant/binary_sensor/csi_edge_127_0_0_1_1/presence/config" in got
            )
        )
        sim.wait(timeout=20)
    finally:
        gw.send_signal(signal.SIGTERM)
        out, err = gw.communicate(timeout=20)
        sub.loop_stop()
    assert gw.returncode == 0, err
    summary = json.loads(out)
    assert summary["frames"] > 150  # 2 nodes x 20 Hz x ~6 s, no frame lost on loopback
    assert {k: v["lost"] for k, v in summary["nodes"].items()} == {
        "127.0.0.1#1": 0,
        "127.0.0.1#2": 0,
    }
    assert summary["packets"].get("edge_vitals", 0) > 0
    # the node's own on-board vitals are reported beside the gateway's estimate
    last = [json.loads(x) for x in jsonl.read_text().splitlines()][-1]
    assert last["node_vitals"] is not None and "breathing_bpm" in last["node_vitals"]
    assert got.get("csi-edge/status") == b"offline"


def test_bad_config_is_one_clear_line(tmp_path):
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[models]\nprecision = "int4"\n')
    r = subprocess.run(CLI + ["run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert f"{cfg}: models.precision must be one of fp32, int8, int8-tflite" in r.stderr


def test_named_pose_bundle_that_does_not_exist_is_a_clear_error(tmp_path):
    r = subprocess.run(
        CLI + ["run", "--udp", "127.0.0.1:0", "--pose", str(tmp_path / "nope"), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "models.pose" in r.stderr and "no such bundle" in r.stderr


def test_print_config_round_trips(tmp_path):
    r = subprocess.run(
        CLI + ["run", "--udp", "0.0.0.0:6000", "--http", ":8080", "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    cfg = tmp_path / "gw.toml"
    cfg.write_text(r.stdout)
    r2 = subprocess.run(
        CLI + ["run", "-c", str(cfg), "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert r2.stdout == r.stdout and 'udp = ["0.0.0.0:6000"]' in r.stdout
