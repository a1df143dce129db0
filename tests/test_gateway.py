"""The gateway end to end: simulated nodes -> real UDP -> `csi-edge run` -> JSONL, HTTP, MQTT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import free_port

CLI = [sys.executable, "-m", "csi_edge"]


def _wait(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_gateway_serves_every_sink_and_stops_cleanly_on_sigterm(tmp_path, mosquitto):
    import paho.mqtt.client as mqtt

    from csi_edge.gatewayid import resolve_gateway_id

    host, mport = mosquitto
    gid = resolve_gateway_id()  # what the gateway below derives (same state directory)
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
                f"csi-edge/{gid}/nodes/127_0_0_1_2/state" in got
                and f"homeassistant/device/csi_edge_{gid}_127_0_0_1_1/config" in got
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
    assert got.get(f"csi-edge/{gid}/status") == b"offline"


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


def _simulated_gateway_reports(
    scenario_name: str, seconds: float, seed: int = 1, pose: str | None = None
):
    """Feed a simulated recording through the gateway's per-batch path, 0.1 s at a time, and
    take a report every second of capture time (what the daemon does with live frames)."""
    import numpy as np

    from csi_edge.codecs.result import DecodeResult
    from csi_edge.config import GatewayConfig
    from csi_edge.gateway import Gateway
    from csi_edge.service import load_pose_runtime, load_vitals_model
    from csi_edge.sim import preset, simulate

    cfg = GatewayConfig()
    cfg.baselines_dir = "/nonexistent-baselines-dir"
    if pose is not None:
        cfg.models.pose = pose
    sim = simulate(preset(scenario_name, seconds), seed=seed)
    gw = Gateway(cfg, [], [], load_pose_runtime(cfg), load_vitals_model(cfg))
    frames = sim.frames
    t = frames.meta["t_rx"]
    reports, t_next = [], t[0] + 1.0
    for lo in np.arange(t[0], t[-1], 0.1):
        sel = (t >= lo) & (t < lo + 0.1)
        if sel.any():
            res = DecodeResult(frames[sel])
            gw.ingest.emit(res)
        if lo >= t_next:
            reports.append(gw.reports(now=lo))
            t_next += 1.0
    return sim, gw, reports


def test_gateway_reports_breathing_pose_and_model_estimate_for_a_still_person():
    sim, gw, reports = _simulated_gateway_reports("still", 45.0)
    assert gw.pose is not None and gw.vitals_model is not None, "bundled models must load"
    last = reports[-1][0]
    truth_br = float(sim.truth.breathing_bpm[-1])
    assert last.presence is True and last.motion is False
    assert last.breathing_bpm is not None and abs(last.breathing_bpm - truth_br) < 1.0
    assert (
        last.model_vitals is not None and abs(last.model_vitals["breathing_bpm"] - truth_br) < 4.0
    )
    assert last.pose is not None and len(last.pose["keypoints"]) == 17
    assert gw.pose_frames > 0.9 * 20 * 40  # one pose output per 20 Hz grid point, per frame


def test_gateway_withholds_rates_in_an_empty_room():
    _, _, reports = _simulated_gateway_reports("empty", 40.0)
    late = [r[0] for r in reports[15:]]
    assert late and all(
        not r.presence and r.breathing_bpm is None and r.heart_bpm is None for r in late
    )
    assert all(r.pose is None for r in late), "no skeleton is drawn in an empty room"


def test_gateway_runs_a_whole_window_ruview_model_and_falls_back_to_its_fp32_variant(
    tmp_path, caplog
):
    """A RuView pose_v1 bundle (whole [56, 20] window, fp32 only) drives the gateway's pose
    output; asking for int8 falls back to the variant the bundle has, with a warning."""
    import logging

    from csi_edge.config import GatewayConfig
    from csi_edge.inference.synthetic import make_ruview_bundle
    from csi_edge.service import load_pose_runtime

    folder = make_ruview_bundle(tmp_path / "rv")
    cfg = GatewayConfig()
    cfg.models.pose, cfg.models.precision = str(folder), "int8"
    with caplog.at_level(logging.WARNING, logger="csi_edge.service"):
        runtime = load_pose_runtime(cfg)
    assert type(runtime).__name__ == "WindowRuntime"
    assert "using its default variant" in caplog.text
    # 16 s: the skeleton is drawn once presence is decided (breathing proves it at ~13 s)
    _, gw, reports = _simulated_gateway_reports("still", 16.0, pose=str(folder))
    assert gw.pose_frames > 150  # one output per frame once the 20-frame window is full
    last = reports[-1][0]
    assert last.pose is not None and len(last.pose["keypoints"]) == 17


def test_a_vitals_bundle_named_as_the_pose_model_is_a_clear_error():
    from csi_edge.config import ConfigError, GatewayConfig
    from csi_edge.inference.bundle import MODELS_DIR
    from csi_edge.service import load_pose_runtime

    cfg = GatewayConfig()
    cfg.models.pose = str(MODELS_DIR / "csi-edge-vitals")
    try:
        load_pose_runtime(cfg)
        raise AssertionError("expected a ConfigError")
    except ConfigError as e:
        assert "models.pose" in str(e) and "a vitals model, expected a pose model" in str(e)


def test_run_loads_the_vitals_model_and_the_offline_timeout(tmp_path):
    """`csi-edge run` builds its gateway with build_gateway: the bundled vitals model must load
    there too (not only in the demo), and ingest.offline_after_s must reach the node table."""
    from csi_edge.config import GatewayConfig
    from csi_edge.service import build_gateway

    cfg = GatewayConfig()
    cfg.ingest.udp = ["127.0.0.1:0"]
    cfg.ingest.offline_after_s = 42.0
    cfg.models.pose = ""
    cfg.sinks.console = False
    gw = build_gateway(cfg)
    try:
        assert gw.vitals_model is not None  # opened in the estimator process, which said so
        assert gw.ingest.nodes.offline_after_s == 42.0
    finally:
        gw.estimators.close()  # build_gateway starts the estimator process


def test_unwritable_jsonl_is_a_clear_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = subprocess.run(
        CLI + ["run", "--udp", "127.0.0.1:0", "--jsonl", str(blocker / "r.jsonl"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "sinks.jsonl" in res.stderr and "cannot open" in res.stderr


def test_a_failing_report_does_not_end_the_report_loop():
    """An exception while building reports is counted, and the next interval reports again."""
    import asyncio

    from csi_edge.config import GatewayConfig
    from csi_edge.gateway import Gateway

    cfg = GatewayConfig()
    cfg.report_interval_s = 0.05
    gw = Gateway(cfg)
    calls = []

    def flaky(snap):  # the estimate, on the worker thread
        calls.append(snap.now)
        if len(calls) == 1:
            raise ValueError("boom")
        return {}

    gw._estimate = flaky

    async def go():
        task = asyncio.create_task(gw._report_loop())
        await asyncio.sleep(0.4)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    assert len(calls) >= 3
    # the estimate failed once: that report went out without vitals, and the next ones with
    assert gw.skipped.as_dict().get("vitals-error") == 1


@pytest.mark.slow
def test_json_stdout_is_only_the_summary_when_the_console_view_is_on():
    """`csi-edge run --json` without --quiet: the console view goes to stderr, so stdout parses."""
    udp = free_port()
    gw = subprocess.Popen(
        CLI + ["run", "--udp", f"127.0.0.1:{udp}", "--pose", "none", "--duration", "4", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    subprocess.run(
        CLI + ["simulate-nodes", "--nodes", "1", "--target", f"127.0.0.1:{udp}", "--duration", "2"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    out, err = gw.communicate(timeout=30)
    assert gw.returncode == 0, err
    assert json.loads(out)["frames"] > 0
    assert "127.0.0.1#1: " in err  # the console view's plain line
    assert "frames from 1 node(s)" in err  # ... after its ingest-totals line


def test_a_busy_udp_port_names_the_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        res = subprocess.run(
            CLI + ["run", "--udp", f"127.0.0.1:{port}", "--pose", "none", "--duration", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert res.returncode == 4 and "Traceback" not in res.stderr  # 4: a busy port is a device/peer error
    assert f"udp 127.0.0.1:{port}" in res.stderr and "in use" in res.stderr


def test_mqtt_username_without_a_password_is_warned_about(caplog, monkeypatch):
    import logging

    from csi_edge.config import GatewayConfig
    from csi_edge.service import build_sinks

    monkeypatch.delenv("CSI_EDGE_MQTT_PASSWORD", raising=False)
    cfg = GatewayConfig()
    cfg.sinks.console = False
    cfg.sinks.mqtt.host, cfg.sinks.mqtt.username = "127.0.0.1:1", "ha"
    with caplog.at_level(logging.WARNING, logger="csi_edge.service"):
        sinks = build_sinks(cfg)
    for s in sinks:
        s.close()
    assert "username 'ha' is set but $CSI_EDGE_MQTT_PASSWORD is empty" in caplog.text
