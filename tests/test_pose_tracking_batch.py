"""The batched tracker against the per-node tracker it replaced (frozen in tracking_reference)."""

from __future__ import annotations

import numpy as np
import pytest
import tracking_reference as ref

from csi_edge.pose import decode
from csi_edge.pose.tracking import CONFIRMED, STATUS_NAMES, NodeTracker, PoseTracker


def _stream(rng, n_nodes: int, n_frames: int, conf_low: float = 0.0):
    """Per frame: keypoints [n, 17, 2] near a drifting skeleton, confidences with dropouts,
    whole frames missing, and sudden jumps (so tracks are lost and restarted)."""
    base = rng.uniform(0.3, 0.7, (n_nodes, 17, 2))
    for f in range(n_frames):
        base += rng.normal(0, 0.01, base.shape)
        if f % 37 == 20:
            base = rng.uniform(0.2, 0.8, base.shape)
        kp = base + rng.normal(0, 0.02, base.shape)
        conf = rng.uniform(conf_low, 1, (n_nodes, 17))
        conf[rng.uniform(size=n_nodes) < 0.15] = 0.05  # whole-frame misses
        yield kp.astype(np.float32), conf.astype(np.float32)


@pytest.mark.parametrize("ema,conf_low", [(1.0, 0.0), (0.6, 0.0), (1.0, 0.5)])
def test_batched_tracker_matches_the_per_node_one(ema: float, conf_low: float) -> None:
    """conf_low 0.5: every keypoint of a detection is visible (the tracker's dense path)."""
    rng = np.random.default_rng(3)
    nodes = [f"n{i}" for i in range(6)]
    batched = NodeTracker(ema=ema)
    singles = {n: ref.PoseTracker(ema=ema) for n in nodes}
    statuses = set()
    for kp, conf in _stream(rng, len(nodes), 400, conf_low):
        got = batched.update_many(nodes, kp, conf)
        for j, n in enumerate(nodes):
            want = singles[n].update(decode(kp[j], conf[j]))
            assert STATUS_NAMES[got.status[j]] == want.status
            assert got.track_id[j] == want.track_id
            assert np.array_equal(got.seen[j], want.visible)
            np.testing.assert_allclose(got.xy[j], want.xy, atol=1e-5)
            statuses.add(want.status)
    assert statuses == {"lost", "tentative", "confirmed"}  # the stream exercised every state


def test_subsets_of_rows_advance_alone() -> None:
    """Rows not in an update keep their state (nodes report at different times)."""
    rng = np.random.default_rng(5)
    batched = NodeTracker()
    singles = {n: ref.PoseTracker() for n in "abc"}
    for i, (kp, conf) in enumerate(_stream(rng, 3, 120)):
        names = ["a", "b", "c"] if i % 3 else ["c", "a"]
        idx = [ord(n) - ord("a") for n in names]
        got = batched.update_many(names, kp[idx], conf[idx])
        for j, n in enumerate(names):
            want = singles[n].update(decode(kp[idx[j]], conf[idx[j]]))
            np.testing.assert_allclose(got.xy[j], want.xy, atol=1e-5)
            assert (got.status[j] == CONFIRMED) == (want.status == "confirmed")


def test_single_track_view_matches_reference_including_no_detection() -> None:
    rng = np.random.default_rng(9)
    new, old = PoseTracker(), ref.PoseTracker()
    for i, (kp, conf) in enumerate(_stream(rng, 1, 150)):
        pose = None if i % 11 == 5 else decode(kp[0], conf[0])
        a, b = new.update(pose), old.update(pose)
        assert (a.status, a.track_id, a.hits, a.misses) == (b.status, b.track_id, b.hits, b.misses)
        np.testing.assert_allclose(a.xy, b.xy, atol=1e-5)
