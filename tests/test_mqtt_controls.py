"""Home Assistant's Recalibrate button and motion threshold number, end to end on real parts:
HA's messages on a real mosquitto -> the MQTT sink -> (the gateway's per-report pull) -> the
vitals estimators, which apply the threshold and rebuild the node's room baseline from the
frames that follow the press."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from csi_edge.estimators import Estimators
from csi_edge.nodecommands import motion_ratio, recalibrate
from csi_edge.sim import preset, simulate
from csi_edge.sinks.mqtt import MqttConfig, MqttSink
from csi_edge.vitals.baseline import load_baseline
from csi_edge.vitals.run import frame_times, lltf_frames
from tests.test_mqtt_availability import Broker, _report, _wait, retained


def _took(sink: MqttSink, n: int, timeout: float = 5.0) -> list:
    got: list = []
    _wait(lambda: got.extend(sink.take_commands()) or len(got) >= n, timeout)
    return got


@pytest.mark.slow
def test_button_and_number_reach_the_gateway_and_the_threshold_survives_a_restart(mosquitto):
    host, port = mosquitto
    gw = "gw-c"
    base = f"csi-edge/{gw}/nodes/n_1"
    ha = Broker(host, port, (f"{base}/motion_ratio",), client_id="ha")
    # a press someone left retained: the gateway gets it at every start, and must ignore it
    ha.publish(f"{base}/recalibrate/set", "PRESS", retain=True)
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw, motion_ratio=2.0))
    try:
        assert _wait(sink.client.is_connected)
        sink.publish([_report("n#1")])
        device = json.loads(_wait_for(host, port, f"homeassistant/device/csi_edge_{gw}_n_1/config"))
        button, number = device["cmps"]["recalibrate"], device["cmps"]["motion_ratio"]
        assert button["p"] == "button" and button["command_topic"] == f"{base}/recalibrate/set"
        assert number["p"] == "number" and number["command_topic"] == f"{base}/motion_ratio/set"
        assert number["state_topic"] == f"{base}/motion_ratio"
        assert (number["min"], number["max"]) == (1.1, 10.0)
        # the number shows the threshold in use from the start, not "unknown"
        assert _wait(lambda: ha.get(f"{base}/motion_ratio") == "2")
        time.sleep(0.3)
        assert sink.take_commands() == []  # the retained press was not acted on
        ha.publish(f"{base}/recalibrate/set", "", retain=True)  # (clear it again)
        ha.publish(f"{base}/recalibrate/set", "PRESS")  # what HA sends: a real press
        assert _took(sink, 1) == [("n#1", "recalibrate", None)]
        # a bad number is ignored; a good one is applied and its state retained
        ha.publish(f"{base}/motion_ratio/set", "abc")
        ha.publish(f"{base}/motion_ratio/set", "3.5")
        assert _took(sink, 1) == [("n#1", "motion_ratio", 3.5)]
        assert _wait(lambda: ha.get(f"{base}/motion_ratio") == "3.5")
    finally:
        sink.close()
    # a restart: the retained threshold is read back and handed on once the node reports
    sink = MqttSink(MqttConfig(host=host, port=port, gateway_id=gw, motion_ratio=2.0))
    try:
        assert _wait(sink.client.is_connected)
        time.sleep(0.5)
        assert sink.take_commands() == []  # the node has not reported yet
        sink.publish([_report("n#1")])
        assert _took(sink, 1) == [("n#1", "motion_ratio", 3.5)]
        time.sleep(0.3)
        assert ha.get(f"{base}/motion_ratio") == "3.5"  # not reset to the default
    finally:
        sink.close()
        ha.close()


def _wait_for(host: str, port: int, topic: str) -> str:
    got: dict[str, str] = {}
    assert _wait(lambda: got.update(retained(host, port, "homeassistant/#", 0.3)) or topic in got)
    return got[topic]


def _seconds(preset_name: str, seconds: int, seed: int):
    """One simulated node's frames in 1-s chunks: [(report time, t, csi)]."""
    sim = simulate(preset(preset_name, seconds), seed=seed)
    t, _ = frame_times(sim.frames)
    csi = lltf_frames(sim.frames)
    keys = sim.frames.node_keys()
    key = sorted(set(keys.tolist()))[0]
    idx = np.flatnonzero(keys == key)
    t, csi = t[idx], csi[idx]
    ticks = np.arange(t[0] + 1.0, t[-1] + 1.0, 1.0)
    out, lo = [], 0
    for tick in ticks:
        hi = int(np.searchsorted(t, tick, side="right"))
        out.append((float(tick), t[lo:hi], csi[lo:hi]))
        lo = hi
    return key, out


