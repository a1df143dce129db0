"""Streaming per-node vitals: push frames as they arrive, ask for an estimate about once a second.

``push`` only queues the frames (a list append: the gateway calls it for every UDP batch, often
a frame or two, and per-call numpy overhead would dominate the cost). The queued frames are
conditioned in one vectorized pass when an estimate is asked for (or when the queue gets long):
per-frame features (log-amplitude minus its frame mean, sanitized phase: 104 channels) binned
onto an 8 Hz grid (:class:`StreamingGrid`), plus the common-mode log-amplitude per frame that the
motion detector reads (:mod:`csi_edge.vitals.motion`). Per estimate: the motion decision (per-block
test against the node's quiet level, plus a pooled test for weak sustained motion on noisy
nodes), the still window since the last motion, a breathing-band spectrum over it (presence and
breathing), and the heart band after the breathing harmonics are projected out. A heart rate is
reported only when its peak clears an SNR and prominence gate, is not on a breathing harmonic,
both window halves agree and the last few estimates agree: withheld (with a reason) beats wrong.
Rates are the median of the last few seconds' raw estimates. No stage assumes a frame rate; the
measured one only picks the motion block length (half a second, or a second below 16 Hz).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from csi_edge.dsp.timegrid import StreamingGrid
from csi_edge.skips import SkipCounter
from csi_edge.vitals.baseline import Baseline
from csi_edge.vitals.change import bands, change_coherence, change_ratio
from csi_edge.vitals.coherent import coherent_rate
from csi_edge.vitals.config import VitalsConfig
from csi_edge.vitals.estimate import VitalsEstimate
from csi_edge.vitals.motion import block_stats
from csi_edge.vitals.spectral import (
    RateResult,
    detrend,
    estimate_rate,
    fill_gaps,
    harmonic_basis,
    highpass,
    peak_of,
    power_spectra,
    rank_channels,
    stable_rhythm,
    steady_power,
)

_HISTORY_S = 40.0
_MAX_QUEUE = 256  # frames queued before they are conditioned without waiting for an estimate
_NO_DC = np.r_[0:26, 27:53]  # LLTF canonical grid without its DC bin
_SC_LLTF = np.r_[-26:0, 1:27].astype(np.float32)


def _features(csi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[k, S] complex -> (features [k, 2S'] float32, common-mode log-amplitude [k]).

    Features: log-amplitude minus its frame mean (AGC steps and RSSI swings cancel), then the
    sanitized phase (unwrapped across subcarriers, least-squares line removed). S' = 52 for the
    53-bin LLTF grid (DC dropped), S otherwise.
    """
    if csi.shape[1] == 53:
        h, sc = csi[:, _NO_DC], _SC_LLTF
    else:
        h, sc = csi, np.arange(csi.shape[1], dtype=np.float32)
    la = np.log(np.abs(h) + 0.5, dtype=np.float32)
    cm = la.mean(axis=1)
    ph = np.unwrap(np.angle(h).astype(np.float32), axis=1)
    xc = sc - sc.mean()
    slope = (ph @ xc) / float(xc @ xc)
    ph -= ph.mean(axis=1, keepdims=True) + np.outer(slope, xc)
    return np.concatenate([la - cm[:, None], ph], axis=1), cm


def _chi_factor(dof: np.ndarray, z: float = 3.72) -> np.ndarray:
    """(1e-4 quantile / median) of the block statistic for ``dof`` degrees of freedom
    (Wilson-Hilferty approximation of the chi-square; z = 3.72 is the normal 1e-4 point)."""
    k = np.maximum(dof, 1.0)
    c = 2.0 / (9.0 * k)
    return np.sqrt(np.maximum(1.0 - c + z * np.sqrt(c), 1e-6) ** 3 / (1.0 - c) ** 3)


def _confirmed(
    raw: deque, now: float, res: RateResult, ok: bool, n: int, tol_bpm: float, lookback_s: float
) -> RateResult:
    """``res`` once the gated raw rates of the last ``lookback_s`` (``raw``: (t, BPM or None),
    this estimate appended here) number at least ``n``, all passed and agree within
    ``tol_bpm``; otherwise the same result with confidence 0 and the reason why."""
    raw.append((now, res.bpm if ok else None))
    while raw and raw[0][0] <= now - lookback_s:
        raw.popleft()
    if not ok or n <= 1:
        return res
    recent = [b for _, b in raw]
    if len(recent) < n or any(b is None for b in recent):
        return RateResult(res.bpm, 0.0, res.snr, res.channels, res.prominence, "unconfirmed")
    if max(recent) - min(recent) > tol_bpm:
        return RateResult(res.bpm, 0.0, res.snr, res.channels, res.prominence, "unstable")
    return res


