"""The steady-frame fast paths of the per-frame pose path against the general code they skip.

``BatchTracker._steady`` and ``GridResampler._steady`` handle a fleet's usual frame (every node
live, on time, one grid point) with fewer array operations; each test runs the same stream
with the fast path on and off and fails if any output diverges, and checks the fast path was
really taken (a spy subclass counts it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csi_edge.inference.bundle import load_bundle
from csi_edge.inference.runtime import GridResampler, PoseRuntime, TimeResampler
from csi_edge.inference.synthetic import make_pose_bundle
from csi_edge.pose.tracking import BatchTracker, NodeTracker
from csi_edge.temporal import TemporalConfig


class _CountingTracker(BatchTracker):
    taken = 0

    def _steady(self, *a):
        out = super()._steady(*a)
        self.taken += out is not None
        return out


class _CountingGrid(GridResampler):
    taken = 0

    def _steady(self, *a):
        out = super()._steady(*a)
        self.taken += out is not None
        return out


def _frames(rng, n: int, count: int, conf_low: float):
    base = rng.uniform(0.3, 0.7, (n, 17, 2))
    for f in range(count):
        base += rng.normal(0, 0.01, base.shape)
        if f % 53 == 30:  # jumps: bones clamp hard
            base = rng.uniform(0.2, 0.8, base.shape)
        conf = rng.uniform(conf_low, 1, (n, 17))
        if f % 41 == 7:
            conf[rng.integers(n)] = 0.05  # one node misses (the general path for that frame)
        yield (base + rng.normal(0, 0.02, base.shape)).astype(np.float32), conf.astype(np.float32)


@pytest.mark.parametrize("ema,conf_low", [(1.0, 0.0), (0.6, 0.2), (1.0, 0.5)])
def test_tracker_fast_path_equals_the_general_path(ema: float, conf_low: float) -> None:
    """conf_low 0: keypoints drop below the gate and come back (masked update, partial seen);
    0.5: every keypoint visible (the dense update)."""
    rng = np.random.default_rng(21)
    n = 5
    fast, slow = _CountingTracker(capacity=2, ema=ema), BatchTracker(capacity=2, ema=ema)
    slow.fast = False
    rows = np.arange(n)
    for xy, conf in _frames(rng, n, 400, conf_low):
        a, b = fast.update(rows, xy, conf), slow.update(rows, xy, conf)
        assert np.array_equal(a.status, b.status) and np.array_equal(a.track_id, b.track_id)
        assert np.array_equal(a.seen, b.seen)
        np.testing.assert_allclose(a.xy, b.xy, atol=1e-5, rtol=0)
    for name in ("x", "P", "bones", "out", "hits", "misses"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), atol=1e-5, rtol=0)
    assert fast.taken > 300, fast.taken  # the stream is mostly steady frames


@pytest.mark.parametrize("node_hz", [20.0, 50.0])
def test_grid_fast_path_equals_the_per_node_resampler(node_hz: float) -> None:
    """Jittered frames at the grid rate (one point per frame) and faster (zero or one)."""
    rng = np.random.default_rng(4)
    n, rate = 6, 20.0
    grid = _CountingGrid(rate, dim=3, capacity=n)
    ref = [TimeResampler(rate, 1.0) for _ in range(n)]
    t = 50.0 + rng.uniform(0, 0.05, n)
    rows = np.arange(n)
    for _ in range(500):
        t = t + 1.0 / node_hz + rng.uniform(-0.003, 0.003, n)
        x = rng.standard_normal((n, 3)).astype(np.float32)
        pr, tg, xg, gaps = grid.push_single(rows, t, x)
        assert len(gaps) == 0
        for r in rows:
            want_t, want_x = ref[r].push(t[r : r + 1], x[r : r + 1])
            mine = pr == r
            assert np.array_equal(tg[mine], want_t) and np.array_equal(xg[mine], want_x)
    assert grid.taken > 400, grid.taken  # jitter over a grid instant: two points, general path


@pytest.fixture(scope="module")
def pose_bundle(tmp_path_factory) -> Path:
    return make_pose_bundle(tmp_path_factory.mktemp("pose"), TemporalConfig(4, 1, 16, 8, 64))


def _fleet(rng, n: int, ticks: int):
    """Batches as the gateway sees them: nodes joining late, a node going quiet, a gap, a
    batch with two frames of one node, jittered receive times."""
    t = 100.0 + rng.uniform(0, 0.04, n)
    for i in range(ticks):
        t = t + 0.05 + rng.uniform(-0.004, 0.004, n)
        if i == 60:
            t[1] += 1.5  # a gap: node 1 restarts its grid and temporal context
        live = [j for j in range(n) if not (j == 3 and i < 25) and not (j == 2 and 40 < i < 48)]
        idx = np.array(live)
        times = t[idx]
        if i % 29 == 11:  # node 0 twice in one batch
            idx, times = np.r_[idx, 0], np.r_[times, t[0] + 0.02]
        csi = (rng.standard_normal((len(idx), 64)) + 1j * rng.standard_normal((len(idx), 64)))
        yield idx, times, (csi * 12).astype(np.complex64)


def test_pipeline_with_fast_paths_equals_it_without(pose_bundle: Path) -> None:
    """Runtime + tracker as the gateway drives them: every output and track within 1e-5."""
    n = 5
    names = [f"10.0.0.{j}#1" for j in range(n)]
    runs = {}
    for fast in (True, False):
        rt = PoseRuntime(load_bundle(pose_bundle), capacity=2)
        rt.grid.fast = fast
        tracker = NodeTracker(capacity=2)
        tracker.batch.fast = fast
        got = []
        for idx, t, csi in _fleet(np.random.default_rng(8), n, 150):
            order = np.argsort(idx, kind="stable")
            out = rt.push_batch(names, idx[order], t[order], csi[order])
            last = out.latest()
            tb = tracker.update_many(last.nodes, np.clip(last.keypoints, 0, 1), last.confidence)
            got.append((out.rows, out.t, out.keypoints, out.confidence, tb.status, tb.xy))
        runs[fast] = got
    assert len(runs[True]) == len(runs[False])
    for a, b in zip(runs[True], runs[False], strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        for x, y in zip(a[2:], b[2:], strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    assert sum(len(r[0]) for r in runs[True]) > 600
