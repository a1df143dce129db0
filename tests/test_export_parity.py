"""Parity-report math and the calibration file contract (no torch needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from csi_edge.export import parity
from csi_edge.export.quantize import fit_arrays, load_calibration


def _pose(n: int, rng) -> np.ndarray:
    kp = rng.uniform(0.3, 0.7, (n, 17, 2))
    kp[:, 5], kp[:, 6] = [0.45, 0.3], [0.55, 0.3]  # shoulders
    kp[:, 11], kp[:, 12] = [0.45, 0.5], [0.55, 0.5]  # hips: torso length 0.2
    return kp.reshape(n, 34)


def test_pck_and_keypoint_error_on_known_offsets():
    gt = _pose(4, np.random.default_rng(0))
    pred = gt.copy()
    pred[:, 0::2] += 0.03  # every keypoint 0.03 off = 0.15 torso
    assert parity.keypoint_error(pred, gt) == pytest.approx(0.03)
    assert parity.pck(pred, gt, 0.2) == 1.0  # 0.03 < 0.2 * 0.2
    assert parity.pck(pred, gt, 0.1) == 0.0  # 0.03 > 0.1 * 0.2
    # a window of frames: the last frame is scored
    seq = np.stack([np.zeros_like(pred), pred], axis=1)
    assert parity.keypoint_error(seq, gt) == pytest.approx(0.03)


def test_pose_metrics_skip_windows_without_a_person():
    rng = np.random.default_rng(1)
    gt = _pose(6, rng)
    gt[3:] = 0.0  # empty room: the sidecar writes zeros
    truth = {"gt_keypoints": gt, "gt_presence": np.r_[1, 1, 1, 0, 0, 0]}
    m = parity.task_metrics("pose", [gt + 0.01], truth)
    assert m["scored_windows"] == 3
    assert m["pck@50"] == 1.0


def test_compare_check_and_table():
    rng = np.random.default_rng(2)
    x = {"x": rng.standard_normal((8, 3)).astype(np.float32)}
    gt = _pose(8, rng)

    def ref(inputs):
        return [gt.copy()]

    def cand(inputs):
        return [gt + 0.05]

    rec = parity.compare("pose", ref, cand, x, ["keypoints"], {"gt_keypoints": gt}, time_it=False)
    assert rec["max_abs_diff"] == pytest.approx(0.05)
    loss = (
        rec["metrics"]["candidate"]["keypoint_error"]
        - rec["metrics"]["reference"]["keypoint_error"]
    )
    assert loss == pytest.approx(np.hypot(0.05, 0.05))
    assert parity.check(rec, max_loss=0.1)["ok"]
    assert not parity.check(rec)["ok"]  # default threshold: 0.005
    text = parity.table(rec)
    assert "check: keypoints loss" in text and "FAIL" in text and "pck@20" in text


def test_vitals_bpm_uses_the_head_scaling():
    out = np.array([[0.0, 1, 1], [1.0, 1, 1]])  # (BPM - 20) / 10
    assert parity.bpm(out).tolist() == [20.0, 30.0]
    m = parity.task_metrics("vitals", [out], {"gt_bpm": np.array([21.0, np.nan])})
    assert m["bpm_mae"] == pytest.approx(1.0)


def test_write_many_writes_json_and_table(tmp_path):
    rec = parity.compare(
        "raw",
        lambda i: [i["x"]],
        lambda i: [i["x"] + 1e-3],
        {"x": np.zeros((2, 2), np.float32)},
        ["y"],
        time_it=False,
    )
    j, t = parity.write_many({"window": rec}, tmp_path / "r.json", title="t")
    assert json.loads(j.read_text())["graphs"]["window"]["max_abs_diff"] == pytest.approx(1e-3)
    assert "[window]" in t.read_text()


def test_calibration_file_split_and_fit(tmp_path):
    n = 10
    np.savez(
        tmp_path / "cal.npz",
        features=np.arange(n * 4 * 3, dtype=np.float32).reshape(n, 4, 3),
        split=(np.arange(n) >= 7).astype(np.int8),
        gt_keypoints=np.zeros((n, 34), np.float32),
        node=np.array(["a"] * n),
    )
    cal, held, _ = load_calibration(tmp_path / "cal.npz")
    assert len(cal["features"]) == 7 and len(held["features"]) == 3
    assert "gt_keypoints" not in cal and len(held["gt_keypoints"]) == 3
    # a per-frame graph [B, 3] sees every frame of every window
    frames = fit_arrays(["features"], [["B", 3]], cal)["features"]
    assert frames.shape == (28, 3)
    with pytest.raises(Exception, match="expects"):
        fit_arrays(["features"], [["B", 5]], cal)
    with pytest.raises(Exception, match="no array 'window'"):
        fit_arrays(["window"], [["B", 3]], cal)