class NodeVitals:
    """Presence, motion, breathing and heart rate of one node from its CSI stream.

    ``push(t_rx [k] float64, csi [k, 53] complex64)``; ``estimate(now) -> VitalsEstimate``.
    Bad frames (NaN, all-zero, non-finite times) are counted in ``skipped``, never raised.
    """

    def __init__(
        self, config: VitalsConfig | None = None, baseline: Baseline | None = None
    ) -> None:
        self.cfg = config or VitalsConfig()
        self.baseline = baseline or Baseline.default()
        # Every matrix here is tiny; a multi-threaded BLAS wakes all cores for each one and, with
        # the cores busy, cost 7x more CPU in scripts/bench_vitals_throughput.py (30 % vs 4 %
        # of a core for 16 nodes). Process-wide, as the pose runtime does it too.
        from csi_edge.inference import limit_blas_threads

        limit_blas_threads(1)
        self.skipped = SkipCounter()
        self.width: int | None = None
        self.grid: StreamingGrid | None = None
        self._reason_hold = ""
        self._queue_t: list[np.ndarray] = []
        self._queue_x: list[np.ndarray] = []
        self._queued = 0
        self._reset_state()

    # -- state -----------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        cfg = self.cfg
        self.segment_start: float | None = None
        self.last_motion_t = -np.inf
        self.last_presence_t = -np.inf
        self._prev_strong = False
        self._last_t: float | None = None
        cap = int(cfg.quiet_memory_s / cfg.motion_block_s) + 16
        self._mt = np.zeros(cap)  # motion block end times (ring)
        self._mv = np.zeros(cap)  # motion block statistic (ring)
        self._md = np.zeros(cap)  # its degrees of freedom
        self._mw = 0
        self._mn = 0
        self._block_s = self.cfg.motion_block_s
        self._seg_frames = 0
        self._order = 2
        self._open_t = np.zeros(0)  # frames of the still open motion block
        self._open_m = np.zeros(0)
        self._noise: deque = deque(maxlen=32)  # common-mode noise predicted per batch
        self._noise_t = -np.inf
        self._br: deque = deque()
        self._hr: deque = deque()
        self._hr_raw: deque = deque()  # (t, gated raw heart BPM or None)
        self._br_raw: deque = deque()  # (t, gated raw breathing BPM or None)
        self._pose_ref: tuple | None = None  # profile before the body moved (_profile_moved)
        self.frames = 0
        # the last few seconds of per-frame features for the change-ratio motion test
        self._ct: deque = deque()
        self._cx: deque = deque()
        self._first_t = np.inf  # this node's first frame (since the last reset)
        self._ratios: deque = deque()  # (t, R) of still windows: this node's quiet ratio
        self._rate = float("nan")
        # presence lifecycle: None (unknown) until decided, then held (see estimate)
        self.presence: bool | None = None
        self._motion_run = 0  # consecutive estimates with the motion flag up
        self._checked_until = -np.inf  # the block test's last decision time (motion_blocks)
        self._quiet_run = 0  # consecutive estimates with neither motion nor breathing evidence
        self.last_change: tuple[float, float] | None = None  # (ratio, level) of the last window
        self.last_coherence = float("nan")  # change_coherence of the last window

    def reset(self, reason: str = "") -> None:
        """Forget everything but the configuration and the baseline."""
        if self.grid is not None:
            self.grid.reset()
        self._queue_t, self._queue_x, self._queued = [], [], 0
        self._reset_state()
        self._reason_hold = reason

    def _ensure_grid(self, n_features: int) -> StreamingGrid:
        if self.grid is None or self.grid.px.shape[1] != n_features:
            cap = int(_HISTORY_S * self.cfg.grid_hz * 1.5) + 16
            self.grid = StreamingGrid(self.cfg.grid_hz, n_features, cap, self.cfg.max_gap_s)
        return self.grid

    # -- ingest ----------------------------------------------------------------------------------
    def push(self, t_rx, csi) -> None:
        """Queue frames: receive times [k] and complex CSI [k, S] (S = 53 for the LLTF grid)."""
        t = np.asarray(t_rx, np.float64).reshape(-1)
        csi = np.asarray(csi)
        if csi.ndim == 1:
            csi = csi[None]
        if len(t) != len(csi) or len(t) == 0:
            if len(t) != len(csi):
                self.skipped.skip(
                    "length-mismatch", f"{len(t)} times for {len(csi)} frames", len(t)
                )
            return
        if self.width is not None and csi.shape[1] != self.width:
            self._ingest()
            self.skipped.skip("subcarrier-count-changed", f"{self.width} -> {csi.shape[1]} bins")
            self.reset("subcarrier-count-changed")
        self.width = csi.shape[1]
        self._queue_t.append(t)
        self._queue_x.append(csi)
        self._queued += len(t)
        if self._queued >= _MAX_QUEUE:
            self._ingest()

    def _ingest(self) -> None:
        """Condition every queued frame in one vectorized pass."""
        if not self._queued:
            return
        if len(self._queue_t) == 1:
            t, csi = self._queue_t[0], self._queue_x[0]
        else:
            t, csi = np.concatenate(self._queue_t), np.concatenate(self._queue_x)
        self._queue_t, self._queue_x, self._queued = [], [], 0
        ok = np.isfinite(t)
        fin = np.isfinite(csi).all(axis=1)
        nz = (csi != 0).any(axis=1)
        good = ok & fin & nz
        if not good.all():
            if not ok.all():
                self.skipped.skip("no-timestamp", n=int((~ok).sum()))
            if not (fin | ~ok).all():
                self.skipped.skip("nan-csi", n=int((~fin & ok).sum()))
            if not (nz | ~ok | ~fin).all():
                self.skipped.skip("all-zero-csi", n=int((~nz & ok & fin).sum()))
            t, csi = t[good], csi[good]
            if len(t) == 0:
                return
        if len(t) > 1 and (np.diff(t) < 0).any():
            order = np.argsort(t, kind="stable")
            t, csi = t[order], csi[order]
        feats, cm = _features(csi)
        self._first_t = min(self._first_t, float(t[0]))
        self._ct.append(t)
        self._cx.append(feats[:, : feats.shape[1] // 2])
        while len(self._ct) > 1 and self._ct[0][-1] < t[-1] - 3.0:
            self._ct.popleft()
            self._cx.popleft()
        grid = self._ensure_grid(feats.shape[1])
        late_before = grid.late
        grid.push(t, feats)
        if grid.late > late_before:
            self.skipped.skip("late-frame", n=grid.late - late_before)
        # Gaps longer than max_gap_s restart the still window (and the motion blocks).
        prev = self._last_t
        tt = t if prev is None else np.r_[prev, t]
        big = np.flatnonzero(np.diff(tt) > self.cfg.max_gap_s)
        if self.segment_start is None:
            self.segment_start = float(t[0])
        if len(big):
            self.segment_start = float(tt[big[-1] + 1])
            self._open_t, self._open_m = np.zeros(0), np.zeros(0)
            self._pose_ref = None
            first = int(np.searchsorted(t, self.segment_start))
            t_m, cm_m = t[first:], cm[first:]
        else:
            t_m, cm_m = t, cm
        self._last_t = float(t[-1]) if prev is None else max(prev, float(t[-1]))
        self.frames += len(t)
        self._seg_frames = (0 if len(big) else self._seg_frames) + len(t_m)
        # Blocks of ~8+ frames: half a second for fast nodes, a whole second for slow ones (the
        # measured rate, never an assumed one, picks it).
        span = self._last_t - self.segment_start
        if span >= 2.0:
            rate = self._seg_frames / span
            self._rate = rate
            slow = rate < 16.0
            if self._block_s != self.cfg.motion_block_s * (2 if slow else 1):
                self._mn = 0  # statistics of another block length: not comparable
            self._block_s = self.cfg.motion_block_s * (2 if slow else 1)
            self._order = 3 if slow else 2  # same time scale of what the polynomial follows
        self._motion_blocks(t_m, cm_m)
        # Per-subcarrier noise of this batch (normalized log-amplitudes, blocks inside the batch):
        # its common-mode share bounds the quiet level even when the person never stops moving.
        # Sampled every few seconds: the noise level changes slowly and this costs ~1 ms.
        if self._last_t - self._noise_t >= self.cfg.noise_every_s:
            self._noise_t = self._last_t
            n_sc = feats.shape[1] // 2
            _, s_sc, _, _ = block_stats(t, feats[:, :n_sc], self._block_s, order=self._order)
            s_sc = s_sc[np.isfinite(s_sc)]
            if len(s_sc):
                self._noise.append(float(np.median(s_sc)) / np.sqrt(n_sc))

    def _motion_blocks(self, t: np.ndarray, cm: np.ndarray) -> None:
        """Close finished motion blocks; keep the frames of the open one for later."""
        if len(t) == 0:
            return
        t = np.r_[self._open_t, t]
        cm = np.r_[self._open_m, cm]
        keep = t >= (self._open_t[0] if len(self._open_t) else -np.inf)
        t, cm = t[keep], cm[keep]
        ends, stat, bid, dof = block_stats(
            t, cm[:, None], self._block_s, step_removal=True, order=self._order
        )
        last_open = int(np.floor(t[-1] / self._block_s))
        closed = bid < last_open
        if closed.any():
            ok = closed & np.isfinite(stat)
            self._store_motion(ends[ok], stat[ok], dof[ok])
        lo = int(np.searchsorted(t, last_open * self._block_s))
        self._open_t, self._open_m = t[lo:], cm[lo:]

    def _store_motion(self, t: np.ndarray, v: np.ndarray, dof: np.ndarray) -> None:
        cap = len(self._mt)
        idx = (self._mw + np.arange(len(t))) % cap
        self._mt[idx], self._mv[idx], self._md[idx] = t, v, dof
        self._mw = (self._mw + len(t)) % cap
        self._mn = min(self._mn + len(t), cap)

    def _motion_series(self, since: float, with_dof: bool = False):
        idx = (self._mw - self._mn + np.arange(self._mn)) % len(self._mt)
        keep = self._mt[idx] >= since
        idx = idx[keep]
        out = (self._mt[idx], self._mv[idx])
        if with_dof:
            out += (self._md[idx],)
        return out

    # -- estimate --------------------------------------------------------------------------------
    def _quiet(self, now: float) -> tuple[float, float]:
        """(quiet level, tail level): a middle and a high percentile of recent blocks (both
        robust to the minority of blocks in which someone moves)."""
        cfg = self.cfg
        _, v = self._motion_series(now - cfg.quiet_memory_s)
        if len(v) < self.cfg.quiet_min_blocks:  # too little history: this test abstains
            return np.inf, 0.0
        q = float(np.percentile(v, cfg.quiet_percentile))
        tail = float(np.percentile(v, cfg.quiet_tail_percentile))
        if len(self._noise) >= 3:
            q = min(q, cfg.motion_noise_ratio * float(np.median(self._noise)))
        ref = self.baseline.motion_level
        if ref is not None:
            q = min(q, 2.0 * ref) if np.isfinite(q) else ref
        return q, min(tail, cfg.motion_tail_cap * q)

    def motion_threshold(self, now: float, dof: np.ndarray | float = 20.0) -> np.ndarray:
        """Statistic above which a block of ``dof`` degrees of freedom is motion.

        ``motion_k`` quiet levels, raised for blocks with few frames (a slow node) so that a
        noise-only block crosses it with probability ~1e-4 (the statistic of a still block is
        a scaled chi with ``dof`` degrees of freedom), and kept above the tail of this node's
        own still blocks (at high SNR a deep, fast breath leaves a deterministic residual).
        """
        cfg = self.cfg
        q, tail = self._quiet(now)
        if not np.isfinite(q):
            return np.full(np.shape(dof), np.inf)
        k = np.maximum(cfg.motion_k, _chi_factor(np.asarray(dof, np.float64)))
        thr = np.maximum(np.maximum(k * q, cfg.motion_tail_k * tail), cfg.motion_floor)
        # Continuous motion inflates the adaptive quiet level; a flicker this big is motion anyway
        # (unless the node is so noisy that its quiet level says otherwise).
        return np.minimum(thr, max(cfg.motion_obvious, cfg.motion_obvious_k * q))

    def _update_motion(self, now: float, since: float) -> tuple[bool, float]:
        """Motion decision at ``now``; marks ``last_motion_t`` from every block after ``since``."""
        cfg = self.cfg
        t, v, d = self._motion_series(since, with_dof=True)
        if len(self._open_t) >= cfg.motion_min_frames:  # the open block, provisionally
            _, s, _, ds = block_stats(
                self._open_t,
                self._open_m[:, None],
                self._block_s,
                step_removal=True,
                order=self._order,
            )
            if np.isfinite(s[-1]):
                t, v, d = np.r_[t, self._open_t[-1]], np.r_[v, s[-1]], np.r_[d, ds[-1]]
        if len(t) == 0:
            return False, 0.0
        thr = self.motion_threshold(now, d)
        hot = v > thr
        if hot.any():
            self.last_motion_t = max(self.last_motion_t, float(t[hot][-1]))
        recent = t > now - cfg.motion_window_s
        score = float(v[-1] / thr[-1]) if np.isfinite(thr[-1]) and thr[-1] > 0 else 0.0
        return bool((hot & recent).any()), score

    def _change_motion(self, now: float) -> tuple[bool, float]:
        """Motion from the last window (:mod:`csi_edge.vitals.change`): (moving, score).

        The window is one second, two below 16 Hz (so it holds enough frames). Moving when the
        change ratio exceeds ``motion_ratio`` (raised to ``motion_ratio_k`` times this node's
        median ratio of the last minute, for a node whose quiet ratio sits higher), or, once
        ``motion_level_min_windows`` windows are in, when the change level exceeds
        ``motion_level_k`` times this node's quiet level (its ``motion_level_percentile`` of
        the last minute), or when the change is shared by neighbouring subcarriers above the
        noise floor (``motion_coherence``: needs no history, so someone walking from the start
        is seen). Score: the largest statistic over its threshold.
        """
        cfg = self.cfg
        if not self._ct:
            return False, 0.0
        # at least 2 x the minimum frame count, so slow nodes (10 Hz) get a usable window
        win = max(
            cfg.motion_ratio_window_s, 2.0 * cfg.motion_ratio_min_frames / max(self._rate, 1.0)
        )
        t = np.concatenate(self._ct)
        lo, hi = np.searchsorted(t, [now - win, now], side="right")
        if hi - lo < cfg.motion_ratio_min_frames:
            return False, 0.0
        if t[lo] <= self._first_t and t[hi - 1] - t[lo] < cfg.motion_window_fill * win:
            # a node's first second: a part-filled window of a capture's (or a boot's) first
            # frames read as change on still real ESP32 links (R 2.1); wait until it fills
            return False, 0.0
        x = np.concatenate(self._cx)[lo:hi]
        r, level = change_ratio(
            t[lo:hi],
            bands(x, cfg.motion_ratio_band),
            cfg.motion_ratio_min_frames,
            cfg.motion_ratio_slow_hz,
            cfg.motion_level_trim,
        )
        if not np.isfinite(r):
            return False, 0.0
        while self._ratios and self._ratios[0][0] < now - cfg.motion_ratio_memory_s:
            self._ratios.popleft()
        thr = cfg.motion_ratio
        score = r / thr
        moving = r > thr
        if len(self._ratios) >= cfg.motion_level_min_windows:
            hist = np.array([(v, lv) for _, v, lv in self._ratios])
            thr = max(thr, cfg.motion_ratio_k * float(np.median(hist[:, 0])))
            q = float(np.percentile(hist[:, 1], cfg.motion_level_percentile))
            q = self._calibrated_level(q)
            lthr = cfg.motion_level_k * q
            score = max(r / thr, level / lthr if lthr > 0 else 0.0)
            moving = r > thr or level > lthr
        if cfg.motion_coherence > 0:
            # no history needed: walking from the first second (a cold start) is seen too
            q = change_coherence(
                t[lo:hi],
                x,
                cfg.motion_coherence_band,
                cfg.motion_ratio_slow_hz,
                cfg.motion_level_trim,
                cfg.motion_coherence_lag_s,
            )
            self.last_coherence = q
            if np.isfinite(q):
                score = max(score, q / cfg.motion_coherence)
                moving = moving or q > cfg.motion_coherence
        self.last_change = (float(r), float(level))
        if not moving:
            self._ratios.append((now, r, level))
        return bool(moving), float(score)

    def _calibrated_level(self, q: float) -> float:
        """A calibrated node's quiet change level caps the learned one (someone moving for
        the whole last minute cannot teach the node that motion is quiet)."""
        ref = self.baseline.change_level
        return q if ref is None else min(q, 2.0 * ref)

    def _profile_moved(self, now: float) -> bool:
        """Has the body moved into a new pose? The last second's mean amplitude profile against
        the 1-s means of the still window before it (one second left out between them).

        Why: the block statistic sees what changes within half a second, and at 10 dB a waving
        arm's fast part stays below the per-frame noise; but raising the arm moves the static
        channel, and a mean over a second divides the noise by sqrt(frames). Breathing moves
        the profile too, along one pattern across subcarriers: the reference's first principal
        component is projected out and the rest scaled by its residual spread per subcarrier.
        Statistic: RMS over subcarriers (median of z^2) of that z-score; still rooms stayed
        below ~1.7 in simulation at 10-45 dB, a raised arm reached 3.7 at 10 dB, 25+ at 25 dB.
        """
        cfg = self.cfg
        if self.grid is None or self.segment_start is None:
            return False
        per = int(round(cfg.grid_hz))
        held = self._pose_ref
        if held is not None:
            # Moved: compare with the pose before, until the body is back or the hold runs out
            # (a new pose that stays is a new still window after all).
            if now - held[-1] > cfg.motion_profile_hold_s:
                self._pose_ref = None
                return False
            win = self._window(now, 1.0)
            if win is None:
                return False
            moved = self._pose_z(win[:, : win.shape[1] // 2].mean(axis=0), *held[:-1])
            if not moved:
                self._pose_ref = None
            return moved
        still_start = max(self.segment_start, self.last_motion_t + cfg.motion_release_s)
        n_ref = int(min(cfg.motion_profile_ref_s, np.floor(now - still_start) - 2))
        if n_ref < cfg.motion_profile_min_ref_s:
            return False
        win = self._window(now, (n_ref + 2) * per / cfg.grid_hz)
        if win is None:
            return False
        n_sc = win.shape[1] // 2  # the log-amplitude half of the features
        m = win[:, :n_sc].reshape(n_ref + 2, per, n_sc).mean(axis=1)
        ref = m[:n_ref]
        mu = ref.mean(axis=0)
        sd = ref.std(axis=0) + 1e-6
        zr = (ref - mu) / sd
        v = np.linalg.svd(zr, full_matrices=False)[2][0]
        zr = zr - np.outer(zr @ v, v)
        scale = sd * (np.sqrt((zr**2).sum(axis=0) / (n_ref - 2)) + 1e-6)
        if self._pose_z(m[-1], mu, sd, v, scale):
            self._pose_ref = (mu, sd, v, scale, now)
            return True
        return False

    def _pose_z(self, cur, mu, sd, v, scale) -> bool:
        """RMS z-score of a 1-s mean profile against a reference, breathing pattern removed."""
        z = (cur - mu) / sd
        z = (z - v * (v @ z)) * sd / scale
        return bool(np.sqrt(np.median(z**2)) > self.cfg.motion_profile_k)

    def _window(self, now: float, dur: float) -> np.ndarray | None:
        _, x, _ = self.grid.window(now, dur)
        x, missing = fill_gaps(x)
        if missing > 0.2 or not np.isfinite(x).all():
            return None
        return x

    def amplitude_window(self, now: float, seconds: float = 32.0) -> np.ndarray | None:
        """The last ``seconds`` of per-frame-normalized log amplitude on the uniform grid,
        [seconds * grid_hz, 52], or None while there is too little or too gappy data.

        This is the bundled vitals model's input before channel selection
        (``csi_edge.dsp.features.vitals_window_from_grid``), taken from the grid this estimator keeps
        anyway, so running the model costs no second pass over the frames.
        """
        self._ingest()
        if self.grid is None or self.width != 53 or self.grid.n == 0:
            return None
        win = self._window(now, seconds)
        return None if win is None else win[:, :52]

    def _profile_present(self, now: float) -> bool:
        prof = self.baseline.profile
        if prof is None or self.width != 53:
            return False
        tp, xp = self.grid.points(since=now - 2.0)
        if len(tp) == 0:
            return False
        mean, std = prof
        z = np.abs(xp[:, :52].mean(axis=0) - mean) / std
        return bool(np.median(z) > self.cfg.profile_z)

    def estimate(self, now: float | None = None) -> VitalsEstimate:
        """Presence, motion and rates at ``now`` (default: the newest frame's time)."""
        self._ingest()
        cfg = self.cfg
        last = self._last_t
        if now is None:
            now = last if last is not None else 0.0

        def out(presence=False, motion=False, reason="", br=None, hr=None, ms=0.0, ps=0.0):
            return VitalsEstimate(
                float(now),
                presence,
                motion,
                None if br is None else br[0],
                0.0 if br is None else br[1],
                None if hr is None else hr[0],
                0.0 if hr is None else hr[1],
                reason,
                ms,
                ps,
            )

        if last is None or self.segment_start is None:
            self.presence = None
            return out(
                None, None, self._reason_hold or ("bad-frames" if self.skipped else "no-data")
            )
        if now - last > cfg.max_gap_s:
            # A node that stopped sending: nothing is known about the room any more.
            self.presence = None
            return out(None, None, "no-data")
        moving, mscore = self._change_motion(now)
        if cfg.motion_blocks:
            # The common-mode block test against this node's learned quiet level: it sees fast
            # limb motion the change ratio cannot (see csi_edge.vitals.change); it may decide
            # only once its quiet level is learned (quiet_min_blocks), never from a cold start.
            since = self._checked_until
            self._checked_until = now
            hot, bscore = self._update_motion(now, min(since, now - 1.0))
            if hot:
                moving, mscore = True, max(mscore, bscore)
        if not moving and cfg.motion_profile and self._profile_moved(now):
            moving = True
        self._motion_run = self._motion_run + 1 if moving else 0
        # Motion is evidence of someone only when it lasts: one flagged second in an empty room
        # (a transient, a passing reflection) must not hold "occupied" for presence_hold_s.
        motion_ev = self._motion_run >= cfg.presence_motion_s
        if moving:
            self.last_motion_t = now
        if motion_ev:
            self.last_presence_t = now
        still_start = max(self.segment_start, self.last_motion_t + cfg.motion_release_s)
        still = now - still_start
        br = None
        snr = 0.0
        strong = False
        xb = None
        breath_ev = False
        unsteady = False
        if not moving and still >= min(6.0, cfg.min_window_s):
            xb = self._window(now, min(still, cfg.breath_window_s))
            if xb is not None:
                xb = detrend(xb)
                br = estimate_rate(
                    xb,
                    cfg.grid_hz,
                    cfg.breath_bpm,
                    cfg.noise_hz,
                    cfg.n_channels,
                    detrended=True,
                    highpass_hz=cfg.breath_highpass_hz,
                )
                # Only one stable rhythm counts (drift and sway are strong but not periodic):
                # then the rate may be reported and it is evidence of someone breathing.
                if not stable_rhythm(
                    xb,
                    cfg.grid_hz,
                    br,
                    cfg.breath_bpm,
                    cfg.noise_hz,
                    cfg.rhythm_min_prominence,
                    cfg.rhythm_tol_bpm,
                    cfg.breath_highpass_hz,
                ):
                    br = RateResult(br.bpm, 0.0, 0.0, br.channels, br.prominence, "no-rhythm")
                elif not steady_power(
                    highpass(xb[:, br.channels], cfg.grid_hz, cfg.breath_highpass_hz),
                    cfg.grid_hz,
                    cfg.rhythm_segment_s,
                    cfg.rhythm_power_jump,
                ):
                    # the newest seconds are much stronger than the rhythm before them: the
                    # body started to move (sway, fidgeting); someone is there, no rate yet
                    br = RateResult(br.bpm, 0.0, 0.0, br.channels, br.prominence, "unsteady")
                    unsteady = True
                snr = br.snr
                strong = snr >= self._presence_snr()
                if not strong and not br.reason:  # passed the rhythm and steadiness checks
                    br, strong = self._coherent_confirm(xb, br)
                # Two estimates in a row above the threshold: in an empty room a noise peak
                # sometimes clears it once (short windows estimate the noise floor poorly).
                breath_ev = strong and self._prev_strong
        self._prev_strong = strong
        if not moving and self._profile_present(now):
            breath_ev = True
        if unsteady:
            breath_ev = True  # not a rate, but a body moving in the band: someone is there
        if breath_ev:
            self.last_presence_t = now
        # Presence lifecycle: unknown until decided; someone is there on motion or breathing
        # evidence; nobody only after a still window of presence_decide_s without evidence,
        # and an occupied room stays occupied for presence_hold_s of such quiet.
        # "Nobody" also needs several estimates in a row without evidence: breathing evidence
        # takes two in a row, so one look at a long window (a tool, a restart) decides nothing.
        quiet_now = not moving and not breath_ev and br is not None
        self._quiet_run = self._quiet_run + 1 if quiet_now else 0
        absent_ev = quiet_now and still >= cfg.presence_decide_s and self._quiet_run >= 3
        if motion_ev or breath_ev:
            self.presence = True
        elif absent_ev and (
            self.presence is None
            or (self.presence and now - self.last_presence_t >= cfg.presence_hold_s)
        ):
            self.presence = False
        presence = self.presence
        if moving:
            self._br.clear()
            self._br_raw.clear()
            self._hr.clear()
            self._hr_raw.clear()
            return out(presence, True, "motion", ms=mscore, ps=snr)
        if self._reason_hold and still < cfg.min_window_s:
            return out(presence, False, self._reason_hold, ms=mscore, ps=snr)
        if presence is False:
            return out(False, False, "no-presence", ms=mscore, ps=snr)
        if still < cfg.min_window_s or br is None:
            reason = "warming-up" if still < cfg.min_window_s else "gaps"
            return out(presence, False, reason, ms=mscore, ps=snr)
        self._reason_hold = ""
        br = self._confirmed_breath(now, br)
        b = self._smooth(self._br, now, br.bpm, br.conf, cfg.min_breath_conf)
        if b is not None:
            # a reported breathing rate is one stable rhythm: someone is there (a rate beside
            # "unknown" presence would contradict itself)
            self.presence = presence = True
            self.last_presence_t = now
        # Heart rate off (the default): not estimated, and no reason about it either
        h, h_reason = None, "heart: too-short" if cfg.heart_enabled else ""
        n_h = int(round(min(still, cfg.heart_window_s) * cfg.grid_hz))
        if cfg.heart_enabled and self._rate < cfg.heart_min_rate_hz:
            h_reason = f"heart: needs >= {cfg.heart_min_rate_hz:.0f} Hz frames"
        elif cfg.heart_enabled and n_h >= int(cfg.min_heart_window_s * cfg.grid_hz):
            hr = self._heart(xb[-n_h:], br if b is not None else None)
            hr = self._persistent(now, hr)
            h = self._smooth(self._hr, now, hr.bpm, hr.conf, cfg.min_heart_conf)
            h_reason = "" if h else f"heart: {hr.reason or 'low-confidence'}"
        if b and h:
            reason = ""
        elif b:
            reason = h_reason
        elif h:
            reason = "breathing: low-confidence"
        else:
            reason = "low-confidence"
        return out(presence, False, reason, br=b, hr=h, ms=mscore, ps=snr)

    def _coherent_confirm(self, xb: np.ndarray, br: RateResult) -> tuple[RateResult, bool]:
        """A stable rhythm under the presence SNR, confirmed (or not) by the cross-fitted
        coherent combination (:mod:`csi_edge.vitals.coherent`) at the same rate: (the result
        to report, is it evidence of someone). Never evidence on its own: real still links
        score high there too, but the per-channel estimator found no stable rhythm in them."""
        cfg = self.cfg
        ref = self.baseline.breath_snr_max
        if cfg.coherent_snr <= 0 or br.bpm is None or br.snr <= (ref or 0.0):
            return br, False
        coh = coherent_rate(
            xb,
            cfg.grid_hz,
            cfg.breath_bpm,
            cfg.noise_hz,
            cfg.breath_highpass_hz,
            cfg.rhythm_tol_bpm,
            cfg.coherent_band,
        )
        if (
            coh.bpm is None
            or coh.snr < cfg.coherent_snr
            or abs(coh.bpm - br.bpm) > cfg.rhythm_tol_bpm
        ):
            return br, False
        return RateResult(
            coh.bpm, coh.conf, br.snr, br.channels, coh.prominence, "", {"coherent_snr": coh.snr}
        ), True

    def _presence_snr(self) -> float:
        ref = self.baseline.breath_snr_max
        return self.cfg.presence_snr if ref is None else max(self.cfg.presence_snr, 1.5 * ref)

    def _heart(self, x: np.ndarray, br: RateResult | None) -> RateResult:
        """Heart rate from a detrended window: breathing harmonics projected out, channels ranked
        by heart-band SNR, a combined spectrum whose peak may not sit on a breathing harmonic,
        and the two halves of the window must agree (an independent check against noise peaks).
        """
        cfg = self.cfg
        fs = cfg.grid_hz
        band_hz = (cfg.heart_bpm[0] / 60.0, cfg.heart_bpm[1] / 60.0)
        f0 = br.bpm / 60.0 if br is not None and br.bpm else None
        if f0:
            q = harmonic_basis(len(x), fs, f0, cfg.noise_hz[0])
            if q is not None:
                x = x - q @ (q.T @ x)
        snr, lvl = rank_channels(x, fs, band_hz, cfg.noise_hz)
        ch = np.argsort(-snr, kind="stable")[: cfg.n_heart_channels]
        xs = x[:, ch] / np.sqrt(lvl[ch])
        nfft = 2048
        f, spec = power_spectra(xs, fs, nfft, detrended=True)
        band = (f >= band_hz[0]) & (f <= band_hz[1])
        noise = (f >= cfg.noise_hz[0]) & (f <= cfg.noise_hz[1])
        comb = (spec / np.maximum(np.median(spec[noise], axis=0), 1e-20)).mean(axis=1)
        harm = f0 * np.arange(2, int(band_hz[1] / f0) + 2) if f0 else None
        res = peak_of(
            comb, f, band, noise, fs, len(x), ch, cfg.heart_snr_lo, cfg.heart_snr_hi, harm
        )
        if res.bpm is None or res.reason:
            return res
        if res.snr < cfg.heart_min_snr or res.prominence < cfg.heart_min_prominence:
            return RateResult(res.bpm, 0.0, res.snr, ch, res.prominence, "low-confidence")
        # Split-window check: each half (independent noise) must put its peak near the same rate.
        half = len(x) // 2
        tol = max(cfg.heart_split_tol_bpm, 60.0 * fs / half)
        for part in (xs[:half], xs[half:]):
            fp, sp = power_spectra(detrend(part), fs, nfft, detrended=True)
            cp = (sp / np.maximum(np.median(sp[noise], axis=0), 1e-20)).mean(axis=1)
            rp = peak_of(cp, fp, band, noise, fs, half, ch, cfg.heart_snr_lo, cfg.heart_snr_hi)
            if rp.bpm is None or abs(rp.bpm - res.bpm) > tol:
                return RateResult(res.bpm, 0.0, res.snr, ch, res.prominence, "inconsistent")
        return res

    def _persistent(self, now: float, hr: RateResult) -> RateResult:
        """Let a heart rate through only once the last ``heart_persist`` estimates (one a second)
        all passed the gate and agree: a noise peak that clears the gate once rarely does so
        again at the same rate."""
        cfg = self.cfg
        ok = hr.bpm is not None and hr.conf >= cfg.min_heart_conf and not hr.reason
        lookback = cfg.heart_persist + 0.5
        return _confirmed(
            self._hr_raw, now, hr, ok, cfg.heart_persist, cfg.heart_split_tol_bpm, lookback
        )

    def _confirmed_breath(self, now: float, br: RateResult) -> RateResult:
        """Let a breathing rate through only once the last ``breath_persist`` estimates all
        passed and agree within ``rhythm_tol_bpm``: one marginal peak in an empty room (an AGC
        step, a burst of loss) reported once as a rate would hold "occupied" for
        ``presence_hold_s`` and refuse the room's calibration; a breathing person's rhythm is
        there second after second."""
        cfg = self.cfg
        ok = br.bpm is not None and br.conf >= cfg.min_breath_conf and not br.reason
        lookback = cfg.breath_persist - 0.5  # exactly the last breath_persist estimates
        return _confirmed(
            self._br_raw, now, br, ok, cfg.breath_persist, cfg.rhythm_tol_bpm, lookback
        )

    def _smooth(self, hist: deque, now: float, bpm, conf: float, min_conf: float):
        while hist and hist[0][0] < now - self.cfg.smooth_s:
            hist.popleft()
        if bpm is None or conf < min_conf:
            return None
        hist.append((now, bpm, conf))
        return float(np.median([h[1] for h in hist])), float(conf)

    # -- calibration -----------------------------------------------------------------------------
    def calibration_stats(self, since: float) -> tuple[list[float], np.ndarray | None]:
        """(motion statistics of the blocks after ``since``, mean amplitude profile [52] of the
        grid points after ``since`` or None) for :mod:`csi_edge.vitals.room`."""
        self._ingest()
        _, v = self._motion_series(since)
        prof = None
        if self.grid is not None and self.width == 53:
            tp, xp = self.grid.points(since=since)
            if len(tp):
                prof = xp[:, :52].mean(axis=0)
        return [float(x) for x in v], prof
