"""Zero-phase Butterworth high-pass without scipy: the vitals estimator's one IIR filter.

Why not ``scipy.signal``: importing it (for ``butter`` and ``sosfiltfilt`` alone) pulls in
scipy.sparse, .linalg, .special, .optimize and .interpolate, ~660 modules and ~75 MB of RSS in
the estimator process, a third of the gateway's memory on a Raspberry Pi. One biquad needs
none of that.

How: a 2nd-order Butterworth high-pass is one biquad (bilinear transform, pre-warped, as
``scipy.signal.butter(2, fc, "highpass", fs=fs, output="sos")``). Filtering a finite signal
from a zero state is exactly its convolution with the first N samples of the impulse response
(cached per filter), done by FFT. ``sosfiltfilt``'s start state (the step response's steady
state times the first sample) adds, by linearity, the first sample times the DC gain to the
zero-state response of the signal minus its first sample. With odd extension at both ends,
forward then backward, this is ``scipy.signal.sosfiltfilt(sos, x, axis=0, padlen=pad)`` to
float64 rounding (``tests/test_dsp_iir.py`` compares them).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def butter2_highpass(
    rate_hz: float, cutoff_hz: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(b, a) of the 2nd-order Butterworth high-pass at ``cutoff_hz`` for ``rate_hz`` samples/s."""
    k = math.tan(math.pi * cutoff_hz / rate_hz)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * k + k * k)
    b = (norm, -2.0 * norm, norm)
    a = (1.0, 2.0 * (k * k - 1.0) * norm, (1.0 - math.sqrt(2.0) * k + k * k) * norm)
    return b, a


@lru_cache(maxsize=8)
def _impulse(b: tuple[float, ...], a: tuple[float, ...], n: int) -> np.ndarray:
    """The biquad's first ``n`` impulse-response samples (n a power of two: few cache keys)."""
    h = [0.0] * n
    y1 = y2 = 0.0
    for i in range(n):
        x = b[i] if i < 3 else 0.0
        y = x - a[1] * y1 - a[2] * y2
        h[i], y2, y1 = y, y1, y
    return np.asarray(h)


def _lfilter_steady(b: tuple, a: tuple, x: np.ndarray) -> np.ndarray:
    """``sosfilt(sos, x, zi=sosfilt_zi(sos) * x[0])`` along axis 0 of float64 ``x`` [N, C]."""
    n = len(x)
    size = 1 << max(n - 1, 1).bit_length()
    h = _impulse(b, a, size)
    nfft = 2 * size
    u = x - x[0]
    y = np.fft.irfft(np.fft.rfft(u, nfft, axis=0) * np.fft.rfft(h, nfft)[:, None], nfft, axis=0)
    return y[:n] + x[0] * (sum(b) / sum(a))


def filtfilt(b: tuple, a: tuple, x: np.ndarray, padlen: int) -> np.ndarray:
    """Forward-backward filtering of ``x`` [N, C] (or [N]) along axis 0 with odd extension of
    ``padlen`` samples at each end, as ``scipy.signal.sosfiltfilt(..., axis=0, padlen=padlen)``."""
    x = np.asarray(x, np.float64)
    flat = x.ndim == 1
    if flat:
        x = x[:, None]
    if padlen >= len(x):
        raise ValueError(f"padlen {padlen} must be smaller than the signal length {len(x)}")
    if padlen > 0:
        left = 2.0 * x[0] - x[padlen:0:-1]
        right = 2.0 * x[-1] - x[-2 : -padlen - 2 : -1]
        x = np.concatenate([left, x, right])
    y = _lfilter_steady(b, a, x)
    y = _lfilter_steady(b, a, y[::-1])[::-1]
    if padlen > 0:
        y = y[padlen:-padlen]
    return y[:, 0] if flat else y
