"""Irregular receive times -> a uniform time grid.

Nodes deliver 10-100 Hz with jitter, bursts (several frames with nearly the same receive time),
loss and gaps; the gateway's receive clock is the only time base. Both functions here do the
same two steps, so a batch run and a streaming run give the same grid:

1. **bin**: frames falling in the same grid cell (width 1/rate, centred on the grid time) are
   averaged, keeping their mean receive time. At high input rates this is the anti-alias
   low-pass; at low rates a cell holds one frame and nothing changes.
2. **interpolate** linearly from those (mean time, mean value) points to the grid times.
   Grid times inside a gap longer than ``max_gap_s`` are NaN (``valid`` False), never invented.

No stage assumes an input rate: only ``rate_hz`` of the OUTPUT grid is chosen.
"""

from __future__ import annotations

import numpy as np


def _interp_rows(
    tp: np.ndarray, xp: np.ndarray, tg: np.ndarray, max_gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of rows ``xp`` [m, F] at times ``tg``, NaN inside long gaps."""
    m = len(tp)
    if m == 0:
        return np.full((len(tg), xp.shape[1]), np.nan, np.float32), np.zeros(len(tg), bool)
    if m == 1:
        ok = np.abs(tg - tp[0]) <= max_gap_s / 2
        out = np.repeat(xp[:1], len(tg), axis=0).astype(np.float32)
        out[~ok] = np.nan
        return out, ok
    j = np.clip(np.searchsorted(tp, tg), 1, m - 1)
    t0, t1 = tp[j - 1], tp[j]
    span = t1 - t0
    w = np.clip((tg - t0) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    out = (xp[j - 1] * (1.0 - w)[:, None] + xp[j] * w[:, None]).astype(np.float32)
    inside = (tg >= t0) & (tg <= t1)
    ok = np.where(
        inside, span <= max_gap_s, np.minimum(np.abs(tg - t0), np.abs(tg - t1)) <= max_gap_s / 2
    )
    out[~ok] = np.nan
    return out, ok


def _bin_means(t: np.ndarray, x: np.ndarray, rate_hz: float) -> tuple[np.ndarray, ...]:
    """Sorted t -> (bin ids, mean time per bin, mean row per bin, frames per bin)."""
    b = np.floor(t * rate_hz + 0.5).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    counts = np.diff(np.r_[starts, len(b)])
    mt = np.add.reduceat(t, starts) / counts
    mx = np.add.reduceat(x.astype(np.float64), starts, axis=0) / counts[:, None]
    return b[starts], mt, mx, counts


def uniform_grid(
    t: np.ndarray,
    x: np.ndarray,
    rate_hz: float,
    t_start: float | None = None,
    t_end: float | None = None,
    max_gap_s: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample rows ``x`` [N, F] received at times ``t`` [N] onto a ``rate_hz`` grid.

    Grid times are multiples of 1/rate (so two nodes share grid instants). Rows with a
    non-finite time or value are ignored. Returns ``(t_grid [M], x_grid float32 [M, F],
    valid bool [M])``.
    """
    t = np.asarray(t, np.float64)
    x = np.asarray(x)
    # rows of F features ((N,) is one feature); spelled out because reshape(0, -1) is ambiguous
    x = x.reshape(len(t), int(np.prod(x.shape[1:])))
    good = np.isfinite(t) & np.isfinite(x).all(axis=1)
    t, x = t[good], x[good]
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    if len(t) == 0 and (t_start is None or t_end is None):
        return np.zeros(0), np.zeros((0, x.shape[1]), np.float32), np.zeros(0, bool)
    lo = np.ceil((t[0] if t_start is None else t_start) * rate_hz - 1e-9)
    hi = np.floor((t[-1] if t_end is None else t_end) * rate_hz + 1e-9)
    tg = np.arange(lo, hi + 1) / rate_hz
    if len(t) == 0:
        return tg, np.full((len(tg), x.shape[1]), np.nan, np.float32), np.zeros(len(tg), bool)
    _, mt, mx, _ = _bin_means(t, x, rate_hz)
    xg, ok = _interp_rows(mt, mx, tg, max_gap_s)
    return tg, xg, ok


class StreamingGrid:
    """Incremental :func:`uniform_grid`: push frames as they arrive, read recent windows.

    Keeps at most ``capacity`` bin points (one per occupied grid cell) in a ring, so memory and
    per-push cost do not grow with time. Frames older than the open cell are counted in
    ``late`` and ignored (the receive clock went backwards).
    """

    def __init__(
        self, rate_hz: float, n_features: int, capacity: int, max_gap_s: float = 1.0
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.max_gap_s = max_gap_s
        self.capacity = int(capacity)
        self.pt = np.zeros(self.capacity, np.float64)
        self.px = np.zeros((self.capacity, n_features), np.float32)
        self.w = 0  # next ring slot
        self.n = 0  # points stored
        self.late = 0
        self._open_bin: int | None = None
        self._open_n = 0
        self._open_t = 0.0
        self._open_x = np.zeros(n_features, np.float64)

    def _store(self, t: np.ndarray, x: np.ndarray) -> None:
        k = len(t)
        if k >= self.capacity:
            t, x, k = t[-self.capacity :], x[-self.capacity :], self.capacity
        idx = (self.w + np.arange(k)) % self.capacity
        self.pt[idx] = t
        self.px[idx] = x
        self.w = (self.w + k) % self.capacity
        self.n = min(self.n + k, self.capacity)

    def push(self, t: np.ndarray, x: np.ndarray) -> int:
        """Add frames (times [k], rows [k, F]); returns how many grid points were closed."""
        if len(t) == 0:
            return 0
        if len(t) > 1 and np.any(np.diff(t) < 0):
            order = np.argsort(t, kind="stable")
            t, x = t[order], x[order]
        if self._open_bin is not None:
            floor_t = (self._open_bin - 0.5) / self.rate_hz
            old = t < floor_t
            if old.any():
                self.late += int(old.sum())
                t, x = t[~old], x[~old]
                if len(t) == 0:
                    return 0
        bins, mt, mx, counts = _bin_means(t, x, self.rate_hz)
        closed = 0
        if self._open_bin is not None:
            if bins[0] == self._open_bin:  # merge first group into the open cell
                c0 = counts[0]
                self._open_n += c0
                self._open_t += mt[0] * c0
                self._open_x += mx[0] * c0
                bins, mt, mx, counts = bins[1:], mt[1:], mx[1:], counts[1:]
            if len(bins):
                self._store(
                    np.array([self._open_t / self._open_n]), (self._open_x / self._open_n)[None]
                )
                closed += 1
                self._open_bin = None
        if len(bins):
            if len(bins) > 1:
                self._store(mt[:-1], mx[:-1])
                closed += len(bins) - 1
            self._open_bin = int(bins[-1])
            self._open_n = int(counts[-1])
            self._open_t = float(mt[-1]) * self._open_n
            self._open_x = mx[-1] * self._open_n
        return closed

    def points(
        self, since: float = -np.inf, include_open: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored bin points (times, rows) with time >= ``since``, oldest first."""
        idx = (self.w - self.n + np.arange(self.n)) % self.capacity
        tp, xp = self.pt[idx], self.px[idx]
        if include_open and self._open_bin is not None:
            tp = np.r_[tp, self._open_t / self._open_n]
            xp = np.concatenate([xp, (self._open_x / self._open_n)[None].astype(np.float32)])
        keep = tp >= since
        return tp[keep], xp[keep]

    def window(self, t_end: float, duration_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid times in ``(t_end - duration, t_end]`` with interpolated rows and validity."""
        hi = np.floor(t_end * self.rate_hz + 1e-9)
        m = int(round(duration_s * self.rate_hz))
        tg = np.arange(hi - m + 1, hi + 1) / self.rate_hz
        tp, xp = self.points(since=tg[0] - self.max_gap_s)
        xg, ok = _interp_rows(tp, xp, tg, self.max_gap_s)
        return tg, xg, ok

    def reset(self) -> None:
        self.w = self.n = 0
        self._open_bin = None
