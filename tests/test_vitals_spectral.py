"""The rate estimator's peak picking: a rate is a peak inside the band, never an edge."""

from __future__ import annotations

import numpy as np
import pytest

from csi_edge.vitals.spectral import estimate_rate


def _series(rate_hz: float, seconds: float, f_hz: float | None, drift_hz: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    x = 0.05 * rng.standard_normal((len(t), 8))
    x += 3.0 * np.sin(2 * np.pi * drift_hz * t)[:, None]  # slow drift just below the band
    if f_hz is not None:
        x += 0.5 * np.sin(2 * np.pi * f_hz * t)[:, None]
    return x


HP = 0.07  # VitalsConfig.breath_highpass_hz


@pytest.mark.parametrize("drift_hz", [0.03, 0.05])  # >= 1.5 resolution cells below 6 BPM
def test_drift_below_the_band_is_not_reported_as_a_rate(drift_hz):
    """A strong drift below 6 BPM once came out as ~4 BPM (the band edge, extrapolated) or as
    a confident 7-10 BPM (its window sidelobes)."""
    r = estimate_rate(
        _series(8.0, 30.0, None, drift_hz), 8.0, (6.0, 40.0), (3.2, 3.9), highpass_hz=HP
    )
    assert r.bpm is None or r.conf < 0.3  # the estimator reports a rate from conf 0.3 up


@pytest.mark.parametrize("drift_hz", [0.03, 0.06])
def test_a_real_breathing_peak_next_to_drift_is_found_inside_the_band(drift_hz):
    r = estimate_rate(
        _series(8.0, 30.0, 0.25, drift_hz), 8.0, (6.0, 40.0), (3.2, 3.9), highpass_hz=HP
    )
    assert r.bpm is not None and abs(r.bpm - 15.0) < 0.5 and r.conf > 0.5
