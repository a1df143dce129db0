"""A person in the room: activity timeline -> 3D COCO-17 skeleton -> image keypoints.

Room coordinates in metres: x across the room, y away from the camera, z up. The camera sits at
``CAMERA`` looking along +y; keypoints are projected to normalized image coordinates in [0,1]
(origin top-left, x right, y down), COCO-17 order (MODEL_SPEC.md "Keypoints and PCK").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# New activities go at the end: the index is stored in truth files and training data.
ACTIVITIES = ("empty", "standing", "sitting", "walking", "waving", "swaying")
MOVING = {"walking", "waving", "swaying"}
CAMERA = np.array([2.0, -2.5, 1.1])
FOCAL = 1.1  # normalized focal length: a 1.7 m person 4 m away spans ~0.45 of the image

# Standing skeleton relative to the feet midpoint (x, y, z), COCO-17 order.
_STAND = np.array(
    [
        [0.0, -0.08, 1.62],  # nose
        [-0.03, -0.06, 1.66],
        [0.03, -0.06, 1.66],  # eyes
        [-0.07, 0.0, 1.64],
        [0.07, 0.0, 1.64],  # ears
        [-0.19, 0.0, 1.42],
        [0.19, 0.0, 1.42],  # shoulders
        [-0.23, 0.0, 1.12],
        [0.23, 0.0, 1.12],  # elbows
        [-0.25, -0.02, 0.86],
        [0.25, -0.02, 0.86],  # wrists
        [-0.11, 0.0, 0.95],
        [0.11, 0.0, 0.95],  # hips
        [-0.11, 0.0, 0.52],
        [0.11, 0.0, 0.52],  # knees
        [-0.11, 0.0, 0.08],
        [0.11, 0.0, 0.08],  # ankles
    ]
)


def _sitting() -> np.ndarray:
    s = _STAND.copy()
    s[:11, 2] -= 0.45  # upper body lowered onto a chair
    s[11:13, 2] = 0.5
    s[13:15] = [[-0.11, -0.42, 0.5], [0.11, -0.42, 0.5]]  # knees forward
    s[15:17] = [[-0.11, -0.45, 0.08], [0.11, -0.45, 0.08]]
    s[9:11, 1] -= 0.25  # hands on the lap
    s[9:11, 2] = 0.6
    return s


_SIT = _sitting()


@dataclass
class Segment:
    activity: str
    duration_s: float


@dataclass
class Person:
    """Where the person is and what they do, as closed-form functions of time."""

    segments: list[Segment]
    position: np.ndarray = field(default_factory=lambda: np.array([2.0, 1.5, 0.0]))
    walk_speed: float = 0.9
    seed_phase: float = 0.0

    def activity_index(self, t: np.ndarray) -> np.ndarray:
        """Index into ACTIVITIES of the activity at each time (last segment extends forever)."""
        ends = np.cumsum([s.duration_s for s in self.segments])
        seg = np.minimum(np.searchsorted(ends, t, side="right"), len(self.segments) - 1)
        codes = np.array([ACTIVITIES.index(s.activity) for s in self.segments])
        return codes[seg]

    def skeleton(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(joints [T,17,3] m, present [T] bool, moving [T] bool)."""
        t = np.asarray(t, np.float64)
        act = self.activity_index(t)
        joints = np.repeat(_STAND[None], len(t), axis=0)
        sit = act == ACTIVITIES.index("sitting")
        joints[sit] = _SIT
        sway = 0.004 * np.sin(
            2 * np.pi * 0.07 * t + self.seed_phase
        )  # still people still sway a bit
        base = np.repeat(self.position[None], len(t), axis=0)
        base[:, 0] += sway
        walk = act == ACTIVITIES.index("walking")
        if walk.any():
            tw = t[walk]
            amp = 1.0
            w = self.walk_speed / amp
            base[walk, 0] = self.position[0] + amp * np.sin(w * tw + self.seed_phase)
            base[walk, 1] = self.position[1] + 0.4 * np.sin(0.5 * w * tw)
            stride = np.sin(2 * np.pi * 0.9 * tw)
            jw = joints[walk]
            jw[:, [13, 15], 1] += 0.25 * stride[:, None] * [0.5, 1.0]
            jw[:, [14, 16], 1] -= 0.25 * stride[:, None] * [0.5, 1.0]
            jw[:, [7, 9], 1] -= 0.15 * stride[:, None] * [0.5, 1.0]
            jw[:, [8, 10], 1] += 0.15 * stride[:, None] * [0.5, 1.0]
            jw[:, :, 2] += 0.02 * np.abs(stride)[:, None]
            joints[walk] = jw
        wave = act == ACTIVITIES.index("waving")
        if wave.any():
            ph = 2 * np.pi * 1.3 * t[wave]
            jw = joints[wave]
            sh = jw[:, 6]
            jw[:, 8] = sh + np.stack([0.25 + 0 * ph, -0.05 + 0 * ph, 0.15 + 0.05 * np.sin(ph)], -1)
            jw[:, 10] = jw[:, 8] + np.stack([0.15 * np.sin(ph), -0.05 + 0 * ph, 0.25 + 0 * ph], -1)
            jw[:, 7] = jw[:, 5] + np.stack(
                [-0.2 - 0.05 * np.sin(ph), 0 * ph, 0.05 * np.cos(ph)], -1
            )
            jw[:, 9] = jw[:, 7] + np.stack([-0.1 * np.sin(ph), -0.05 + 0 * ph, 0.25 + 0 * ph], -1)
            joints[wave] = jw
        swayed = act == ACTIVITIES.index("swaying")
        if swayed.any():
            # seated, the upper body drifting without rhythm (fidgeting, shifting weight)
            joints[swayed] = _SIT
            joints[swayed, :13] += self._random_sway(t[swayed])[:, None, :]
        joints = joints + base[:, None, :]
        present = act != ACTIVITIES.index("empty")
        moving = walk | wave | swayed
        return joints, present, moving


    def _random_sway(self, t: np.ndarray) -> np.ndarray:
        """Upper-body displacement [T, 3] m without a rhythm: 40 sinusoids at log-spread
        frequencies 0.05-0.8 Hz (overlapping the breathing band), amplitude ~1/f, random
        phases fixed by ``seed_phase``; ~2 cm RMS across, ~1.5 cm towards the camera. A pure
        function of time, like every other motion here."""
        rng = np.random.default_rng(int(self.seed_phase * 1e6) & 0xFFFFFFFF)
        f = np.exp(rng.uniform(np.log(0.05), np.log(0.8), 40))
        ph = rng.uniform(0, 2 * np.pi, (3, 40))
        a = 1.0 / f
        a *= np.sqrt(2.0 / np.sum(a * a))  # unit RMS per axis
        wave = np.sin(2 * np.pi * np.asarray(t)[:, None, None] * f + ph)  # [T, 3, 40]
        return (wave * a).sum(axis=2) * np.array([0.02, 0.015, 0.005])


def project(joints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """3D joints [T,17,3] -> normalized image keypoints [T,34] (x0,y0,x1,y1,...); zeros if absent."""
    rel = joints - CAMERA
    depth = np.maximum(rel[..., 1], 0.3)
    u = 0.5 + FOCAL * rel[..., 0] / depth
    v = 0.5 - FOCAL * rel[..., 2] / depth
    kp = np.clip(np.stack([u, v], -1), 0.0, 1.0).reshape(len(joints), 34)
    kp[~present] = 0.0
    return kp.astype(np.float32)
