"""Node commands while the gateway runs: recalibrate a room baseline, set motion sensitivity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from csi_edge.errors import InputError
from csi_edge.estimators import Estimators, ProcessEstimators
from csi_edge.nodecommands import load_settings, motion_ratio, recalibrate
from csi_edge.sim import preset, simulate
from csi_edge.vitals.baseline import load_baseline
from csi_edge.vitals.run import frame_times, lltf_frames


def _seconds(kind: str, seconds: float, seed: int = 1):
    """One node's simulated frames, one second per job: [(now, key, t, csi)]."""
    res = simulate(preset(kind, seconds), seed=seed)
    key = res.node_keys[0]
    frames = res.frames[res.frames.node_keys() == key]
    t, _ = frame_times(frames)
    csi = lltf_frames(frames)
    out = []
    for s in np.arange(np.floor(t[0]) + 1, t[-1], 1.0):
        sel = (t >= s - 1) & (t < s)
        out.append((float(s), key, t[sel], csi[sel]))
    return out


def _run(est, seconds, commands_at_first=()):
    status = {}
    for i, (now, key, t, csi) in enumerate(seconds):
        job = (now, [key], {key: [(t, csi)]}, [], list(commands_at_first) if i == 0 else [])
        _, _, status = est.estimate(job)
    return status


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_recalibrating_an_empty_room_saves_a_baseline_the_running_node_uses(tmp_path, process):
    seconds = _seconds("empty", 45)
    key = seconds[0][1]
    est = ProcessEstimators(str(tmp_path)) if process else Estimators(str(tmp_path))
    try:
        status = _run(est, seconds[:3], [recalibrate(key, seconds=30, delay_s=2)])
        assert status[key]["state"] in ("waiting", "collecting")
        status = _run(est, seconds[3:])
        assert status[key]["recalibration"] == "accepted", status
        assert status[key]["state"] == "partial"  # 30 s: a complete baseline needs 60
        saved = load_baseline(key, str(tmp_path))
        assert saved.runs == 1 and 20 <= saved.still_s <= 30
    finally:
        if process:
            est.close()


def test_recalibrating_with_someone_in_the_room_is_refused_and_keeps_the_old_baseline(tmp_path):
    seconds = _seconds("still", 45)  # a person sitting and breathing
    key = seconds[0][1]
    est = Estimators(str(tmp_path))
    status = _run(est, seconds, [recalibrate(key, seconds=30, delay_s=0)])
    assert status[key]["state"] == "refused" and "room not still" in status[key]["message"]
    assert not list(tmp_path.glob("*.json"))  # nothing saved
    assert est.vitals[key].baseline.still_s == 0  # the old (default) baseline stays


def test_a_motion_ratio_reaches_the_running_and_later_estimators():
    est = Estimators()
    seconds = _seconds("empty", 4)
    key = seconds[0][1]
    _run(est, seconds[:2])
    assert est.vitals[key].cfg.motion_ratio == 2.0
    _run(est, seconds[2:], [motion_ratio(key, "3.5")])
    assert est.vitals[key].cfg.motion_ratio == 3.5
    est.estimate((10.0, [], {}, [key]))  # forgotten: a new estimator keeps the setting
    _run(est, seconds[:1])
    assert est.vitals[key].cfg.motion_ratio == 3.5


def test_out_of_range_commands_are_clear_errors():
    with pytest.raises(InputError, match="must be 1.1-10"):
        motion_ratio("n", 0.5)
    with pytest.raises(InputError, match="expected a number"):
        motion_ratio("n", "abc")
    with pytest.raises(InputError, match="seconds must be 20-600"):
        recalibrate("n", seconds=5)


def test_motion_ratios_survive_a_restart_and_a_bad_file_is_ignored(tmp_path):
    from csi_edge.nodecommands import save_settings

    save_settings(tmp_path, {"a#1": {"motion_ratio": 3.0}})
    assert load_settings(tmp_path) == {"a#1": {"motion_ratio": 3.0}}
    (tmp_path / "node-settings.json").write_text(
        json.dumps({"nodes": {"a#1": {"motion_ratio": 99}, "b#1": {"motion_ratio": 2.5}}})
    )
    assert load_settings(tmp_path) == {"b#1": {"motion_ratio": 2.5}}
    (tmp_path / "node-settings.json").write_text("{broken")
    assert load_settings(tmp_path) == {}


def test_the_gateway_takes_commands_for_known_nodes_reports_them_and_keeps_the_ratio(
    tmp_path, monkeypatch
):
    from csi_edge.codecs.result import DecodeResult
    from csi_edge.config import GatewayConfig
    from csi_edge.gateway import Gateway

    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path))
    cfg = GatewayConfig()
    cfg.baselines_dir = str(tmp_path / "baselines")
    sim = simulate(preset("empty", 6), seed=1)
    gw = Gateway(cfg)
    with pytest.raises(InputError, match="no node 'nope#1'"):
        gw.set_motion_ratio("nope#1", 3.0)
    gw.ingest.emit(DecodeResult(sim.frames))
    key = sim.node_keys[0]
    gw.set_motion_ratio(key, 3.0)
    gw.recalibrate(key, seconds=20, delay_s=5)
    now = float(sim.frames.meta["t_rx"][-1])
    (rep,) = gw.reports(now=now)
    assert rep.motion_ratio == 3.0 and rep.calibration["state"] == "waiting"
    assert gw.estimators.vitals[key].cfg.motion_ratio == 3.0
    # a restarted gateway starts with the node's own ratio
    again = Gateway(cfg)
    again.ingest.emit(DecodeResult(sim.frames))
    (rep,) = again.reports(now=now)
    assert rep.motion_ratio == 3.0 and rep.calibration["state"] == "none"
    assert again.estimators.vitals[key].cfg.motion_ratio == 3.0
