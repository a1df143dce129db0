"""Runtime built from the manifest: features, time grid, batched streaming, whole-window models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csi_edge.inference.bundle import load_bundle
from csi_edge.inference.manifest import ManifestError
from csi_edge.inference.runtime import (
    FeatureBuilder,
    PoseRuntime,
    TimeResampler,
    VitalsRuntime,
    WindowRuntime,
    open_runtime,
)
from csi_edge.inference.synthetic import make_pose_bundle, make_ruview_bundle, make_vitals_bundle
from csi_edge.temporal import Encoder, StreamingHead, TemporalConfig, load_weights

CFG = TemporalConfig(4, 1, 16, 8, 64)
RATE = 20.0


@pytest.fixture(scope="module")
def pose_bundle(tmp_path_factory) -> Path:
    return make_pose_bundle(tmp_path_factory.mktemp("pose"), CFG, int8=False)


@pytest.fixture(scope="module")
def ruview_bundle(tmp_path_factory) -> Path:
    return make_ruview_bundle(tmp_path_factory.mktemp("ruview"))


def _csi(rng, k: int, n: int = 64) -> np.ndarray:
    z = rng.standard_normal((k, n)) + 1j * rng.standard_normal((k, n))
    return (z * 12).astype(np.complex64)


def test_lltf_features_take_the_52_canonical_bins(pose_bundle: Path) -> None:
    fb = FeatureBuilder(load_bundle(pose_bundle).manifest)
    raw = np.zeros((1, 128), np.complex64)
    raw[0, :64] = np.arange(64) + 1.0  # amplitude encodes the raw bin index (+1)
    amp = np.expm1(fb(raw)[0, :52])  # manifest norm is mean 0 / std 1
    sub = np.r_[np.arange(-26, 0), np.arange(1, 27)]
    assert np.allclose(amp, np.where(sub < 0, 64 + sub, sub) + 1.0, rtol=1e-5)


def test_time_resampler_linear_grid_and_late_frames() -> None:
    rs = TimeResampler(RATE)
    t = np.array([10.012, 10.061, 10.139, 10.151])
    x = (t * 100).reshape(-1, 1)  # a ramp: interpolation must be exact
    tg, xg = rs.push(t, x)
    assert np.allclose(tg, [10.05, 10.10, 10.15])
    assert np.allclose(xg[:, 0], tg * 100, atol=1e-3)
    tg2, _ = rs.push(np.array([10.10]), np.array([[0.0]]))  # older than the last frame
    assert len(tg2) == 0 and rs.late == 1
    tg3, _ = rs.push(np.array([12.5]), np.array([[1.0]]))  # a 2.3 s gap: restart, no invention
    assert rs.gap and tg3.tolist() == [12.5]


def test_streaming_runtime_equals_full_window_reference(pose_bundle: Path) -> None:
    """Frames on the grid -> runtime output at every step == encoder + full-window forward."""
    rng = np.random.default_rng(0)
    b = load_bundle(pose_bundle)
    rt = PoseRuntime(b, capacity=1)
    T = 3 * CFG.window + 2
    csi = _csi(rng, T)
    t = 100.0 + np.arange(T) / RATE
    outs = []
    for i in range(T):
        outs += rt.push({"n1": (t[i : i + 1], csi[i : i + 1])})
    assert len(outs) == T
    w = load_weights(pose_bundle / "weights.npz")
    emb = Encoder(w)(FeatureBuilder(b.manifest)(csi))
    kp_ref, conf_ref = StreamingHead(w, CFG).full_forward(emb)
    got = np.stack([o.keypoints.reshape(-1) for o in outs])
    assert np.abs(got - kp_ref).max() <= 1e-4
    assert np.abs(np.stack([o.confidence for o in outs]) - conf_ref).max() <= 1e-4
    assert [o.t for o in outs] == pytest.approx(t.tolist())


def test_nodes_batched_together_equal_nodes_alone(pose_bundle: Path) -> None:
    rng = np.random.default_rng(1)
    b = load_bundle(pose_bundle)
    together = PoseRuntime(b, capacity=1)  # grows to 3 streams on demand
    alone = {n: PoseRuntime(b, capacity=1) for n in "abc"}
    got, want = {}, {}
    for i in range(20):
        frames = {
            n: (np.array([50 + i / RATE + 0.003 * j]), _csi(rng, 1)) for j, n in enumerate("abc")
        }
        got.update({(o.node, o.t): o.keypoints for o in together.push(frames)})
        for n in "abc":
            want.update({(o.node, o.t): o.keypoints for o in alone[n].push({n: frames[n]})})
    assert got.keys() == want.keys() and len(got) == 20 + 19 + 19  # a is on the grid
    assert max(np.abs(got[k] - want[k]).max() for k in got) <= 1e-5
    assert together.capacity >= 3 and len(together.nodes.rows) == 3


def test_gap_restarts_the_node_context(pose_bundle: Path) -> None:
    rng = np.random.default_rng(2)
    b = load_bundle(pose_bundle)
    rt, fresh = PoseRuntime(b), PoseRuntime(b)
    for i in range(10):
        rt.push({"n": (np.array([i / RATE]), _csi(rng, 1))})
    frame = (np.array([5.0]), _csi(rng, 1))  # 4.55 s later
    (after_gap,) = rt.push({"n": frame})
    (first,) = fresh.push({"n": frame})
    assert np.abs(after_gap.keypoints - first.keypoints).max() <= 1e-6


def test_node_with_too_few_bins_is_a_clear_error(pose_bundle: Path) -> None:
    rt = open_runtime(pose_bundle)
    with pytest.raises(ManifestError, match=r"lltf-ht20, node 10.0.0.9#3 delivers 32 bins"):
        rt.push({"10.0.0.9#3": (np.array([1.0]), np.ones((1, 32), np.complex64))})


def test_ruview_window_is_frame_major_reshaped_without_transpose(ruview_bundle: Path) -> None:
    rng = np.random.default_rng(3)
    b = load_bundle(ruview_bundle)
    rt = WindowRuntime(b, capacity=1)
    assert isinstance(open_runtime(ruview_bundle), WindowRuntime)
    csi = _csi(rng, 47)
    outs = []
    for i in range(47):  # wraps the 20-frame ring twice
        outs += rt.push({"n": (np.array([i / RATE]), csi[i : i + 1])})
    assert len(outs) == 47 - 20 + 1
    amp = np.abs(csi[:, :56]).astype(np.float32)  # first 56 RAW bins, no reordering
    model = b.models["window"]
    for k, out in enumerate(outs):
        frames = amp[k : k + 20]  # [20, 56] oldest first
        want = model.run({"csi_window": frames.reshape(1, 56, 20)})["keypoints"][0]
        assert np.abs(out.keypoints.reshape(-1) - want).max() <= 1e-6
    transposed = model.run({"csi_window": np.ascontiguousarray(amp[-20:].T)[None]})["keypoints"]
    assert np.abs(outs[-1].keypoints.reshape(-1) - transposed[0]).max() > 1e-4


def test_window_runtime_batches_nodes_and_several_frames_per_push(ruview_bundle: Path) -> None:
    rng = np.random.default_rng(4)
    b = load_bundle(ruview_bundle)
    rt, ref = WindowRuntime(b), WindowRuntime(b)
    csi = {n: _csi(rng, 25) for n in "xy"}
    t = np.arange(25) / RATE
    got = rt.push({n: (t, csi[n]) for n in "xy"})  # 25 frames per node in one push
    want = []
    for i in range(25):
        want += ref.push({n: (t[i : i + 1], csi[n][i : i + 1]) for n in "xy"})
    key = lambda o: (o.node, o.t)  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, want)) and len(got) == 12
    w = {key(o): o.keypoints for o in want}
    assert all(np.abs(o.keypoints - w[key(o)]).max() <= 1e-6 for o in got)


def test_vitals_runtime_scales_breathing(tmp_path: Path) -> None:
    b = load_bundle(make_vitals_bundle(tmp_path))
    rt = VitalsRuntime(b)
    x = np.random.default_rng(5).standard_normal((8, 256)).astype(np.float32)
    (out,) = rt.run(x)
    raw = b.models["window"].run({"window": x[None]})["vitals"][0]
    assert out["breathing_bpm"] == pytest.approx(raw[0] * 10 + 20, rel=1e-6)
    assert out["presence_logit"] == pytest.approx(raw[1], rel=1e-6)


@pytest.mark.parametrize("mode", [None, "none", "linear"])
def test_window_runtime_time_resampling_follows_manifest(ruview_bundle, tmp_path, mode) -> None:
    import json
    import shutil

    folder = tmp_path / "b"
    shutil.copytree(ruview_bundle, folder)
    d = json.loads((folder / "manifest.json").read_text())
    d["input"].pop("time_resample", None)
    if mode is not None:
        d["input"]["time_resample"] = mode
    (folder / "manifest.json").write_text(json.dumps(d))
    rt = WindowRuntime(load_bundle(folder))
    rng = np.random.default_rng(6)
    t = 10.0 + np.arange(30) / RATE + rng.uniform(0.002, 0.02, 30)  # jittered, off the grid
    outs = rt.push({"n": (t, _csi(rng, 30))})
    times = np.array([o.t for o in outs])
    on_grid = np.allclose(times * RATE, np.round(times * RATE))
    # RuView's grid (raw-first-56) defaults to frames as they arrive, like RuView's runtime
    assert on_grid == (mode == "linear")
    assert len(outs) >= 9


def test_grid_resampler_single_pushes_equal_the_per_node_resampler() -> None:
    """The vectorized one-frame-per-node path is bit-identical to TimeResampler node by node,
    through jitter, late frames, duplicate times and gaps (which restart the grid)."""
    from csi_edge.inference.runtime import GridResampler, TimeResampler

    rng = np.random.default_rng(11)
    n, rate = 7, 20.0
    grid = GridResampler(rate, dim=3, max_gap_s=1.0, capacity=2)
    grid.ensure(n)
    ref = [TimeResampler(rate, 1.0) for _ in range(n)]
    t = rng.uniform(100, 101, n)
    seen = {"late": 0, "gap": 0, "points": 0}
    for _ in range(600):
        t = t + rng.choice(
            [0.0, 0.004, 0.021, 0.05, -0.03, 1.7], n, p=[0.03, 0.3, 0.4, 0.2, 0.05, 0.02]
        )
        x = rng.standard_normal((n, 3)).astype(np.float32)
        rows = rng.permutation(n)[: rng.integers(1, n + 1)]
        pr, tg, xg, gaps = grid.push_single(rows, t[rows], x[rows])
        for r in rows:
            want_t, want_x = ref[r].push(t[r : r + 1], x[r : r + 1])
            mine = pr == r
            assert np.array_equal(tg[mine], want_t) and np.array_equal(xg[mine], want_x)
            assert (r in gaps) == ref[r].gap
            seen["gap"] += ref[r].gap
            seen["points"] += len(want_t)
    seen["late"] = int(grid.late.sum())
    assert grid.late.tolist() == [r.late for r in ref]
    assert min(seen.values()) > 0, seen  # the stream exercised every case
