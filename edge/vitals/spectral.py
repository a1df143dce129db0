"""Rate estimation on a uniform grid: band SNR per channel, combined spectrum, refined peak.

Why this way: ESP32 CSI gives ~100 noisy channels (52 amplitudes + 52 sanitized phases); only
some of them see the chest. Each channel's band SNR (peak power in the band over the median power
in a band above every vital sign, where only noise lives) picks the best few; their
noise-normalized power spectra are summed, and the peak is refined by parabolic interpolation on a
zero-padded FFT. Confidence comes from the combined SNR and the peak's prominence.

Cost: the ranking FFT over all channels uses the window's own length (next power of two); only
the few chosen channels get the zero-padded FFT that fixes the peak to a fraction of a BPM.
Hann windows are cached per length (the estimator asks for the same few lengths every second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from csi_edge.dsp.iir import butter2_highpass, filtfilt


@dataclass
class RateResult:
    bpm: float | None
    conf: float
    snr: float  # combined peak SNR (linear)
    channels: np.ndarray  # the channels used
    prominence: float = 0.0
    reason: str = ""  # why bpm is None or conf is low ("" when fine)
    extra: dict = field(default_factory=dict)


def fill_gaps(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Linearly fill NaN rows of ``x`` [T, C]; returns (filled, fraction that was missing)."""
    bad = ~np.isfinite(x).all(axis=1)
    frac = float(bad.mean()) if len(x) else 1.0
    if not bad.any() or bad.all():
        return x, frac
    idx = np.arange(len(x))
    good = np.flatnonzero(~bad)
    j = np.clip(np.searchsorted(good, idx[bad]), 1, len(good) - 1)
    lo, hi = good[j - 1], good[j]
    w = np.clip((idx[bad] - lo) / np.maximum(hi - lo, 1), 0, 1)[:, None]
    out = x.copy()
    out[bad] = x[lo] * (1 - w) + x[hi] * w
    return out, frac


@lru_cache(maxsize=16)
def _hann(n: int) -> np.ndarray:
    return np.hanning(n).astype(np.float32)[:, None]


@lru_cache(maxsize=16)
def _detrend_basis(n: int) -> tuple[np.ndarray, float]:
    t = np.arange(n, dtype=np.float32)
    tc = t - t.mean()
    return tc, float(tc @ tc) or 1.0


def detrend(x: np.ndarray) -> np.ndarray:
    """Remove each column's mean and straight line (float32, one pass)."""
    tc, den = _detrend_basis(len(x))
    xc = x - x.mean(axis=0)
    return xc - np.outer(tc, (tc @ xc) / den)


