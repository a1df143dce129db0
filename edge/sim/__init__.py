"""CSI channel simulator with ground truth (tests, benchmarks, demo, simulated nodes, training).

``simulate(scenario, seed) -> SimResult`` renders ESP32-style frames (a FrameBatch with receive
times) and ground truth (breathing/heart BPM, presence, motion, COCO-17 keypoints per instant);
``preset(name, duration)`` gives ready scenarios; ``NodeContent`` is the ``csi_fn(t, seq)``
adapter for simulated nodes; ``write_capture`` writes a pcap plus ``.truth.npz`` sidecar.
"""

from csi_edge.sim.io import load_truth, truth_path, write_capture
from csi_edge.sim.person import ACTIVITIES
from csi_edge.sim.scenario import PRESETS, NodeContent, Scenario, SimResult, Truth, preset, simulate

__all__ = [
    "ACTIVITIES",
    "PRESETS",
    "NodeContent",
    "Scenario",
    "SimResult",
    "Truth",
    "load_truth",
    "preset",
    "simulate",
    "truth_path",
    "write_capture",
]
