"""Self-normalising motion statistic: how much of a window's change is slower than frame noise.

Why this and not a threshold on the size of the change: a node's noise level (thermal noise,
int8 rounding of small CSI values, AGC behaviour) differs by chip, firmware and room, so any
detector that compares change against a learned "quiet level" reads motion while it is still
learning, and mis-learns when someone moves during that time. Measured on real ESP32 captures
(scripts/bench_real_motion.py), frame-to-frame noise of the per-frame-normalised log-amplitude is
white: uncorrelated from one frame to the next, at 10 Hz as at 100 Hz. Motion is not: a body or a
hand moves the channel smoothly over many frames. So per window and subcarrier compare

- ``var``: the variance left after a low-degree polynomial in time (degree chosen so breathing
  and drift, below ``slow_hz``, are absorbed by it: 2 for a 1-s window, 3 for 2 s), with
- ``mssd / 2``: half the mean squared successive difference (von Neumann), which for white noise
  estimates the same variance and barely grows with slow motion.

The ratio ``R = sum(var) / sum(mssd / 2)`` over 52 subcarriers is ~1.0 for noise whatever its
level (empty rooms 0.9-1.2 on ESP32, ESP32-S3, simulator 10-45 dB), and grows with motion
(2-10 for walking, standing up, a waving hand near the link). No warm-up, no calibration, the
same default everywhere; AGC gain steps cancel because each frame's mean log-amplitude is
removed first.

What the ratio cannot see: motion so fast that the channel decorrelates from one frame to the
next (a limb moving several wavelengths per frame interval) raises var and mssd alike. For that
the node's change level (mssd) is compared with its own quiet level, learned from its windows
of the last minute (a low percentile, so a minority of motion does not raise it): available
after a few seconds, never needed for the ratio test. Hand-written: this is a few lines of least squares, no library does it.

A node that starts while someone already walks has no quiet level to learn: its first minute
IS the walking. And walking is exactly such fast motion: at 10-20 Hz its Doppler (body and legs
change path lengths by 1-3 m/s, 10-25 Hz at 2.4 GHz) aliases into white-looking change, so R
stays ~1. Measured on real ESP32-S2 walk / stand-up / turn sequences decimated from 50 to 10
Hz, R > 2 in only 8 % of movement seconds (scripts/bench_real_motion.py --max-rate). What still
tells that change from noise is its shape across FREQUENCY, not time: a moving body shifts
neighbouring subcarriers together, noise does not. :func:`change_coherence` measures that,
with no history and no calibration.
"""

from __future__ import annotations

import numpy as np


def bands(x: np.ndarray, width: int) -> np.ndarray:
    """[k, C] -> [k, C // width]: means of ``width`` adjacent subcarriers. Why: a moving body
    changes neighbouring subcarriers together (the channel is smooth in frequency) while their
    noise is independent, so each band mean keeps the motion and cuts the noise power by about
    ``width``. Fixed bands, not chosen from the data, so noise still gives a ratio near 1."""
    if width <= 1 or x.shape[1] < 2 * width:
        return x
    n = x.shape[1] // width
    return x[:, : n * width].reshape(len(x), n, width).mean(axis=2)


