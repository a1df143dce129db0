"""The motion statistic: rate-independent noise level, AGC steps undone, breathing not motion;
and the streaming estimator only queues on push (conditioning happens per estimate)."""

import numpy as np

from csi_edge.vitals import NodeVitals
from csi_edge.vitals.motion import block_stats
from tests.conftest import jittered_times


def test_noise_level_is_the_same_at_10_50_100_hz():
    rng = np.random.default_rng(0)
    sigma = 0.05
    for rate, block, order in ((10, 1.0, 3), (50, 0.5, 2), (100, 0.5, 2)):
        t = jittered_times(rate, 120.0, rng)
        x = sigma * rng.standard_normal((len(t), 1))
        _, s, _, dof = block_stats(t, x, block, order=order)
        s = s[np.isfinite(s)]
        assert len(s) > 50
        assert abs(np.median(s) / sigma - 1.0) < 0.15, (rate, np.median(s))
        assert (dof >= 2).all()


def test_agc_step_is_undone_but_motion_is_not():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 10, 500))  # 50 Hz
    noise = 0.01 * rng.standard_normal(len(t))
    step = noise + 0.25 * (t > 4.23)  # a 2 dB gain step inside the block [4.0, 4.5)
    blk = (t >= 4.0) & (t < 4.5)
    _, s_plain, _, _ = block_stats(t[blk], step[blk, None], 0.5)
    _, s_fixed, _, _ = block_stats(t[blk], step[blk, None], 0.5, step_removal=True)
    assert s_plain[0] > 5 * 0.01
    assert s_fixed[0] < 2 * 0.01
    wave = noise + 0.05 * np.sin(2 * np.pi * 1.3 * t) * np.sin(2 * np.pi * 9.0 * t)
    _, s_wave, _, _ = block_stats(t[blk], wave[blk, None], 0.5, step_removal=True)
    assert s_wave[0] > 2 * 0.01


def test_breathing_curvature_is_not_motion():
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 60, 60 * 20))
    x = 0.5 * np.sin(2 * np.pi * 0.5 * t) + 0.01 * rng.standard_normal(len(t))  # 30 BPM, deep
    _, s, _, _ = block_stats(t, x[:, None], 0.5, order=2)
    assert np.nanmedian(s) < 1.2 * 0.01  # only the noise is left
    _, s1, _, _ = block_stats(t, x[:, None], 0.5, order=1)
    assert np.nanmedian(s1) > 1.5 * 0.01  # a straight line alone would leave the curvature


def test_push_only_queues_and_estimate_conditions_everything():
    rng = np.random.default_rng(3)
    nv = NodeVitals()
    t = np.arange(100) / 50.0
    csi = (rng.standard_normal((100, 53)) + 1j * rng.standard_normal((100, 53))).astype(
        np.complex64
    ) + 5
    for i in range(0, 100, 4):  # gateway-style small batches
        nv.push(t[i : i + 4], csi[i : i + 4])
    assert nv.frames == 0 and nv.grid is None  # nothing computed yet
    e = nv.estimate(t[-1])
    assert nv.frames == 100 and nv.grid is not None
    assert e.reason in ("no-presence", "warming-up")


def test_one_glitched_frame_does_not_raise_the_change_level_but_motion_does():
    # Real ESP32 still links carry single corrupted frames (held-out mendelas captures: the
    # plain level rose 10-fold in a still window, so the level test called motion). One bad
    # frame makes exactly two large frame-to-frame differences: the trimmed level drops them.
    from csi_edge.vitals.change import change_ratio

    rng = np.random.default_rng(3)
    t = np.arange(200) / 100.0
    still = rng.normal(0, 0.05, (200, 13))
    glitch = still.copy()
    glitch[90] += 2.0  # one frame 40 sigma off on every band
    _, quiet = change_ratio(t, still, trim=2)
    _, plain = change_ratio(t, glitch, trim=0)
    _, trimmed = change_ratio(t, glitch, trim=2)
    assert plain > 5 * quiet  # the plain mean reads a glitch as a big change
    assert trimmed < 1.1 * quiet  # the trimmed one does not
    # a limb moving faster than the frames raises every difference: still seen when trimmed
    fast = still + rng.normal(0, 0.1, (200, 13))
    _, moving = change_ratio(t, fast, trim=2)
    assert moving > 4 * quiet


def test_heldout_recordings_are_only_the_files_not_in_tests_data(tmp_path):
    from tests.labelled import DATA, heldout_recordings

    assert heldout_recordings(tmp_path) == []  # nothing there: the benchmark skips it
    src = DATA / "mendelas" / "E00_static_15s_60cm_trial01.csv"
    folder = tmp_path / "esp32-csi-tool-labelled" / "mendelas"
    folder.mkdir(parents=True)
    (folder / src.name).write_bytes(src.read_bytes())  # in tests/data: left out
    (folder / "E00_static_15s_60cm_trial09.csv").write_bytes(src.read_bytes())
    held = heldout_recordings(tmp_path)
    assert [r.name for r in held] == ["E00_static_15s_60cm_trial09"]
    assert held[0].kind == "empty"
