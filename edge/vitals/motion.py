"""Rate-independent motion statistic from raw frames (before any time binning).

Why not on the 8 Hz grid: binning averages the frames of a cell, and a moving limb rotates its
reflection's phasor by many radians within one cell, so the average cancels exactly the motion
one wants to see. Here frames are cut into fixed time blocks (``block_s``, aligned to the
receive clock); per block and channel the residual after a straight line in time is taken
(breathing and drift are nearly linear within half a second, noise and motion are not), and its
variance is divided by its degrees of freedom. The statistic of a block is the square root of
the median over channels of that variance, corrected for the median of a chi-square with that
many degrees of freedom, so it estimates the same per-frame noise level at 10 Hz as at 100 Hz.
"""

from __future__ import annotations

import numpy as np


def _chi2_median_ratio(k: np.ndarray) -> np.ndarray:
    """median(chi2_k) / k (Wilson-Hilferty), to unbias a median of variance estimates."""
    k = np.maximum(np.asarray(k, np.float64), 1.0)
    return (1.0 - 2.0 / (9.0 * k)) ** 3


def block_stats(
    t: np.ndarray, x: np.ndarray, block_s: float, min_frames: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (sorted times [k], features [k, C]) -> (block end times, statistic, block ids).

    Every block present in ``t`` is returned (the caller keeps the last, still open block's
    frames for the next call); blocks with fewer than ``min_frames`` frames get NaN.
    """
    if len(t) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    b = np.floor(t / block_s).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    n = np.diff(np.r_[starts, len(t)]).astype(np.float64)
    tau = t - b * block_s  # time within the block: keeps the sums well conditioned
    x = x.astype(np.float64, copy=False)
    st = np.add.reduceat(tau, starts)
    stt = np.add.reduceat(tau * tau, starts)
    sx = np.add.reduceat(x, starts, axis=0)
    sxx = np.add.reduceat(x * x, starts, axis=0)
    stx = np.add.reduceat(tau[:, None] * x, starts, axis=0)
    stt_c = stt - st * st / n
    stx_c = stx - (st / n)[:, None] * sx
    sxx_c = sxx - sx * sx / n[:, None]
    slope_ss = np.where(stt_c[:, None] > 1e-12, stx_c**2 / np.maximum(stt_c, 1e-12)[:, None], 0.0)
    dof = n - 2.0
    var = np.maximum(sxx_c - slope_ss, 0.0) / np.maximum(dof, 1.0)[:, None]
    stat = np.sqrt(np.median(var, axis=1) / _chi2_median_ratio(dof))
    stat[n < min_frames] = np.nan
    return (b[starts] + 1) * block_s, stat, b[starts]
