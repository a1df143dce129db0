"""Rate estimation on a uniform grid: band SNR per channel, combined spectrum, refined peak.

Why this way: ESP32 CSI gives ~100 noisy channels (52 amplitudes + 52 sanitized phases); only
some of them see the chest. Each channel's band SNR (peak power in the band over the median power
in a band above every vital sign, where only noise lives) picks the best few; their
noise-normalized power spectra are summed, and the peak is refined by parabolic interpolation on a
zero-padded FFT. Confidence comes from the combined SNR and the peak's prominence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RateResult:
    bpm: float | None
    conf: float
    snr: float  # combined peak SNR (linear)
    channels: np.ndarray  # the channels used


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


def power_spectra(x: np.ndarray, rate_hz: float, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed, linearly detrended power spectra of the columns of ``x`` [T, C]."""
    t = np.arange(len(x), dtype=np.float64)
    tc = t - t.mean()
    xc = x - x.mean(axis=0)
    slope = (tc @ xc) / max(float(tc @ tc), 1e-12)
    xd = xc - np.outer(tc, slope)
    spec = np.abs(np.fft.rfft(xd * np.hanning(len(x))[:, None], n=nfft, axis=0)) ** 2
    return np.fft.rfftfreq(nfft, 1.0 / rate_hz), spec


def _parabolic(y: np.ndarray, i: int) -> float:
    """Sub-bin offset of a peak at ``i`` from a parabola through log powers."""
    if i <= 0 or i >= len(y) - 1:
        return 0.0
    a, b, c = np.log(np.maximum(y[i - 1 : i + 2], 1e-30))
    d = a - 2 * b + c
    return float(0.5 * (a - c) / d) if d < 0 else 0.0


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
    harmonics: int = 1,
) -> RateResult:
    """Strongest periodicity of ``x`` [T, C] in ``band_bpm``; None when nothing stands out.

    ``snr_lo``/``snr_hi``: combined SNR mapped to confidence 0/1 (log scale), then scaled by the
    peak's prominence over the rest of the band.
    """
    if len(x) < 8:
        return RateResult(None, 0.0, 0.0, np.zeros(0, int))
    nfft = max(nfft, 1 << int(np.ceil(np.log2(len(x)))))
    f, spec = power_spectra(x, rate_hz, nfft)
    band = (f >= band_bpm[0] / 60) & (f <= band_bpm[1] / 60)
    noise = (f >= noise_hz[0]) & (f <= noise_hz[1])
    if not band.any() or not noise.any():
        return RateResult(None, 0.0, 0.0, np.zeros(0, int))
    noise_lvl = np.maximum(np.median(spec[noise], axis=0), 1e-20)
    norm = spec / noise_lvl
    if channels is None:
        snr = norm[band].max(axis=0)
        channels = np.argsort(-snr, kind="stable")[:n_channels]
    comb = norm[:, channels].mean(axis=1)
    if harmonics > 1:
        # Harmonic sum (pitch detection): a pulse train has power at f, 2f, 3f...; harmonics past
        # the usable band count as plain noise (1.0 after normalization) so no rate is favoured.
        base = comb.copy()
        usable = f < noise_hz[0]
        for k in range(2, harmonics + 1):
            j = np.arange(len(f)) * k
            ok = j < len(f)
            add = np.ones(len(f))
            add[ok] = np.where(usable[j[ok]], base[j[ok]], 1.0)
            comb = comb + add
        comb = comb / harmonics
    cb = np.where(band, comb, 0.0)
    i = int(np.argmax(cb))
    peak = float(comb[i])
    noise_comb = float(np.median(comb[noise]))
    snr_c = peak / max(noise_comb, 1e-20)
    fpk = (i + _parabolic(comb, i)) * (f[1] - f[0])
    # Prominence: the peak against the best competitor more than one resolution cell away.
    cell = 2.0 * rate_hz / len(x)
    far = band & (np.abs(f - f[i]) > cell)
    rival = float(comb[far].max()) if far.any() else 0.0
    prom = 1.0 - rival / peak if peak > 0 else 0.0
    c_snr = np.clip(np.log(max(snr_c, 1e-9) / snr_lo) / np.log(snr_hi / snr_lo), 0.0, 1.0)
    conf = float(c_snr * np.clip(prom * 2.0, 0.0, 1.0))
    return RateResult(float(fpk * 60.0), conf, snr_c, channels)


def remove_harmonics(x: np.ndarray, rate_hz: float, f0_hz: float, f_max_hz: float) -> np.ndarray:
    """Subtract the least-squares fit of a periodic signal at ``f0`` (all harmonics below
    ``f_max``) from every column: breathing harmonics otherwise swamp the heart band."""
    n = int(f_max_hz // f0_hz) if f0_hz > 0 else 0
    if n < 1:
        return x
    t = np.arange(len(x)) / rate_hz
    arg = 2 * np.pi * f0_hz * np.outer(t, np.arange(1, n + 1))
    design = np.concatenate([np.cos(arg), np.sin(arg), np.ones((len(t), 1)), t[:, None]], axis=1)
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ coef