def _run(est: Estimators, key: str, chunks, commands=()) -> dict:
    """Feed the chunks (the commands with the first); the node's last recalibration status."""
    status: dict = {}
    for i, (now, t, csi) in enumerate(chunks):
        job = (now, [key], {key: [(t, csi)]}, [], list(commands) if i == 0 else [])
        status = est.estimate(job)[2]
    return status.get(key, {})


def test_motion_threshold_command_sets_the_nodes_estimator(tmp_path):
    est = Estimators(str(tmp_path))
    key, chunks = _seconds("empty", 3, seed=1)
    _run(est, key, chunks, [motion_ratio(key, 3.5)])
    assert est.vitals[key].cfg.motion_ratio == 3.5
    # a node that appears later gets it too
    est.command(motion_ratio("other#1", 10), 0.0)
    assert est.node("other#1").cfg.motion_ratio == 10.0


@pytest.mark.slow
def test_recalibrate_rebuilds_the_room_baseline_only_from_an_empty_room(tmp_path):
    est = Estimators(str(tmp_path))
    key, chunks = _seconds("empty", 90, seed=3)
    status = _run(est, key, chunks, [recalibrate(key)])  # what a press becomes: 75 s after 10 s
    assert status["recalibration"] == "accepted" and status["state"] == "complete", status
    stored = load_baseline(key, str(tmp_path))
    assert stored.complete and stored.motion_level and stored.profile is not None
    assert est.vitals[key].baseline.still_s == stored.still_s  # in use at once
    # someone sitting in the room: refused, and the stored baseline stays
    person = Estimators(str(tmp_path))
    key2, chunks2 = _seconds("still", 45, seed=3)
    assert key2 == key
    status = _run(person, key2, chunks2, [recalibrate(key2, seconds=30, delay_s=0)])
    assert status["state"] == "refused" and "room not still" in status["message"], status
    assert load_baseline(key, str(tmp_path)).still_s == stored.still_s


@pytest.mark.slow
def test_a_running_gateway_applies_the_number_and_starts_a_recalibration(tmp_path, mosquitto):
    """`csi-edge run` + simulated nodes: HA's number and button reach the estimator process
    (its log lines say what it did)."""
    import signal
    import subprocess
    import sys

    from conftest import free_port

    host, port = mosquitto
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('gateway_id = "run-c"\n')
    env = {**__import__("os").environ, "CSI_EDGE_STATE_DIR": str(tmp_path / "state")}
    udp = free_port(2)
    cli = [sys.executable, "-m", "csi_edge"]
    gw = subprocess.Popen(
        cli
        + ["-v", "run", "--config", str(cfg), "--udp", f"127.0.0.1:{udp}"]
        + ["--mqtt", f"{host}:{port}", "--pose", "none", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    sim = subprocess.Popen(
        cli
        + ["simulate-nodes", "--nodes", "1", "--rate", "20", "--target", f"127.0.0.1:{udp}"]
        + ["--duration", "30"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = "csi-edge/run-c/nodes/127_0_0_1_1"
    ha = Broker(host, port, (f"{base}/#",), client_id="ha")
    try:
        assert _wait(lambda: ha.get(f"{base}/availability") == "online", 30)
        assert _wait(lambda: ha.get(f"{base}/motion_ratio") == "2")
        ha.publish(f"{base}/motion_ratio/set", "4.2")
        ha.publish(f"{base}/recalibrate/set", "PRESS")
        assert _wait(lambda: ha.get(f"{base}/motion_ratio") == "4.2")
        time.sleep(3.0)  # a report or two: the commands go to the estimators with them
    finally:
        gw.send_signal(signal.SIGTERM)
        err = gw.communicate(timeout=20)[1]
        sim.terminate()
        sim.wait(10)
        ha.close()
    assert gw.returncode == 0, err
    assert "node 127.0.0.1#1: motion ratio set to 4.2" in err, err[-2000:]
    assert "node 127.0.0.1#1: recalibration requested (75 s after 10 s)" in err, err[-2000:]
