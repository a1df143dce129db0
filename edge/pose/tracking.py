"""Per-node pose smoothing and tracking (after RuView ADR-082), batched
over nodes.

* A constant-velocity Kalman filter per keypoint and axis (process noise 0.3, measurement noise
  0.08, normalized units). Gated (invisible) keypoints are predicted, not updated.
* A track is *tentative* until it has 2 hits, then *confirmed*; after 5 consecutive misses it is
  *lost* and the next hit starts a new track. Only confirmed, live tracks are reported.
* Bone lengths may change by at most +-20 % per frame: each bone vector keeps its direction,
  its length is clamped, and the skeleton is rebuilt from the root along the bone tree.
* Optional exponential smoothing of the reported pose (``ema`` = weight of the new pose).

:class:`BatchTracker` holds every node's track in arrays (row = node) and advances any set of
rows by one frame with one pass of array operations: the gateway's per-frame path has no
per-node Python. :class:`PoseTracker` (one track) and :class:`NodeTracker` (tracks by node key)
are thin views over it.

Why hand-written: the filter is 4x4 per keypoint and has to be vectorized over nodes and
keypoints with per-keypoint missing measurements; filterpy and friends are per-object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csi_edge.pose.keypoints import BONES, DecodedPose

_A = np.array([a for a, _ in BONES])
_B = np.array([b for _, b in BONES])
_ROOT = BONES[0][0]

LOST, TENTATIVE, CONFIRMED = 0, 1, 2
STATUS_NAMES = ("lost", "tentative", "confirmed")


def _path_matrix() -> np.ndarray:
    """[17, bones]: entry (j, i) is 1 when bone i lies on the path from the root to keypoint j."""
    paths = np.zeros((17, len(BONES)))
    for i, (a, b) in enumerate(BONES):  # BONES lists every parent before its children
        paths[b] = paths[a]
        paths[b, i] = 1.0
    return paths


_PATHS = _path_matrix()
# [bones, 17]: +1 at each bone's child, -1 at its parent (DIFF @ xy = xy[B] - xy[A], exactly)
_DIFF = np.zeros((len(BONES), 17))
_DIFF[np.arange(len(BONES)), _B] = 1.0
_DIFF[np.arange(len(BONES)), _A] = -1.0


def _all(a: np.ndarray) -> bool:
    """``a.all()`` without numpy's Python wrapper (~2x cheaper on tiny arrays)."""
    return bool(np.logical_and.reduce(a, axis=None))


def _any(a: np.ndarray) -> bool:
    return bool(np.logical_or.reduce(a, axis=None))


_clip = np.clip if not hasattr(np, "_core") else np._core.umath.clip  # the ufunc, no wrapper


@dataclass
class TrackState:
    """What a tracker reports for a node at one frame."""

    track_id: int
    status: str  # "tentative" | "confirmed" | "lost"
    hits: int
    misses: int
    xy: np.ndarray  # [17, 2] smoothed keypoints
    visible: np.ndarray  # [17] bool: keypoints measured at least once in this track

    @property
    def shown(self) -> bool:
        return self.status == "confirmed"


@dataclass
class TrackBatch:
    """States of the rows just advanced (arrays, row order as given)."""

    rows: np.ndarray  # [b]
    track_id: np.ndarray  # [b] int
    status: np.ndarray  # [b] LOST / TENTATIVE / CONFIRMED
    xy: np.ndarray  # [b, 17, 2] float32 smoothed keypoints (zeros before a track has a pose)
    seen: np.ndarray  # [b, 17] bool

    @property
    def confirmed(self) -> np.ndarray:
        return self.status == CONFIRMED


