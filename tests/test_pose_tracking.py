"""Keypoint decoding, confidence gating and per-node tracking (models spec section 6)."""

from __future__ import annotations

import numpy as np
import pytest

from csi_edge.pose import BONES, COCO17, NodeTracker, PoseTracker, decode, gate


def _skeleton() -> np.ndarray:
    xy = np.zeros((17, 2))
    xy[[5, 6]] = [[0.40, 0.30], [0.60, 0.30]]  # shoulders
    xy[[11, 12]] = [[0.42, 0.60], [0.58, 0.60]]  # hips
    xy[[7, 8, 9, 10]] = [[0.35, 0.45], [0.65, 0.45], [0.33, 0.58], [0.67, 0.58]]
    xy[[13, 14, 15, 16]] = [[0.42, 0.75], [0.58, 0.75], [0.42, 0.90], [0.58, 0.90]]
    xy[[0, 1, 2, 3, 4]] = [[0.5, 0.18], [0.48, 0.16], [0.52, 0.16], [0.46, 0.17], [0.54, 0.17]]
    return xy


def _pose(xy, conf=0.9):
    return decode(np.asarray(xy).reshape(-1), np.full(17, conf))


def test_decode_layout_and_gating() -> None:
    flat = np.arange(34, dtype=np.float32) / 34  # x0, y0, x1, y1, ...
    p = decode(flat, np.linspace(0, 1, 17))
    assert p.xy.shape == (17, 2) and p.xy[1].tolist() == pytest.approx([2 / 34, 3 / 34])
    g = gate(p, 0.5)
    assert g.visible.tolist() == (np.linspace(0, 1, 17) >= 0.5).tolist()
    assert decode(flat * 3).xy.max() == 1.0  # clipped to the image
    assert decode(flat).confidence.tolist() == [1.0] * 17  # no confidence output
    assert len(COCO17) == 17 and p.to_json()["keypoints"][9]["name"] == "l_wrist"


def test_confirmed_after_two_hits_lost_after_five_misses() -> None:
    tr = PoseTracker()
    p = _pose(_skeleton())
    assert tr.update(p).status == "tentative"
    s = tr.update(p)
    assert s.status == "confirmed" and s.shown and s.track_id == 1
    for i in range(4):
        s = tr.update(None)
        assert s.status == "confirmed" and s.misses == i + 1
    assert tr.update(None).status == "lost"
    assert tr.update(None).status == "lost"
    s = tr.update(p)  # a new detection starts a new, tentative track
    assert (s.status, s.track_id, s.hits) == ("tentative", 2, 1)


def test_tentative_track_dropped_on_a_miss_and_low_confidence_is_a_miss() -> None:
    tr = PoseTracker()
    tr.update(_pose(_skeleton()))
    assert tr.update(None).status == "lost"
    tr2 = PoseTracker(conf_gate=0.3)
    tr2.update(_pose(_skeleton()))
    assert tr2.update(_pose(_skeleton(), conf=0.1)).status == "lost"  # all gated: no detection


def test_kalman_smooths_measurement_noise() -> None:
    rng = np.random.default_rng(0)
    truth = _skeleton()
    tr = PoseTracker(bone_tolerance=10.0)  # isolate the filter from the bone clamp
    raw_err, kf_err = [], []
    for i in range(200):
        z = truth + rng.normal(0, 0.03, truth.shape)
        s = tr.update(_pose(z))
        if i > 20:
            raw_err.append(np.abs(z - truth).mean())
            kf_err.append(np.abs(s.xy - truth).mean())
    assert np.mean(kf_err) < 0.6 * np.mean(raw_err)


def test_bone_length_clamped_to_20_percent_per_frame() -> None:
    tr = PoseTracker(measurement_noise=1e-4)  # trust measurements: isolate the clamp
    base = _skeleton()
    tr.update(_pose(base))
    tr.update(_pose(base))
    stretched = base.copy()
    stretched[9] = base[7] + 2.0 * (base[9] - base[7])  # forearm doubles in one frame
    s = tr.update(_pose(stretched))
    before = np.hypot(*(base[9] - base[7]))
    after = np.hypot(*(s.xy[9] - s.xy[7]))
    assert after == pytest.approx(1.2 * before, rel=0.02)
    # direction of the bone is kept
    d0, d1 = base[9] - base[7], s.xy[9] - s.xy[7]
    assert d0[0] * d1[1] - d0[1] * d1[0] == pytest.approx(0, abs=1e-6)
    assert (7, 9) in BONES


def test_node_tracker_keeps_nodes_apart() -> None:
    nt = NodeTracker()
    p = _pose(_skeleton())
    nt.update("a", p)
    nt.update("a", p)
    nt.update("b", p)
    assert set(nt.shown()) == {"a"}
