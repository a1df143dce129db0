"""Streaming per-node vitals: push frames as they arrive, ask for an estimate about once a second.

Per push (cheap, vectorized over the pushed frames): per-frame features (log-amplitude minus its
frame mean, sanitized phase: 104 channels), binned onto an 8 Hz grid (:class:`StreamingGrid`),
and a change rate per closed grid point for the motion detector. Per estimate (about 1 Hz): the
motion decision, the still window since the last motion, a breathing-band spectrum over it
(presence and breathing), the heart band after the breathing harmonics are removed, and a short
median over recent raw estimates. Nothing here knows the input frame rate.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from calibration.baseline import Baseline
from edge.dsp.features import frame_features
from edge.dsp.hampel import hampel
from edge.dsp.phase import sanitize_phase
from edge.dsp.timegrid import StreamingGrid
from edge.skips import SkipCounter
from edge.vitals.config import VitalsConfig
from edge.vitals.estimate import VitalsEstimate
from edge.vitals.spectral import estimate_rate, fill_gaps, remove_harmonics

_HISTORY_S = 40.0


def _features(csi: np.ndarray) -> np.ndarray:
    """53-bin LLTF -> the standard 104 channels; any other width: log-amp + phase of all bins."""
    if csi.shape[1] == 53:
        return frame_features(csi)
    la = np.log1p(np.abs(csi)).astype(np.float32)
    la -= la.mean(axis=1, keepdims=True)
    return np.concatenate([la, sanitize_phase(csi)], axis=1)


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
        self.skipped = SkipCounter()
        self.width: int | None = None
        self.grid: StreamingGrid | None = None
        self._reason_hold = ""
        self._reset_state()

    # -- state -----------------------------------------------------------------------------------
    def _reset_state(self) -> None:
        cfg = self.cfg
        self.segment_start: float | None = None
        self.last_motion_t = -np.inf
        self.last_presence_t = -np.inf
        cap = int(cfg.quiet_memory_s * cfg.grid_hz * 2) + 16
        self._mt = np.zeros(cap)
        self._mv = np.zeros(cap)
        self._mw = 0
        self._mn = 0
        self._flagged_until = -np.inf
        self._br: deque = deque()
        self._hr: deque = deque()
        self.frames = 0

    def reset(self, reason: str = "") -> None:
        """Forget everything but the configuration and the baseline."""
        if self.grid is not None:
            self.grid.reset()
        self._reset_state()
        self._reason_hold = reason

    def _ensure_grid(self, n_features: int) -> StreamingGrid:
        if self.grid is None or self.grid.px.shape[1] != n_features:
            cap = int(_HISTORY_S * self.cfg.grid_hz * 1.5) + 16
            self.grid = StreamingGrid(self.cfg.grid_hz, n_features, cap, self.cfg.max_gap_s)
        return self.grid

    # -- ingest ----------------------------------------------------------------------------------
    def push(self, t_rx: np.ndarray, csi: np.ndarray) -> None:
        """Add frames: receive times [k] and complex CSI [k, S] (S = 53 for the LLTF grid)."""
        t = np.atleast_1d(np.asarray(t_rx, np.float64))
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
            self.skipped.skip("subcarrier-count-changed", f"{self.width} -> {csi.shape[1]} bins")
            self.reset("subcarrier-count-changed")
        self.width = csi.shape[1]
        ok = np.isfinite(t)
        if not ok.all():
            self.skipped.skip("no-timestamp", n=int((~ok).sum()))
        fin = np.isfinite(csi.real).all(axis=1) & np.isfinite(csi.imag).all(axis=1)
        if not (fin | ~ok).all():
            self.skipped.skip("nan-csi", n=int((~fin & ok).sum()))
        ok &= fin
        nz = (csi != 0).any(axis=1)
        if not (nz | ~ok).all():
            self.skipped.skip("all-zero-csi", n=int((~nz & ok).sum()))
        ok &= nz
        if not ok.all():
            t, csi = t[ok], csi[ok]
            if len(t) == 0:
                return
        grid = self._ensure_grid(2 * (csi.shape[1] - (1 if csi.shape[1] == 53 else 0)))
        n_before = grid.n
        closed = grid.push(t, _features(csi))
        if self.segment_start is None:
            self.segment_start = float(t.min())
        self.frames += len(t)
        if closed:
            self._motion_points(closed, had_previous=n_before > 0)

    def _motion_points(self, closed: int, had_previous: bool) -> None:
        """Change rate (75th percentile over channels of |x_i - x_{i-1}|) of newly closed grid points."""
        tp, xp = self.grid.last_points(closed + (1 if had_previous else 0))
        if len(tp) < 2:
            return
        dt = np.diff(tp)
        m = np.percentile(np.abs(np.diff(xp, axis=0)), 75, axis=1)
        gap = dt > self.cfg.max_gap_s
        if gap.any():
            self.segment_start = float(tp[1:][gap][-1])
        keep = ~gap
        self._store_motion(tp[1:][keep], m[keep])

    def _store_motion(self, t: np.ndarray, v: np.ndarray) -> None:
        cap = len(self._mt)
        idx = (self._mw + np.arange(len(t))) % cap
        self._mt[idx], self._mv[idx] = t, v
        self._mw = (self._mw + len(t)) % cap
        self._mn = min(self._mn + len(t), cap)

    def _motion_series(self, since: float) -> tuple[np.ndarray, np.ndarray]:
        idx = (self._mw - self._mn + np.arange(self._mn)) % len(self._mt)
        t, v = self._mt[idx], self._mv[idx]
        keep = t >= since
        return t[keep], v[keep]

    # -- estimate --------------------------------------------------------------------------------
    def quiet_level(self, now: float) -> float:
        """The change rate of this node when nothing moves (adaptive, capped by the baseline)."""
        _, v = self._motion_series(now - self.cfg.quiet_memory_s)
        q = float(np.percentile(v, self.cfg.quiet_percentile)) if len(v) >= 8 else np.inf
        ref = self.baseline.motion_level
        if ref is not None:
            q = min(q, 2.0 * ref) if np.isfinite(q) else ref
        return q

    def _update_motion(self, now: float) -> tuple[bool, float]:
        cfg = self.cfg
        q = self.quiet_level(now)
        thr = max(cfg.motion_k * q, cfg.motion_floor) if np.isfinite(q) else np.inf
        t, v = self._motion_series(min(self._flagged_until, now - 30.0) - cfg.motion_window_s)
        if len(t) == 0 or not np.isfinite(thr):
            return False, 0.0
        # Windowed RMS of the change rate at every point (cumsum: one pass, no Python loop).
        c = np.r_[0.0, np.cumsum(v**2)]
        lo = np.searchsorted(t, t - cfg.motion_window_s, side="right")
        rms = np.sqrt((c[1:] - c[lo]) / np.maximum(np.arange(1, len(t) + 1) - lo, 1))
        hot = rms > thr
        if hot.any():
            self.last_motion_t = max(self.last_motion_t, float(t[hot][-1]))
        self._flagged_until = float(t[-1])
        recent = t > now - cfg.motion_window_s
        score = float(rms[-1] / max(q, 1e-12)) if recent.any() else 0.0
        moving = bool(recent.any() and hot[recent].any())
        return moving, score

    def _window(self, now: float, dur: float) -> tuple[np.ndarray | None, float]:
        _, x, _ = self.grid.window(now, dur)
        x, missing = fill_gaps(x)
        if missing > 0.2 or not np.isfinite(x).all():
            return None, missing
        return x, missing

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
        cfg = self.cfg
        last = None if self.grid is None else self.grid.last_time
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
            return out(reason=self._reason_hold or ("bad-frames" if self.skipped else "no-data"))
        if now - last > cfg.max_gap_s:
            return out(reason="no-data")
        moving, mscore = self._update_motion(now)
        if moving:
            self.last_presence_t = now
        still_start = max(self.segment_start, self.last_motion_t + cfg.motion_release_s)
        still = now - still_start
        br = None
        snr = 0.0
        if not moving and still >= min(6.0, cfg.min_window_s):
            x, _ = self._window(now, min(still, cfg.breath_window_s))
            if x is not None:
                br = self._rate(x, cfg.breath_bpm)
                snr = br.snr
                if snr >= self._presence_snr():
                    self.last_presence_t = now
        if not moving and self._profile_present(now):
            self.last_presence_t = now
        presence = now - self.last_presence_t <= cfg.presence_hold_s
        if moving:
            self._br.clear()
            self._hr.clear()
            return out(presence, True, "motion", ms=mscore, ps=snr)
        if self._reason_hold and still < cfg.min_window_s:
            return out(presence, False, self._reason_hold, ms=mscore, ps=snr)
        if not presence:
            return out(False, False, "no-presence", ms=mscore, ps=snr)
        if still < cfg.min_window_s or br is None:
            reason = self._reason_hold or "warming-up"
            return out(
                True,
                False,
                reason if br is not None or still < cfg.min_window_s else "gaps",
                ms=mscore,
                ps=snr,
            )
        self._reason_hold = ""
        b = self._smooth(self._br, now, br.bpm, br.conf, cfg.min_breath_conf)
        h = None
        xh, _ = self._window(now, min(still, cfg.heart_window_s))
        if xh is not None:
            if br.bpm is not None and br.conf > 0.1:
                xh = remove_harmonics(xh, cfg.grid_hz, br.bpm / 60.0, cfg.noise_hz[0])
            hr = self._rate(xh, cfg.heart_bpm)
            h = self._smooth(self._hr, now, hr.bpm, hr.conf, cfg.min_heart_conf)
        reason = "" if (b and h) else "low-confidence"
        return out(True, False, reason, br=b, hr=h, ms=mscore, ps=snr)

    def _presence_snr(self) -> float:
        ref = self.baseline.breath_snr_max
        return self.cfg.presence_snr if ref is None else max(self.cfg.presence_snr, 1.5 * ref)

    def _rate(self, x: np.ndarray, band: tuple[float, float]):
        cfg = self.cfg
        first = estimate_rate(x, cfg.grid_hz, band, cfg.noise_hz, cfg.n_channels)
        if first.bpm is None or cfg.hampel_half_window < 1:
            return first
        # Hampel only on the chosen channels: 8 columns instead of 104 keeps it cheap.
        xs, _ = hampel(x[:, first.channels], cfg.hampel_half_window, 3.0, axis=0)
        return estimate_rate(xs, cfg.grid_hz, band, cfg.noise_hz, channels=np.arange(xs.shape[1]))

    def _smooth(self, hist: deque, now: float, bpm, conf: float, min_conf: float):
        while hist and hist[0][0] < now - self.cfg.smooth_s:
            hist.popleft()
        if bpm is None or conf < min_conf:
            return None
        hist.append((now, bpm, conf))
        return float(np.median([h[1] for h in hist])), float(conf)