class BatchTracker:
    """Tracks for ``capacity`` rows (grown on demand); see the module docstring."""

    #: take :meth:`_steady` when a frame allows it (tests turn it off to compare both paths)
    fast = True

    def __init__(
        self,
        capacity: int = 4,
        dt: float = 0.05,
        process_noise: float = 0.3,
        measurement_noise: float = 0.08,
        confirm_hits: int = 2,
        max_misses: int = 5,
        bone_tolerance: float = 0.2,
        conf_gate: float = 0.3,
        min_keypoints: int = 5,
        ema: float = 1.0,
    ) -> None:
        self.dt = dt
        self.q = process_noise
        self.r = measurement_noise**2
        self.confirm_hits, self.max_misses = confirm_hits, max_misses
        self.tol = bone_tolerance
        self.conf_gate, self.min_keypoints = conf_gate, min_keypoints
        self.ema = ema
        self.capacity = 0
        self._alloc(max(1, capacity))

    # -- storage -----------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        old = self.capacity
        fresh = {
            "x": np.zeros((capacity, 17, 2, 2)),  # [row, kp, axis, (pos, vel)]
            "P": np.tile(np.eye(2), (capacity, 17, 1, 1)),  # shared by both axes, per keypoint
            "seen": np.zeros((capacity, 17), bool),
            "bones": np.full((capacity, len(BONES)), np.nan),
            "has_bones": np.zeros(capacity, bool),
            "out": np.zeros((capacity, 17, 2)),
            "has_out": np.zeros(capacity, bool),
            "status": np.full(capacity, LOST, np.int8),
            "hits": np.zeros(capacity, np.int64),
            "misses": np.zeros(capacity, np.int64),
            "track_id": np.ones(capacity, np.int64),
            "next_id": np.ones(capacity, np.int64),
        }
        for name, arr in fresh.items():
            if old:
                arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        self.capacity = capacity

    def ensure(self, rows: int) -> None:
        """Room for ``rows`` rows."""
        if rows > self.capacity:
            self._alloc(max(rows, 2 * self.capacity))

    def _new_tracks(self, rows: np.ndarray) -> None:
        self.track_id[rows] = self.next_id[rows]
        self.next_id[rows] += 1
        self.hits[rows] = self.misses[rows] = 0
        self.status[rows] = TENTATIVE
        self.x[rows] = 0.0
        self.P[rows] = np.eye(2)
        self.seen[rows] = False
        self.bones[rows] = np.nan
        self.has_bones[rows] = False
        self.has_out[rows] = False

    # -- one frame for a set of rows -----------------------------------------------------------
    def update(
        self,
        rows: np.ndarray,
        xy: np.ndarray,
        confidence: np.ndarray,
        present: np.ndarray | None = None,
        dt: float | None = None,
    ) -> TrackBatch:
        """Advance ``rows`` (distinct) by one frame. ``xy`` [b, 17, 2], ``confidence`` [b, 17];
        ``present`` [b] False where a row had no detection this frame."""
        rows = np.asarray(rows, np.intp)
        if len(rows) == 0:
            return TrackBatch(rows, rows.copy(), rows.astype(np.int8), np.zeros((0, 17, 2), np.float32),
                              np.zeros((0, 17), bool))  # fmt: skip
        self.ensure(int(rows.max()) + 1)
        dt = self.dt if dt is None else dt
        xy = np.asarray(xy, np.float32).reshape(len(rows), 17, 2)
        conf = np.asarray(confidence, np.float32).reshape(len(rows), 17)
        vis = np.logical_and.reduce(np.isfinite(xy), axis=2)  # .all(axis=2), no wrapper
        vis &= np.isfinite(conf)
        vis &= conf >= self.conf_gate
        hit = np.add.reduce(vis, axis=1) >= self.min_keypoints
        if present is not None:
            hit &= np.asarray(present, bool)
        # contiguous rows are addressed as a slice: views instead of gathers and scatters
        whole = _as_slice(rows)
        if self.fast and present is None and isinstance(whole, slice):
            done = self._steady(whole, xy, conf, vis, hit, dt)
            if done is not None:
                return TrackBatch(rows, *done)
        sub = lambda m: whole if m.all() else rows[m]  # noqa: E731
        status = self.status[whole]
        new = hit & (status == LOST)
        if new.any():
            self._new_tracks(rows[new])
            status = self.status[whole]
        live = status != LOST
        if live.any():
            self._predict(sub(live), dt)
        h = hit & live
        if h.any():
            r_hit = sub(h)
            self.hits[r_hit] += 1
            self.misses[r_hit] = 0
            if h.all():
                self._kalman(r_hit, xy.astype(np.float64), vis)
            else:
                self._kalman(r_hit, xy[h].astype(np.float64), vis[h])
            confirm = (self.status[r_hit] == TENTATIVE) & (self.hits[r_hit] >= self.confirm_hits)
            if confirm.any():
                self.status[rows[h][confirm]] = CONFIRMED
        m = ~hit & live
        if m.any():
            r_miss = rows[m]
            self.misses[r_miss] += 1
            drop = (self.misses[r_miss] >= self.max_misses) | (self.status[r_miss] == TENTATIVE)
            self.status[r_miss[drop]] = LOST
        go = live & (self.status[whole] != LOST)
        if go.any():
            self._smooth(sub(go))
        return TrackBatch(
            rows,
            self.track_id[whole].copy(),
            self.status[whole].copy(),
            np.where(self.has_out[whole, None, None], self.out[whole], 0.0).astype(np.float32),
            self.seen[whole].copy(),
        )

    def _steady(self, sl: slice, xy, conf, vis, hit, dt: float) -> tuple | None:
        """The usual frame of a fleet in one pass over views: every row of ``sl`` is live, hit,
        has bones, and sees no keypoint for the first time. The same arithmetic, in the same
        order, as :meth:`_predict` + :meth:`_kalman` + :meth:`_smooth`, with fewer and cheaper
        numpy calls (each costs ~1 us on these tiny arrays, which is the whole cost here):
        views instead of gathers, masks skipped when all-true, the bone vectors as one matmul
        with a +-1 matrix (exact: one subtraction per entry). ``tests/test_pose_fast_paths.py``
        runs both paths. None when the frame is not such a frame."""
        status = self.status[sl]
        seen = self.seen[sl]
        if not (_all(hit) and _all(status) and _all(self.has_bones[sl])):
            return None  # LOST == 0: all(status) means every row live
        all_vis = _all(vis)
        all_seen = _all(seen)
        if not all_seen and _any(vis > seen):  # a first sighting initialises instead
            return None
        q, r = self.q, self.r
        x, P = self.x[sl], self.P[sl]  # views: updated in place
        pos, vel = x[..., 0], x[..., 1]
        # predict (as _predict)
        pos += dt * vel
        p00, p01, p10, p11 = P[..., 0, 0], P[..., 0, 1], P[..., 1, 0], P[..., 1, 1]
        a = p01 + dt * p11
        P[..., 0, 0] = p00 + dt * p10 + dt * a + q * dt**4 / 4
        P[..., 1, 0] = p10 + dt * p11 + q * dt**3 / 2
        P[..., 0, 1] = a + q * dt**3 / 2
        P[..., 1, 1] = p11 + q * dt**2
        hits = self.hits[sl]
        hits += 1
        self.misses[sl] = 0
        tent = status == TENTATIVE
        if _any(tent):
            status[tent & (hits >= self.confirm_hits)] = CONFIRMED
        # measurement update of the visible keypoints (as _kalman; all of them seen before)
        k = P[..., :, 0] / (P[..., 0, 0] + r)[..., None]
        innov = xy.astype(np.float64)
        innov -= pos
        if all_vis:
            x += innov[..., None] * k[..., None, :]
            P -= k[..., :, None] * P[..., 0, None, :]
        else:
            m = vis[..., None, None]
            np.copyto(x, x + innov[..., None] * k[..., None, :], where=m)
            np.copyto(P, P - k[..., :, None] * P[..., 0, None, :], where=m)
        # bone clamp and rebuild (as _smooth with every row having bones)
        xy2 = _clip(pos, 0.0, 1.0)
        d = _DIFF @ xy2  # [n, bones, 2]: child - parent
        length = np.hypot(d[..., 0], d[..., 1])
        prev = self.bones[sl]
        ok = np.isfinite(prev)
        ok &= prev > 1e-6
        ok &= length > 1e-9
        safe_prev = np.where(ok, prev, 1.0)
        target = _clip(length, safe_prev * (1 - self.tol), safe_prev * (1 + self.tol))
        d *= np.where(ok, target / np.where(ok, length, 1.0), 1.0)[..., None]
        xy2 = xy2[:, _ROOT, None, :] + _PATHS @ d
        d = _DIFF @ xy2  # as _lengths
        bones = np.hypot(d[..., 0], d[..., 1])
        if all_seen:
            self.bones[sl] = bones
            pos[...] = xy2
        else:
            self.bones[sl] = np.where(seen[:, _A] & seen[:, _B], bones, np.nan)
            np.copyto(pos, xy2, where=seen[..., None])
        out = self.out[sl]
        if self.ema >= 1.0:
            out[...] = xy2
        else:
            out[...] = self.ema * xy2 + (1 - self.ema) * out  # has_out: set with has_bones
        return (self.track_id[sl].copy(), status.copy(), out.astype(np.float32), seen.copy())

    def _predict(self, rows: np.ndarray | slice, dt: float) -> None:
        """Constant velocity: x <- F x, P <- F P F' + Q with F = [[1, dt], [0, 1]], written out
        per element (numpy's matmul on thousands of stacked 2x2 matrices is several times
        slower than these few whole-array operations)."""
        q = self.q
        x = self.x[rows]
        x[..., 0] += dt * x[..., 1]
        P = self.P[rows]
        p00, p01, p10, p11 = P[..., 0, 0], P[..., 0, 1], P[..., 1, 0], P[..., 1, 1]
        a = p01 + dt * p11  # (F P)[0, 1]
        P[..., 0, 0] = p00 + dt * p10 + dt * a + q * dt**4 / 4
        P[..., 1, 0] = p10 + dt * p11 + q * dt**3 / 2
        P[..., 0, 1] = a + q * dt**3 / 2
        P[..., 1, 1] = p11 + q * dt**2
        self.x[rows], self.P[rows] = x, P

    def _kalman(self, rows: np.ndarray, z: np.ndarray, mask: np.ndarray) -> None:
        """Position measurement ``z`` [n, 17, 2] for keypoints ``mask``; first sightings initialise."""
        x, P, seen = self.x[rows], self.P[rows], self.seen[rows]
        first = mask & ~seen
        if first.any():
            x[first, :, 0] = z[first]
            x[first, :, 1] = 0.0
            P[first] = np.diag([self.r, 1.0])
        upd = mask & seen
        if upd.all():  # steady state: every keypoint measured again, dense ops only
            s = P[..., 0, 0] + self.r  # innovation variance (same for x and y)
            k = P[..., :, 0] / s[..., None]  # gain [n, 17, 2]
            innov = z - x[..., 0]  # [n, 17, 2]
            x += innov[..., None] * k[..., None, :]
            P = P - k[..., :, None] * P[..., 0, None, :]
        elif upd.any():
            Pu = P[upd]
            s = Pu[:, 0, 0] + self.r
            k = Pu[:, :, 0] / s[:, None]  # gain [n, 2]
            innov = z[upd] - x[upd][:, :, 0]  # [n, 2]
            x[upd] += innov[:, :, None] * k[:, None, :]
            P[upd] = Pu - k[:, :, None] * Pu[:, 0, None, :]
        self.x[rows], self.P[rows], self.seen[rows] = x, P, seen | mask

    def _lengths(self, xy: np.ndarray, seen: np.ndarray) -> np.ndarray:
        d = xy[:, _B] - xy[:, _A]
        both = seen[:, _A] & seen[:, _B]
        return np.where(both, np.hypot(d[..., 0], d[..., 1]), np.nan)

    def _smooth(self, rows: np.ndarray) -> None:
        """Clamp each bone's length to +-tol of last frame's (direction kept), rebuild the
        skeleton from the root (one matmul with the root->keypoint path matrix), smooth."""
        seen = self.seen[rows]
        xy = np.clip(self.x[rows, :, :, 0], 0.0, 1.0)
        had = self.has_bones[rows]
        if had.any():
            c = xy[had]
            d = c[:, _B] - c[:, _A]  # [n, bones, 2]
            length = np.hypot(d[..., 0], d[..., 1])
            prev = self.bones[rows][had]
            ok = np.isfinite(prev) & (prev > 1e-6) & (length > 1e-9)
            safe_prev = np.where(ok, prev, 1.0)
            target = np.clip(length, safe_prev * (1 - self.tol), safe_prev * (1 + self.tol))
            d *= np.where(ok, target / np.where(ok, length, 1.0), 1.0)[..., None]
            xy[had] = c[:, _ROOT][:, None, :] + _PATHS @ d
        self.bones[rows] = self._lengths(xy, seen)
        self.has_bones[rows] = True
        self.x[rows, :, :, 0] = np.where(seen[..., None], xy, self.x[rows, :, :, 0])
        if self.ema >= 1.0:
            self.out[rows] = xy
        else:
            blend = self.has_out[rows, None, None]
            self.out[rows] = np.where(blend, self.ema * xy + (1 - self.ema) * self.out[rows], xy)
        self.has_out[rows] = True

    def state(self, row: int) -> TrackState:
        return TrackState(
            int(self.track_id[row]),
            STATUS_NAMES[self.status[row]],
            int(self.hits[row]),
            int(self.misses[row]),
            (self.out[row] if self.has_out[row] else np.zeros((17, 2))).astype(np.float32),
            self.seen[row].copy(),
        )


