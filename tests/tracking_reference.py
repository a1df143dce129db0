"""FROZEN reference: the per-node tracker as shipped before the batched one (2026-12-07).

Kept verbatim so tests can check the batched tracker against it (within 1e-5). Do not edit.
"""

# Original module docstring:
# * A constant-velocity Kalman filter per keypoint and axis (process noise 0.3, measurement noise
#   0.08, normalized units), vectorized over the 17 keypoints. Gated (invisible) keypoints are
#   predicted, not updated.
# * A track is *tentative* until it has 2 hits, then *confirmed*; after 5 consecutive misses it is
#   *lost* and the next hit starts a new track. Only confirmed, live tracks are reported.
# * Bone lengths may change by at most +-20 % per frame: each bone vector keeps its direction,
#   its length is clamped, and the skeleton is rebuilt from the root along the bone tree.
# * Optional exponential smoothing of the reported pose (``ema`` = weight of the new pose).
#
# Why hand-written: the filter is 4x4 per keypoint and has to be vectorized over keypoints with
# per-keypoint missing measurements; filterpy and friends are per-object and add a dependency.


from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csi_edge.pose.keypoints import BONES, DecodedPose, gate

_A = np.array([a for a, _ in BONES])
_B = np.array([b for _, b in BONES])


_ROOT = BONES[0][0]


def _path_matrix() -> np.ndarray:
    """[17, bones]: entry (j, i) is 1 when bone i lies on the path from the root to keypoint j."""
    paths = np.zeros((17, len(BONES)))
    for i, (a, b) in enumerate(BONES):  # BONES lists every parent before its children
        paths[b] = paths[a]
        paths[b, i] = 1.0
    return paths


_PATHS = _path_matrix()


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


class PoseTracker:
    """One node's (one person's) track; feed it every frame, detection or not."""

    def __init__(
        self,
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
        self.next_id = 1
        self._new_track(None)
        self.next_id = 1  # the placeholder above is not a track; the first hit gets id 1
        self.status = "lost"

    def _new_track(self, pose: DecodedPose | None) -> None:
        self.track_id = self.next_id
        self.next_id += 1
        self.hits = self.misses = 0
        self.status = "tentative"
        self.x = np.zeros((17, 2, 2))  # [kp, axis, (pos, vel)]
        self.P = np.tile(np.diag([1.0, 1.0]), (17, 1, 1))  # shared by both axes, per keypoint
        self.seen = np.zeros(17, bool)
        self.bones: np.ndarray | None = None
        self.out: np.ndarray | None = None

    # -- Kalman ------------------------------------------------------------------------------
    def _predict(self, dt: float) -> None:
        F = np.array([[1.0, dt], [0.0, 1.0]])
        Q = self.q * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
        self.x = self.x @ F.T
        self.P = F @ self.P @ F.T + Q

    def _update(self, z: np.ndarray, mask: np.ndarray) -> None:
        """Position measurement ``z`` [17, 2] for keypoints ``mask``; first sightings initialise."""
        first = mask & ~self.seen
        if first.any():
            self.x[first, :, 0] = z[first]
            self.x[first, :, 1] = 0.0
            self.P[first] = np.diag([self.r, 1.0])
        upd = mask & self.seen
        if upd.any():
            P = self.P[upd]
            s = P[:, 0, 0] + self.r  # innovation variance (same for x and y)
            k = P[:, :, 0] / s[:, None]  # gain [n, 2]
            innov = z[upd] - self.x[upd, :, 0]  # [n, 2]
            self.x[upd] += innov[:, :, None] * k[:, None, :]
            self.P[upd] = P - k[:, :, None] * P[:, 0, None, :]
        self.seen |= mask

    # -- bones -------------------------------------------------------------------------------
    def _clamp_bones(self, xy: np.ndarray) -> np.ndarray:
        """Clamp each bone vector's length to +-tol of last frame's, keep its direction, and
        rebuild the skeleton from the root (one matmul with the root->keypoint path matrix)."""
        if self.bones is None:
            self.bones = self._lengths(xy)
            return xy
        d = xy[_B] - xy[_A]  # [bones, 2]
        length = np.hypot(d[:, 0], d[:, 1])
        prev = self.bones
        ok = np.isfinite(prev) & (prev > 1e-6) & (length > 1e-9)
        safe_prev = np.where(ok, prev, 1.0)
        target = np.clip(length, safe_prev * (1 - self.tol), safe_prev * (1 + self.tol))
        d *= np.where(ok, target / np.where(ok, length, 1.0), 1.0)[:, None]
        out = xy[_ROOT] + _PATHS @ d
        self.bones = self._lengths(out)
        return out

    def _lengths(self, xy: np.ndarray) -> np.ndarray:
        d = xy[_B] - xy[_A]
        both = self.seen[_A] & self.seen[_B]
        return np.where(both, np.hypot(d[:, 0], d[:, 1]), np.nan)

    # -- per frame ---------------------------------------------------------------------------
    def update(self, pose: DecodedPose | None, dt: float | None = None) -> TrackState:
        """Advance one frame with a detection (or ``None`` for no detection)."""
        dt = self.dt if dt is None else dt
        gated = gate(pose, self.conf_gate) if pose is not None else None
        hit = gated is not None and int(gated.visible.sum()) >= self.min_keypoints
        if hit and self.status == "lost":
            self._new_track(gated)
        if self.status == "lost":
            return self._state()
        self._predict(dt)
        if hit:
            self.hits += 1
            self.misses = 0
            self._update(gated.xy.astype(np.float64), gated.visible)
            if self.status == "tentative" and self.hits >= self.confirm_hits:
                self.status = "confirmed"
        else:
            self.misses += 1
            if self.misses >= self.max_misses or self.status == "tentative":
                self.status = "lost"
                return self._state()
        xy = self._clamp_bones(np.clip(self.x[:, :, 0], 0.0, 1.0))
        self.x[:, :, 0] = np.where(self.seen[:, None], xy, self.x[:, :, 0])
        if self.out is None or self.ema >= 1.0:
            self.out = xy
        else:
            self.out = self.ema * xy + (1 - self.ema) * self.out
        return self._state()

    def _state(self) -> TrackState:
        xy = self.out if self.out is not None else np.zeros((17, 2))
        return TrackState(
            self.track_id,
            self.status,
            self.hits,
            self.misses,
            xy.astype(np.float32),
            self.seen.copy(),
        )


class NodeTracker:
    """One :class:`PoseTracker` per node key; ``update`` returns the node's state."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.tracks: dict[str, PoseTracker] = {}

    def update(self, node: str, pose: DecodedPose | None, dt: float | None = None) -> TrackState:
        tr = self.tracks.get(node)
        if tr is None:
            tr = self.tracks[node] = PoseTracker(**self.kwargs)
        return tr.update(pose, dt)

    def shown(self) -> dict[str, TrackState]:
        """Confirmed, live tracks only (what a display should draw)."""
        return {n: t._state() for n, t in self.tracks.items() if t.status == "confirmed"}
