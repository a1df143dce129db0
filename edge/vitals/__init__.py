"""Presence, motion, breathing and heart rate per node, against per-node empty-room baselines.

* :class:`NodeVitals` streaming estimator: ``push(t_rx, csi [k, 53])``, ``estimate(now)``;
* :func:`run_frames` a whole capture through it, one estimate per second per node;
* :func:`edge_vitals_report` the node's own on-board estimate (``0xC5110002``/``0xC5110004``).
"""

from csi_edge.vitals.config import VitalsConfig
from csi_edge.vitals.edge_packets import EDGE_VITALS_KINDS, edge_vitals_report
from csi_edge.vitals.estimate import VitalsEstimate
from csi_edge.vitals.node import NodeVitals
from csi_edge.vitals.run import frame_times, lltf_frames, run_frames

__all__ = [
    "EDGE_VITALS_KINDS",
    "NodeVitals",
    "VitalsConfig",
    "VitalsEstimate",
    "edge_vitals_report",
    "frame_times",
    "lltf_frames",
    "run_frames",
]