def _as_slice(rows: np.ndarray) -> slice | np.ndarray:
    """Ascending contiguous rows -> a slice (views), else the index array."""
    a, b = int(rows[0]), int(rows[-1])
    if b - a + 1 == len(rows) and (len(rows) < 2 or bool((rows[1:] > rows[:-1]).all())):
        return slice(a, b + 1)  # strictly increasing from a to a + len - 1: exactly a..b
    return rows


def _one(pose: DecodedPose | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if pose is None:
        return np.zeros((1, 17, 2), np.float32), np.zeros((1, 17), np.float32), np.zeros(1, bool)
    # invisible keypoints become non-finite so the tracker's own gate drops them too
    xy = np.where(pose.visible[:, None], pose.xy, np.nan)[None]
    return xy, np.asarray(pose.confidence, np.float32)[None], np.ones(1, bool)


class PoseTracker:
    """One node's (one person's) track; feed it every frame, detection or not."""

    def __init__(self, **kwargs) -> None:
        self.batch = BatchTracker(capacity=1, **kwargs)

    @property
    def status(self) -> str:
        return STATUS_NAMES[self.batch.status[0]]

    def update(self, pose: DecodedPose | None, dt: float | None = None) -> TrackState:
        """Advance one frame with a detection (or ``None`` for no detection)."""
        self.batch.update(np.zeros(1, np.intp), *_one(pose), dt=dt)
        return self.batch.state(0)


class NodeTracker:
    """Tracks by node key over one :class:`BatchTracker`."""

    def __init__(self, **kwargs) -> None:
        self.batch = BatchTracker(**kwargs)
        self.rows: dict[str, int] = {}
        self._last: tuple[list[str], np.ndarray] | None = None  # update_many's last nodes

    def row(self, node: str) -> int:
        r = self.rows.get(node)
        if r is None:
            r = self.rows[node] = len(self.rows)
            self.batch.ensure(r + 1)
        return r

    def update(self, node: str, pose: DecodedPose | None, dt: float | None = None) -> TrackState:
        row = self.row(node)
        self.batch.update(np.array([row], np.intp), *_one(pose), dt=dt)
        return self.batch.state(row)

    def update_many(
        self, nodes: list[str], xy: np.ndarray, confidence: np.ndarray, dt: float | None = None
    ) -> TrackBatch:
        """One frame for each of ``nodes`` (distinct) in one pass."""
        last = self._last
        if last is not None and last[0] == nodes:
            rows = last[1]  # the same nodes as the last frame (the usual case): no lookups
        else:
            rows = np.fromiter((self.row(n) for n in nodes), np.intp, len(nodes))
            self._last = (list(nodes), rows)
        return self.batch.update(rows, xy, confidence, dt=dt)

    def shown(self) -> dict[str, TrackState]:
        """Confirmed, live tracks only (what a display should draw)."""
        st = self.batch.status
        return {n: self.batch.state(r) for n, r in self.rows.items() if st[r] == CONFIRMED}
