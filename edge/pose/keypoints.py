"""COCO-17 keypoints: decoding model outputs and gating them by confidence.

Model outputs are flat ``x0, y0, x1, y1, ...`` in normalized image coordinates [0, 1] (origin
top-left, y down), plus an optional per-keypoint confidence (MODEL_SPEC.md "Keypoints and PCK").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COCO17 = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)  # fmt: skip

#: Skeleton as a tree, each (parent, child) after its parent: the order the bone clamp walks.
BONES = (
    (5, 6), (5, 11), (6, 12),  # torso
    (5, 7), (7, 9), (6, 8), (8, 10),  # arms
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
    (5, 0), (0, 1), (0, 2), (1, 3), (2, 4),  # head
)  # fmt: skip


@dataclass
class DecodedPose:
    """One person's keypoints: ``xy`` [17, 2], ``confidence`` [17], ``visible`` [17] bool."""

    xy: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray

    @property
    def score(self) -> float:
        """Mean confidence of the visible keypoints (0 when none is)."""
        return float(self.confidence[self.visible].mean()) if self.visible.any() else 0.0

    def to_json(self) -> dict:
        return {
            "keypoints": [
                {
                    "name": n,
                    "x": round(float(x), 4),
                    "y": round(float(y), 4),
                    "confidence": round(float(c), 3),
                    "visible": bool(v),
                }
                for n, (x, y), c, v in zip(
                    COCO17, self.xy, self.confidence, self.visible, strict=True
                )
            ],
            "score": round(self.score, 3),
        }


def decode(
    keypoints: np.ndarray, confidence: np.ndarray | None = None, default_confidence: float = 1.0
) -> DecodedPose:
    """Flat [34] (or [17, 2]) keypoints + [17] confidence -> :class:`DecodedPose`, clipped to
    [0, 1]. Models without a confidence output (RuView pose_v1) get ``default_confidence``."""
    xy = np.clip(np.asarray(keypoints, np.float32).reshape(17, 2), 0.0, 1.0)
    if confidence is None:
        conf = np.full(17, default_confidence, np.float32)
    else:
        conf = np.asarray(confidence, np.float32).reshape(17)
    return DecodedPose(xy, conf, np.isfinite(xy).all(axis=1) & np.isfinite(conf))


def gate(pose: DecodedPose, threshold: float = 0.3) -> DecodedPose:
    """Mark keypoints below ``threshold`` confidence invisible (they are not measurements)."""
    return DecodedPose(pose.xy, pose.confidence, pose.visible & (pose.confidence >= threshold))