def power_spectra(
    x: np.ndarray, rate_hz: float, nfft: int, detrended: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed, linearly detrended power spectra of the columns of ``x`` [T, C]."""
    xd = x if detrended else detrend(np.asarray(x, np.float32))
    z = np.fft.rfft(xd * _hann(len(x)), n=nfft, axis=0)
    return np.fft.rfftfreq(nfft, 1.0 / rate_hz), z.real**2 + z.imag**2


def _parabolic(y: np.ndarray, i: int) -> float:
    """Sub-bin offset of a peak at ``i`` from a parabola through log powers."""
    if i <= 0 or i >= len(y) - 1:
        return 0.0
    a, b, c = np.log(np.maximum(y[i - 1 : i + 2], 1e-30))
    d = a - 2 * b + c
    # a vertex more than half a bin away means i is not the top of a peak: no extrapolation
    return float(np.clip(0.5 * (a - c) / d, -0.5, 0.5)) if d < 0 else 0.0


def rank_channels(
    x: np.ndarray, rate_hz: float, band_hz: tuple[float, float], noise_hz: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel band SNR of detrended ``x`` [T, C] (un-padded FFT) and the noise levels."""
    nfft = 1 << int(np.ceil(np.log2(max(len(x), 8))))
    f, spec = power_spectra(x, rate_hz, nfft, detrended=True)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    noise = (f >= noise_hz[0]) & (f <= noise_hz[1])
    if not band.any() or not noise.any():
        return np.zeros(x.shape[1]), np.ones(x.shape[1])
    lvl = np.maximum(np.median(spec[noise], axis=0), 1e-20)
    return spec[band].max(axis=0) / lvl, lvl


@lru_cache(maxsize=32)
def _dct_basis(n: int, m: int) -> np.ndarray:
    """The first ``m`` orthonormal DCT-II vectors of length ``n``, [n, m] float32."""
    k = np.arange(m)[None, :]
    t = np.arange(n)[:, None]
    b = np.cos(np.pi * k * (2 * t + 1) / (2 * n))
    return (b / np.linalg.norm(b, axis=0)).astype(np.float32)


def drop_low_dct(x: np.ndarray, rate_hz: float, cutoff_hz: float) -> np.ndarray:
    """A cheap, coarse high-pass for every channel: project out the DCT-II components below
    ``cutoff_hz`` (component k sits at k * rate / 2n Hz). Good enough to rank channels; the
    chosen few get :func:`highpass`."""
    n = len(x)
    m = int(np.ceil(2 * n * cutoff_hz / rate_hz))
    if n < 16 or m < 1:
        return x
    b = _dct_basis(n, min(m, n))
    x = np.asarray(x, np.float32)
    return x - b @ (b.T @ x)


def highpass(x: np.ndarray, rate_hz: float, cutoff_hz: float) -> np.ndarray:
    """Zero-phase 2nd-order Butterworth high-pass along time: slow drift just below a band
    would otherwise leak through the window's sidelobes and pose as a rate inside it.
    (:mod:`csi_edge.dsp.iir`: scipy.signal's result without importing scipy.signal.)"""
    if len(x) < 16:
        return x
    pad = min(len(x) - 1, 3 * int(rate_hz / cutoff_hz))
    b, a = butter2_highpass(rate_hz, cutoff_hz)
    return filtfilt(b, a, x, padlen=pad).astype(np.float32)


def estimate_rate(
    x: np.ndarray,
    rate_hz: float,
    band_bpm: tuple[float, float],
    noise_hz: tuple[float, float],
    n_channels: int = 8,
    nfft: int = 2048,
    snr_lo: float = 6.0,
    snr_hi: float = 60.0,
    channels: np.ndarray | None = None,
    detrended: bool = False,
    highpass_hz: float | None = None,
) -> RateResult:
    """Strongest periodicity of ``x`` [T, C] in ``band_bpm``; None when nothing stands out.

    ``snr_lo``/``snr_hi``: combined SNR mapped to confidence 0/1 (log scale), then scaled by the
    peak's prominence over the rest of the band. ``highpass_hz``: remove drift below this first.
    """
    empty = np.zeros(0, int)
    if len(x) < 8:
        return RateResult(None, 0.0, 0.0, empty, reason="too-short")
    x = x if detrended else detrend(np.asarray(x, np.float32))
    band_hz = (band_bpm[0] / 60.0, band_bpm[1] / 60.0)
    if channels is None:
        ranked = drop_low_dct(x, rate_hz, highpass_hz) if highpass_hz else x
        snr, _ = rank_channels(ranked, rate_hz, band_hz, noise_hz)
        channels = np.argsort(-snr, kind="stable")[:n_channels]
    xs = x[:, channels]
    if highpass_hz:  # the full filter only on the few channels that are used
        xs = highpass(xs, rate_hz, highpass_hz)
    nfft = max(nfft, 1 << int(np.ceil(np.log2(len(x)))))
    f, spec = power_spectra(xs, rate_hz, nfft, detrended=True)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    noise = (f >= noise_hz[0]) & (f <= noise_hz[1])
    if not band.any() or not noise.any():
        return RateResult(None, 0.0, 0.0, empty, reason="band-outside-grid")
    comb = (spec / np.maximum(np.median(spec[noise], axis=0), 1e-20)).mean(axis=1)
    return peak_of(comb, f, band, noise, rate_hz, len(x), channels, snr_lo, snr_hi)


def peak_of(
    comb: np.ndarray,
    f: np.ndarray,
    band: np.ndarray,
    noise: np.ndarray,
    rate_hz: float,
    n: int,
    channels: np.ndarray,
    snr_lo: float = 6.0,
    snr_hi: float = 60.0,
    exclude_hz: np.ndarray | None = None,
) -> RateResult:
    """Pick and score the peak of a combined, noise-normalized spectrum ``comb``.

    ``exclude_hz``: frequencies (e.g. breathing harmonics) within one resolution cell of which
    no peak may be picked; if the strongest peak sits there the result says so.
    """
    cell = rate_hz / n  # one resolution cell of an n-sample window (Hann main lobe = 2 cells)
    allowed = band.copy()
    if exclude_hz is not None and len(exclude_hz):
        near = (np.abs(f[:, None] - np.asarray(exclude_hz)[None]) <= 1.0 * cell).any(axis=1)
        allowed &= ~near
    # Candidates are local maxima of the whole spectrum: the band's highest bin can be its edge
    # with the spectrum still rising outside (drift below the breathing band), which is no peak.
    top = np.zeros(len(comb), bool)
    top[1:-1] = (comb[1:-1] >= comb[:-2]) & (comb[1:-1] >= comb[2:])
    cb = np.where(band & top, comb, 0.0)
    i_all = int(np.argmax(cb))
    ca = np.where(allowed & top, comb, 0.0)
    i = int(np.argmax(ca))
    if ca[i] <= 0.0:
        return RateResult(None, 0.0, 0.0, channels, 0.0, "no-peak")
    peak = float(comb[i])
    noise_comb = float(np.median(comb[noise]))
    snr_c = peak / max(noise_comb, 1e-20)
    fpk = (i + _parabolic(comb, i)) * (f[1] - f[0])
    # Prominence: the peak against the best competitor more than one main lobe away.
    far = band & (np.abs(f - f[i]) > 2.0 * cell)
    rival = float(comb[far].max()) if far.any() else 0.0
    prom = 1.0 - rival / peak if peak > 0 else 0.0
    c_snr = np.clip(np.log(max(snr_c, 1e-9) / snr_lo) / np.log(snr_hi / snr_lo), 0.0, 1.0)
    conf = float(c_snr * np.clip(prom * 2.0, 0.0, 1.0))
    reason = ""
    if i != i_all and comb[i_all] > 1.5 * peak:
        reason = "breathing-harmonic"
        conf = 0.0
    return RateResult(float(fpk * 60.0), conf, snr_c, channels, prom, reason)


def harmonic_basis(n: int, rate_hz: float, f0_hz: float, f_max_hz: float) -> np.ndarray | None:
    """Orthonormal basis [n, k] of a periodic signal at ``f0`` (all harmonics below ``f_max``)
    plus a constant and a line; None when no harmonic fits."""
    h = int(f_max_hz // f0_hz) if f0_hz > 0 else 0
    if h < 1:
        return None
    t = np.arange(n) / rate_hz
    arg = 2 * np.pi * f0_hz * np.outer(t, np.arange(1, h + 1))
    design = np.concatenate([np.cos(arg), np.sin(arg), np.ones((n, 1)), t[:, None]], axis=1)
    q, _ = np.linalg.qr(design)
    return q.astype(np.float32)


def remove_harmonics(x: np.ndarray, rate_hz: float, f0_hz: float, f_max_hz: float) -> np.ndarray:
    """Subtract the least-squares fit of a periodic signal at ``f0`` (all harmonics below
    ``f_max``) from every column: breathing harmonics otherwise swamp the heart band."""
    q = harmonic_basis(len(x), rate_hz, f0_hz, f_max_hz)
    if q is None:
        return x
    return x - q @ (q.T @ x)


def stable_rhythm(
    x: np.ndarray,
    rate_hz: float,
    res: RateResult,
    band_bpm: tuple[float, float],
    noise_hz: tuple[float, float],
    min_prominence: float = 0.3,
    tol_bpm: float = 3.0,
    highpass_hz: float | None = None,
    min_cycles: float = 3.0,
) -> bool:
    """Does the window hold ONE stable periodic component at ``res.bpm``?

    Why: real empty rooms drift (1/f-like, no noise above it at int8 resolution) and a body that
    sways without rhythm moves the breathing band too; both give a strong band SNR but no
    rhythm. A rhythm stands out from the rest of the band (prominence) and each half of the
    window, independent data, puts its own peak at the same rate (within ``tol_bpm`` or one
    resolution cell of the half).
    """
    if res.bpm is None or res.reason or res.prominence < min_prominence or len(x) < 16:
        return False
    if res.bpm / 60.0 * len(x) / rate_hz < min_cycles:  # one slow swing is no rhythm
        return False
    band_hz = (band_bpm[0] / 60.0, band_bpm[1] / 60.0)
    xs = x[:, res.channels]
    if highpass_hz:
        xs = highpass(xs, rate_hz, highpass_hz)
    half = len(xs) // 2
    tol = max(tol_bpm, 60.0 * rate_hz / half)
    for part in (xs[:half], xs[half:]):
        f, sp = power_spectra(detrend(part), rate_hz, 2048, detrended=True)
        band = (f >= band_hz[0]) & (f <= band_hz[1])
        noise = (f >= noise_hz[0]) & (f <= noise_hz[1])
        comb = (sp / np.maximum(np.median(sp[noise], axis=0), 1e-20)).mean(axis=1)
        rp = peak_of(comb, f, band, noise, rate_hz, half, res.channels)
        if rp.bpm is None or abs(rp.bpm - res.bpm) > tol:
            return False
    return True


def steady_power(x: np.ndarray, rate_hz: float, seg_s: float = 4.0, k: float = 3.0) -> bool:
    """Is the band signal ``x`` [T, C] as strong at the end of the window as through it?

    Why: when someone starts swaying or fidgeting, the breathing window still holds mostly the
    still data before it, so its rhythm passes :func:`stable_rhythm` for seconds while the
    body already moves (simulated sway is several times breathing's displacement). The last
    ``seg_s`` of the window holding more than ``k`` times the median power of its ``seg_s``
    segments means the newest data is something else: no rate until the window is steady.
    """
    n = int(round(seg_s * rate_hz))
    xs = np.asarray(x)
    if n < 4 or len(xs) < 3 * n:
        return True
    m = len(xs) // n
    segs = xs[len(xs) - m * n :].reshape(m, n, -1)
    segs = segs - segs.mean(axis=1, keepdims=True)
    p = (segs * segs).mean(axis=(1, 2))
    return bool(p[-1] <= k * float(np.median(p)))
