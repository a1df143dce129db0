"""Hampel outlier filter over time.

A sample further than ``n_sigma`` scaled MADs from the median of its centred window is replaced
by that median. Written with ``sliding_window_view`` because scipy has no Hampel filter and
``scipy.ndimage.median_filter`` alone cannot give the MAD.
"""

from __future__ import annotations

import numpy as np

_MAD_SCALE = 1.4826  # MAD -> standard deviation for Gaussian data


def hampel(
    x: np.ndarray, half_window: int = 3, n_sigma: float = 3.0, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``x`` along ``axis``; return ``(filtered, outlier_mask)``.

    Edges use a window clipped by reflection padding. NaNs are left alone (and never flagged).
    """
    x = np.asarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    n = x.shape[axis]
    if n == 0 or half_window < 1:
        return x.copy(), np.zeros(x.shape, bool)
    xm = np.moveaxis(x, axis, 0)
    pad = min(half_window, n - 1)
    if pad == 0:
        return x.copy(), np.zeros(x.shape, bool)
    padded = np.pad(xm, [(pad, pad)] + [(0, 0)] * (xm.ndim - 1), mode="reflect")
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * pad + 1, axis=0)
    median = np.nanmedian if np.isnan(xm).any() else np.median  # nanmedian is ~5x slower
    med = median(win, axis=-1)
    mad = _MAD_SCALE * median(np.abs(win - med[..., None]), axis=-1)
    with np.errstate(invalid="ignore"):
        mask = np.abs(xm - med) > n_sigma * mad
    mask &= mad > 0
    out = np.where(mask, med, xm)
    return np.moveaxis(out, 0, axis).astype(x.dtype, copy=False), np.moveaxis(mask, 0, axis)
