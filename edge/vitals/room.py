"""Accumulate empty-room baselines from frames (``csi-edge calibrate``).

Each node's frames go through the vitals estimator with the default (uncalibrated) baseline;
seconds where it sees motion or a breathing-like periodicity are not still and not empty. If
too many seconds are like that, the run is refused for that node (nothing is stored) so a
person in the room never becomes part of 'empty'. Otherwise the still seconds are added to the
node's stored baseline, which is complete once it holds ``required_s`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csi_edge.frames import FrameBatch
from csi_edge.vitals.baseline import Baseline
from csi_edge.vitals.config import VitalsConfig

MAX_MOTION_FRACTION = 0.10
MAX_PRESENCE_FRACTION = 0.20


@dataclass
class NodeOutcome:
    node: str
    accepted: bool
    still_s: float
    seconds: int
    motion_fraction: float
    presence_fraction: float
    message: str


def calibrate_frames(
    frames: FrameBatch,
    baselines: dict[str, Baseline],
    times: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> list[NodeOutcome]:
    """Update ``baselines`` (node key -> Baseline, created when missing) from ``frames``;
    ``keys``: each frame's node key (default the wire key; the inventory's identity keys
    make the baselines the gateway finds for named nodes)."""
    from csi_edge.vitals.run import frame_times, lltf_frames

    if times is None:
        times, _ = frame_times(frames)
    csi = lltf_frames(frames)
    keys = frames.node_keys() if keys is None else keys
    out = []
    for key in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == key)
        idx = idx[np.argsort(times[idx], kind="stable")]
        idx = idx[np.isfinite(times[idx])]
        b = baselines.setdefault(key, Baseline.default(key))
        out.append(calibrate_node(key, times[idx], csi[idx], b))
    return out


def data_fingerprint(t: np.ndarray, csi: np.ndarray) -> str:
    """A short digest of one node's frames: the same capture folded in twice counts once."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(t, np.float64).tobytes())
    h.update(np.ascontiguousarray(csi).tobytes())
    return h.hexdigest()[:24]


def calibrate_node(
    key: str, t: np.ndarray, csi: np.ndarray, b: Baseline, config: VitalsConfig | None = None
) -> NodeOutcome:
    """One node's sorted frames (times [k], CSI [k, 53]) into its baseline ``b`` (unchanged
    when refused)."""
    from csi_edge.vitals.node import NodeVitals

    if len(t) < 2:
        return NodeOutcome(key, False, 0.0, 0, 0.0, 0.0, "too few frames with timestamps")
    fp = data_fingerprint(t, csi)
    if fp in b.fingerprints:
        return NodeOutcome(
            key,
            True,
            0.0,
            0,
            0.0,
            0.0,
            f"this capture is already in the baseline (counted once); {b.still_s:.0f} of "
            f"{b.required_s:.0f} s still data",
        )
    nv = NodeVitals(config or VitalsConfig())
    ticks = np.arange(t[0] + 1.0, t[-1] + 1e-9, 1.0)
    bounds = np.searchsorted(t, ticks, side="right")
    lo = 0
    motion, present, levels, snrs, profiles = [], [], [], [], []
    for tick, hi in zip(ticks, bounds, strict=True):
        nv.push(t[lo:hi], csi[lo:hi])
        lo = hi
        est = nv.estimate(float(tick))
        if est.reason in ("no-data", "bad-frames"):
            continue
        motion.append(est.motion)
        present.append(bool(est.presence) and not est.motion)
        v, prof = nv.calibration_stats(tick - 1.0)
        if v:
            levels.append(float(np.median(v)))
        if est.presence_score > 0:
            snrs.append(est.presence_score)
        if prof is not None:
            profiles.append(prof)
    n = len(motion)
    if n == 0:
        return NodeOutcome(
            key, False, 0.0, 0, 0.0, 0.0, "no usable frames (all NaN, zero or without time)"
        )
    mf, pf = float(np.mean(motion)), float(np.mean(present))
    if mf > MAX_MOTION_FRACTION or pf > MAX_PRESENCE_FRACTION:
        what = (
            f"motion in {mf:.0%}"
            if mf > MAX_MOTION_FRACTION
            else f"a person-like periodic signal in {pf:.0%}"
        )
        return NodeOutcome(
            key,
            False,
            0.0,
            n,
            mf,
            pf,
            f"room not still: {what} of {n} s; leave the room empty and still, then run again",
        )
    still = ~(np.asarray(motion) | np.asarray(present))
    b.add(float(still.sum()), levels, snrs, np.asarray(profiles))
    b.fingerprints = (b.fingerprints + [fp])[-1000:]
    msg = f"{b.still_s:.0f} of {b.required_s:.0f} s still data" + (
        " (complete)" if b.complete else " (run again to add more)"
    )
    return NodeOutcome(key, True, float(still.sum()), n, mf, pf, msg)
