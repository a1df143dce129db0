"""Rate-independent motion statistic from raw frames (before any time binning).

The estimator feeds it the common-mode log-amplitude of each frame (the mean over subcarriers of
log|CSI|): averaging 52 subcarriers divides the noise by ~7 while a moving body, whose
reflections change the whole band at once, stays; gain steps of the AGC are undone first.

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


def chi2_median_ratio(k: np.ndarray) -> np.ndarray:
    """median(chi2_k) / k (Wilson-Hilferty), to unbias a median of variance estimates."""
    k = np.maximum(np.asarray(k, np.float64), 1.0)
    return (1.0 - 2.0 / (9.0 * k)) ** 3


def remove_steps(
    b: np.ndarray, x: np.ndarray, min_step: float, max_left: float = 0.3
) -> np.ndarray:
    """Per block (ids ``b``), undo the most significant level shift of the single series ``x``
    when it exceeds ``min_step``. An AGC gain step moves every subcarrier's log-amplitude at
    once and then holds; motion keeps moving, so its statistic survives this."""
    x = x.astype(np.float64, copy=True)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], len(x)]
    for a, e in zip(starts, ends, strict=True):
        n = e - a
        if n < 4:
            continue
        seg = x[a:e]
        k = np.arange(1, n)
        c = np.cumsum(seg)[:-1]
        d = (seg.sum() - c) / (n - k) - c / k  # mean after split minus mean before
        j = int(np.argmax(np.abs(d) * np.sqrt(k * (n - k) / n)))
        if abs(d[j]) <= min_step:
            continue
        fixed = seg.copy()
        fixed[j + 1 :] -= d[j]
        # Only a clean step: it must explain most of the block's variance (a waving arm's
        # swing also looks like a level shift within half a second, but not a clean one).
        if fixed.var() < max_left * seg.var():
            x[a:e] = fixed
    return x


def block_stats(
    t: np.ndarray,
    x: np.ndarray,
    block_s: float,
    min_frames: int = 4,
    step_removal: bool = False,
    min_step: float = 0.04,
    order: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames (sorted times [k], features [k, C]) -> (block end times, statistic, block ids,
    degrees of freedom).

    Per block and column, the residual after a polynomial of ``order`` in time (2: breathing's
    curvature within half a second is removed too, so a deep, fast breath is not motion).
    Every block present in ``t`` is returned (the caller keeps the last, still open block's
    frames for the next call); blocks with fewer than ``min_frames`` frames get NaN.
    ``step_removal`` (single-column ``x`` only): undo one gain step per block first.
    """
    if len(t) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0)
    b = np.floor(t / block_s).astype(np.int64)
    if step_removal and x.shape[1] == 1:
        x = remove_steps(b, x[:, 0], min_step)[:, None]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    n = np.diff(np.r_[starts, len(t)]).astype(np.float64)
    # Time within the block, scaled to [-1, 1): keeps the normal equations well conditioned.
    tau = 2.0 * (t - b * block_s) / block_s - 1.0
    x = x.astype(np.float64, copy=False)
    p = order + 1
    powers = tau[:, None] ** np.arange(2 * p - 1)  # [k, 2p-1]
    s_pow = np.add.reduceat(powers, starts, axis=0)  # [B, 2p-1]
    gram = s_pow[:, np.arange(p)[:, None] + np.arange(p)[None]]  # [B, p, p]
    rhs = np.stack([np.add.reduceat(powers[:, k, None] * x, starts, axis=0) for k in range(p)], 1)
    sxx = np.add.reduceat(x * x, starts, axis=0)  # [B, C]
    gram = gram + 1e-9 * np.eye(p)  # blocks with fewer frames than terms: stay solvable
    coef = np.linalg.solve(gram, rhs)  # [B, p, C]
    fit_ss = np.einsum("bpc,bpc->bc", coef, rhs)
    dof = n - p
    var = np.maximum(sxx - fit_ss, 0.0) / np.maximum(dof, 1.0)[:, None]
    stat = np.sqrt(np.median(var, axis=1) / chi2_median_ratio(dof))
    stat[n < max(min_frames, p + 1)] = np.nan
    return (b[starts] + 1) * block_s, stat, b[starts], dof