def change_ratio(
    t: np.ndarray, x: np.ndarray, min_frames: int = 8, slow_hz: float = 0.67, trim: int = 0
) -> tuple[float, float]:
    """(R, level) for one window: sorted times [k] and features [k, C] (per-frame-normalised
    log-amplitude). ``level`` is half the mean squared successive difference per subcarrier
    (the frame-to-frame change power: noise when still, more when something moves faster than
    the frames can follow), without the ``trim`` largest frame-to-frame changes: one corrupted
    frame makes exactly two huge differences, and on real ESP32 captures such single-frame
    glitches in still links raised the level 10-fold (scripts/bench_real_motion.py); motion
    raises every difference, so dropping two barely changes it. NaN for both when the window
    holds fewer than ``min_frames``."""
    n = len(t)
    span = float(t[-1] - t[0]) if n > 1 else 0.0
    # Polynomial degree enough to absorb everything up to slow_hz in this span (a polynomial
    # of degree d follows about d/2 cycles): breathing up to 40 BPM is not motion. 2 for 1 s,
    # 3 for 2 s. A strong breathing component left in the residual reads as motion otherwise.
    deg = max(2, int(np.ceil(2.0 * span * slow_hz)))
    if n < max(min_frames, deg + 4):
        return float("nan"), float("nan")
    x = np.asarray(x, np.float64)
    tau = 2.0 * (t - t[0]) / (span or 1.0) - 1.0
    basis = np.polynomial.legendre.legvander(tau, deg)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    res = x - basis @ coef
    var = float((res * res).sum()) / (n - deg - 1)
    d = np.diff(x, axis=0)
    e = (d * d).sum(axis=1)  # change power from each frame to the next
    half_mssd = float(e.sum()) / (2.0 * (n - 1))
    if half_mssd <= 0.0:
        return float("nan"), float("nan")
    k = min(max(trim, 0), n - 2)
    kept = np.partition(e, n - 1 - k)[: n - 1 - k] if k else e
    return var / half_mssd, float(kept.mean()) / (2.0 * x.shape[1])


def change_coherence(
    t: np.ndarray,
    x: np.ndarray,
    width: int = 4,
    slow_hz: float = 0.67,
    trim: int = 2,
    lag_s: float = 0.1,
) -> float:
    """Q for one window (sorted times [k], per-frame-normalised log-amplitude [k, C], not yet
    banded): ``width`` x the power of the change over ``lag_s`` averaged over bands of
    ``width`` adjacent subcarriers, over its power per subcarrier.

    Why: change that is independent across subcarriers (noise) loses a factor
    ``width`` in the band mean, so Q ~ 1; change shared by neighbouring subcarriers (a body
    moving, however fast) keeps it, Q -> ``width``. With coherent power S and independent N
    per subcarrier, Q = width (S + N/width) / (S + N): Q = 2.5 for width 4 is S = N, change
    shared by the subcarriers as strong as the noise floor, a level test against the noise
    measured in the same window. The window's slow part (the polynomial of
    :func:`change_ratio`: breathing, drift) is removed first and the ``trim`` largest
    changes are left out (one glitched frame shifts every subcarrier and makes two).

    The change is taken over ``lag_s`` (the nearest whole number of frames, at least one):
    over a fixed time, not a fixed number of frames, a moving body changes the channel by the
    same amount at 10 Hz as at 100 Hz while the noise of a difference stays the same, so Q does
    not fall as the rate rises (simulated walk at 25 dB and 100 Hz: median Q 1.9 between
    successive frames, 3.2 over 0.1 s). NaN when the window is too short or flat."""
    n = len(t)
    if n < 8 or x.shape[1] < 2 * width:
        return float("nan")
    span = float(t[-1] - t[0])
    deg = max(2, int(np.ceil(2.0 * span * slow_hz)))
    if n < deg + 4:
        return float("nan")
    x = np.asarray(x, np.float64)
    tau = 2.0 * (t - t[0]) / (span or 1.0) - 1.0
    q, _ = np.linalg.qr(np.polynomial.legendre.legvander(tau, deg))
    res = x - q @ (q.T @ x)  # least-squares residual; QR of a [k, deg + 1] basis is cheap
    lag = max(1, int(round(lag_s * (n - 1) / span))) if span > 0 else 1
    if n - lag < 4:
        return float("nan")
    d = res[lag:] - res[:-lag]
    e = (d * d).sum(axis=1)
    k = min(max(trim, 0), len(d) - 3)
    if k:
        d = d[np.argsort(e, kind="stable")[: len(e) - k]]
    total = float((d * d).mean())
    if total <= 0.0:
        return float("nan")
    b = bands(d, width)
    return width * float((b * b).mean()) / total
