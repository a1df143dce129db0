"""The cross-fitted coherent combination (csi_edge.vitals.coherent): it finds a rhythm spread
thinly over many channels, and noise alone does not pass for one (the overfitting a principal
component chosen and scored on the same data would show)."""

import numpy as np

from csi_edge.vitals.coherent import coherent_rate
from csi_edge.vitals.spectral import detrend, estimate_rate

FS = 8.0
BAND = (6.0, 40.0)
NOISE = (3.2, 3.9)


def _window(rng, amp: float, bpm: float = 15.0, seconds: float = 30.0) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    x = rng.normal(0.0, 1.0, (len(t), 104))
    # every subcarrier sees the chest, a little: smooth across frequency (the channel is), with
    # its own shape in amplitude and in phase
    k = np.arange(52)
    gains = np.r_[np.cos(2 * np.pi * k / 40 + rng.uniform(0, 6.3)), np.cos(2 * np.pi * k / 30)]
    x += amp * np.outer(np.sin(2 * np.pi * bpm / 60.0 * t), gains)
    return detrend(x.astype(np.float32))


def test_noise_alone_scores_low_in_every_trial():
    rng = np.random.default_rng(7)
    snrs = [coherent_rate(_window(rng, 0.0), FS, BAND, NOISE, 0.07).snr for _ in range(30)]
    assert max(snrs) < 20.0, max(snrs)


def test_a_rhythm_under_every_single_channel_noise_is_found_at_its_rate():
    rng = np.random.default_rng(8)
    # 0.3 of the per-channel noise: a weak link's breathing, under the presence SNR (30) of
    # the per-channel estimator, well over coherent_snr (40) combined
    windows = [_window(rng, 0.3) for _ in range(10)]
    per_channel = [
        estimate_rate(w, FS, BAND, NOISE, 8, detrended=True, highpass_hz=0.07) for w in windows
    ]
    assert max(r.snr for r in per_channel) < 30.0
    found = [coherent_rate(w, FS, BAND, NOISE, 0.07) for w in windows]
    assert all(r.bpm is not None and abs(r.bpm - 15.0) < 1.0 for r in found)
    assert min(r.snr for r in found) >= 40.0


def test_a_short_window_is_not_scored():
    rng = np.random.default_rng(9)
    r = coherent_rate(_window(rng, 1.0, seconds=10.0), FS, BAND, NOISE, 0.07)
    assert r.bpm is None and r.reason == "too-short"
