"""A weak breathing rhythm, combined coherently across subcarriers.

Why: the per-channel estimator (:mod:`csi_edge.vitals.spectral`) averages the power spectra of
the best few channels. That never raises a peak above what the best channel holds, so a
breathing person whose chest moves every subcarrier a little but none much (20 dB per
subcarrier, a weak link) stays under the presence SNR. Summing the channels with the right
weights (the first principal component of the breathing band) adds the signal coherently and
the noise incoherently.

The catch is overfitting: a principal component chosen on a window always finds *some*
direction with band power, in an empty room too. So the direction is cross-fitted: learned on
one half of the window and scored on the other, both ways, and both halves must put their peak
at the same rate. Simulated empty rooms then score at most 16 (10-50 Hz, 10-35 dB), a still
person at 20 dB at least 60 (``docs/vitals.md``).

Real still links can score high as well (slow reflector drift is coherent across subcarriers),
so :class:`csi_edge.vitals.node.NodeVitals` uses this only to *confirm* a rhythm the
per-channel estimator already found stable, at the same rate; it is never evidence on its own.
Hand-written: a few lines of numpy around one SVD; no library does this cross-fitting.
"""

from __future__ import annotations

import numpy as np

from csi_edge.vitals.change import bands
from csi_edge.vitals.spectral import RateResult, drop_low_dct, peak_of, power_spectra

_NO_CHANNELS = np.zeros(0, int)


def _bands(x: np.ndarray, width: int) -> np.ndarray:
    """:func:`csi_edge.vitals.change.bands` of the amplitude and the phase halves apart: fewer,
    less noisy channels, so the half-window's band has more samples than the component has
    weights (the principal component would otherwise fit noise)."""
    half = x.shape[1] // 2
    return np.concatenate([bands(x[:, :half], width), bands(x[:, half:], width)], axis=1)


def _band_mask(f: np.ndarray, band_bpm: tuple[float, float]) -> np.ndarray:
    return (f >= band_bpm[0] / 60.0) & (f <= band_bpm[1] / 60.0)


def coherent_rate(
    x: np.ndarray,
    rate_hz: float,
    band_bpm: tuple[float, float],
    noise_hz: tuple[float, float],
    highpass_hz: float | None = None,
    tol_bpm: float = 3.0,
    width: int = 4,
    min_s: float = 16.0,
) -> RateResult:
    """The breathing rate and SNR of the cross-fitted first principal component of ``x``
    [T, C] (detrended features on a uniform grid, amplitude columns then phase columns).

    ``snr`` is the smaller of the two halves' peak SNRs; ``bpm`` their mean. ``reason`` says
    why not: "too-short" (under ``min_s``), "no-peak", "halves-disagree" (more than
    ``tol_bpm`` apart)."""
    n = len(x)
    if n < int(min_s * rate_hz) or x.shape[1] < 4:
        return RateResult(None, 0.0, 0.0, _NO_CHANNELS, reason="too-short")
    # both linear: banding first filters 4x fewer channels; the DCT projection (a coarse
    # high-pass) costs a tenth of the Butterworth filter and is enough for a direction
    z = _bands(np.asarray(x, np.float32), width)
    if highpass_hz:
        z = drop_low_dct(z, rate_hz, highpass_hz)
    z = z - z.mean(axis=0)
    nfft = 1 << int(np.ceil(np.log2(n)))
    f, spec = power_spectra(z, rate_hz, nfft, detrended=True)
    noise = (f >= noise_hz[0]) & (f <= noise_hz[1])
    if not noise.any():
        return RateResult(None, 0.0, 0.0, _NO_CHANNELS, reason="band-outside-grid")
    # noise-whitened: each channel in units of its own noise floor, so weights follow SNR
    z = z / np.sqrt(np.maximum(np.median(spec[noise], axis=0), 1e-20))
    m = n // 2
    halves = (z[:m] - z[:m].mean(axis=0), z[m : 2 * m] - z[m : 2 * m].mean(axis=0))
    fh = np.fft.rfftfreq(m, 1.0 / rate_hz)
    keep = _band_mask(fh, band_bpm)[:, None]
    weights = []
    for h in halves:
        band_only = np.fft.irfft(np.fft.rfft(h, axis=0) * keep, n=m, axis=0)
        weights.append(np.linalg.svd(band_only, full_matrices=False)[2][0])
    results = []
    for h, w in ((halves[0], weights[1]), (halves[1], weights[0])):
        ff, sp = power_spectra((h @ w)[:, None], rate_hz, 512)  # 0.94 BPM bins: enough to agree
        band = _band_mask(ff, band_bpm)
        nz = (ff >= noise_hz[0]) & (ff <= noise_hz[1])
        results.append(peak_of(sp[:, 0], ff, band, nz, rate_hz, m, _NO_CHANNELS))
    a, b = results
    if a.bpm is None or b.bpm is None:
        return RateResult(None, 0.0, 0.0, _NO_CHANNELS, reason="no-peak")
    if abs(a.bpm - b.bpm) > tol_bpm:
        return RateResult(None, 0.0, 0.0, _NO_CHANNELS, reason="halves-disagree")
    worst = a if a.snr <= b.snr else b
    return RateResult(0.5 * (a.bpm + b.bpm), worst.conf, worst.snr, _NO_CHANNELS, worst.prominence)
