"""Signal conditioning: phase sanitizing, Hampel, grids, time resampling, features."""

import numpy as np
import pytest

from csi_edge.dsp import (
    LLTF_SUBCARRIERS,
    RunningNorm,
    StreamingGrid,
    hampel,
    pose_features,
    resample_subcarriers,
    sanitize_phase,
    truncate_raw,
    uniform_grid,
    vitals_window,
)
from tests.conftest import jittered_times


def test_sanitize_phase_removes_timing_and_carrier_offsets():
    rng = np.random.default_rng(0)
    sc = np.r_[-26:0, 1:27].astype(float)
    shape = 0.3 * np.sin(sc / 5.0)  # what the channel does
    shape -= np.polyval(np.polyfit(sc, shape, 1), sc)
    offs = rng.uniform(-np.pi, np.pi, (20, 1)) + rng.uniform(-0.3, 0.3, (20, 1)) * sc
    csi = np.exp(1j * (shape + offs))
    out = sanitize_phase(csi, sc)
    assert np.allclose(out, shape, atol=1e-5)


def test_hampel_replaces_spikes_only():
    x = np.sin(np.linspace(0, 6, 200))[:, None].repeat(3, 1)
    y = x.copy()
    y[50, 1] += 5.0
    f, mask = hampel(y, 3, 3.0)
    assert mask[50, 1] and mask.sum() == 1
    assert np.allclose(f, x, atol=0.05)


def test_resample_subcarriers_methods():
    src = np.r_[-26:0, 1:27].astype(float)
    x = np.stack([2 * src + 1, src**2])  # [2, 52]
    lin = resample_subcarriers(x[:1], src, 56, "linear")
    assert lin.shape == (1, 56) and np.allclose(lin[0], 2 * np.linspace(-26, 26, 56) + 1, atol=1e-4)
    cub = resample_subcarriers(x[1:], src, 56, "cubic")
    assert np.allclose(cub[0], np.linspace(-26, 26, 56) ** 2, rtol=1e-3, atol=1e-2)
    raw = np.arange(128).reshape(2, 64)
    assert np.array_equal(truncate_raw(raw, 56), raw[:, :56])
    assert np.array_equal(
        resample_subcarriers(raw, np.arange(64), np.arange(56), "truncate"), raw[:, :56]
    )
    with pytest.raises(ValueError, match="resample method"):
        resample_subcarriers(x, src, 56, "nearest")


def test_uniform_grid_is_rate_independent_and_marks_gaps():
    rng = np.random.default_rng(1)
    sig = lambda t: np.sin(2 * np.pi * 0.3 * t)[:, None]  # noqa: E731
    grids = []
    for rate in (10, 50):
        t = jittered_times(rate, 30, rng)
        tg, g, ok = uniform_grid(t, sig(t), 8.0, t_start=2.0, t_end=28.0)
        grids.append(g[:, 0])
    assert np.max(np.abs(grids[0] - grids[1])) < 0.15
    t = np.r_[np.arange(0, 10, 0.1), np.arange(15, 20, 0.1)]
    tg, g, ok = uniform_grid(t, sig(t), 8.0, max_gap_s=1.0)
    inside = (tg > 10.5) & (tg < 14.5)
    assert not ok[inside].any() and np.isnan(g[inside]).all() and ok[tg < 9.5].all()


def test_streaming_grid_matches_batch():
    rng = np.random.default_rng(2)
    t = jittered_times(23, 20, rng) + 1000.0
    x = rng.standard_normal((len(t), 4)).astype(np.float32)
    sg = StreamingGrid(8.0, 4, capacity=400)
    for a in range(0, len(t), 7):
        sg.push(t[a : a + 7], x[a : a + 7])
    tg, g, ok = sg.window(t[-1], 15.0)
    tb, gb, okb = uniform_grid(t, x, 8.0, t_start=tg[0], t_end=tg[-1])
    assert np.allclose(tg, tb) and np.allclose(g[ok], gb[ok], atol=1e-5)


def test_features_shapes_and_norm():
    rng = np.random.default_rng(3)
    csi = (rng.standard_normal((40, 53)) + 1j * rng.standard_normal((40, 53))).astype(np.complex64)
    csi[:, 26] = 0
    norm = {"mean": np.ones(52), "std": np.full(52, 2.0)}
    f = pose_features(csi, norm)
    assert f.shape == (40, 104) and f.dtype == np.float32
    assert np.allclose(f[:, :52], (np.log1p(np.abs(np.delete(csi, 26, 1))) - 1) / 2, atol=1e-5)
    t = np.arange(400) / 10.0
    w = vitals_window(t, np.repeat(csi, 10, axis=0))
    assert w.shape == (8, 256) and np.isfinite(w).all()
    with pytest.raises(ValueError, match="53"):
        pose_features(csi[:, :50])
    assert len(LLTF_SUBCARRIERS) == 53


def test_running_norm_matches_numpy():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 5)) * 3 + 2
    rn = RunningNorm(5)
    for a in range(0, 300, 17):
        rn.update(x[a : a + 17])
    assert np.allclose(rn.mean, x.mean(0)) and np.allclose(rn.std, x.std(0))


def test_uniform_grid_without_frames():
    """No frames in a window: NaN rows where a span is asked for, empty otherwise (no error)."""
    tg, g, ok = uniform_grid(np.zeros(0), np.zeros((0, 5)), 8.0, t_start=10.0, t_end=11.0)
    assert len(tg) == 9 and g.shape == (9, 5) and np.isnan(g).all() and not ok.any()
    tg, g, ok = uniform_grid(np.zeros(0), np.zeros((0, 5)), 8.0)
    assert tg.shape == (0,) and g.shape == (0, 5) and ok.shape == (0,)
    _, g1, _ = uniform_grid(np.arange(3.0), np.arange(3.0), 1.0)  # 1-D values: one feature
    assert g1.shape == (3, 1)
