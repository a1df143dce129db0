"""Pose post-processing: COCO-17 keypoint decoding, confidence gating, per-node tracking."""

from csi_edge.pose.keypoints import BONES, COCO17, DecodedPose, decode, gate
from csi_edge.pose.tracking import NodeTracker, PoseTracker, TrackState

__all__ = [
    "BONES",
    "COCO17",
    "DecodedPose",
    "NodeTracker",
    "PoseTracker",
    "TrackState",
    "decode",
    "gate",
]
