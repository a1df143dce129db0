"""Offline runs: a whole FrameBatch through per-node :class:`NodeVitals`, one estimate per second.

Used by ``csi-edge vitals``, ``csi-edge calibrate CAPTURE``, the tests and the benchmarks: the
frames of each node are pushed in one-second chunks, exactly as the gateway daemon would push
them live, and an estimate is taken at the end of every second of capture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from csi_edge.frames import FrameBatch
from csi_edge.layout import lltf_canonical
from csi_edge.vitals.baseline import Baseline
from csi_edge.vitals.config import VitalsConfig
from csi_edge.vitals.estimate import VitalsEstimate
from csi_edge.vitals.node import NodeVitals


def lltf_frames(frames: FrameBatch) -> np.ndarray:
    """complex64 [N, 53] LLTF grid (-26..+26) of every frame, by :func:`csi_edge.layout.lltf_canonical`
    (which knows HT40 and odd lengths); DC and missing bins are 0."""
    return np.asarray(lltf_canonical(frames), np.complex64)


def frame_times(frames: FrameBatch, assume_rate_hz: float | None = None) -> tuple[np.ndarray, str]:
    """Receive times for a batch, and where they came from.

    Captures without receive times (all zero / NaN) fall back to the node's own microsecond
    clock (``local_us``); with neither, only an explicit ``assume_rate_hz`` gives times.
    """
    t = frames.meta["t_rx"].astype(np.float64)
    if len(t) and np.isfinite(t).all() and np.ptp(t) > 0:
        return t, "t_rx"
    us = frames.meta["local_us"].astype(np.float64)
    if len(us) and (us >= 0).all() and np.ptp(us) > 0:
        return _unwrap_u32_us(us, frames.node_keys()) / 1e6, "local_us"
    if assume_rate_hz:
        return np.arange(len(frames)) / float(assume_rate_hz), "assumed"
    return np.full(len(frames), np.nan), "none"


def _unwrap_u32_us(us: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each node's u32 microsecond clock unwrapped in capture order: it wraps every ~71.6 min,
    and a capture longer than that would otherwise jump back in time mid-recording."""
    out = us.copy()
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        back = np.diff(us[idx]) < -(2.0**31)  # a step back by more than half the range: a wrap
        out[idx[1:]] += np.cumsum(back) * 2.0**32
    return out


def run_frames(
    frames: FrameBatch,
    config: VitalsConfig | None = None,
    baseline_for: Callable[[str], Baseline] | None = None,
    every_s: float = 1.0,
    times: np.ndarray | None = None,
    csi: np.ndarray | None = None,
) -> Iterator[tuple[str, VitalsEstimate]]:
    """Yield ``(node key, estimate)`` every ``every_s`` of capture for every node, in time order.

    Estimates start one interval after the capture's first frame and cover the whole capture
    for every node (a node with no frames yet reports reason ``no-data``).
    """
    if len(frames) == 0:
        return
    if times is None:
        times, _ = frame_times(frames)
    csi = lltf_frames(frames) if csi is None else csi
    keys = frames.node_keys()
    good_t = times[np.isfinite(times)]
    if len(good_t) == 0:
        return
    t0, t1 = float(good_t.min()), float(good_t.max())
    n_steps = max(int(np.ceil((t1 - t0) / every_s - 1e-9)), 1)
    ticks = t0 + every_s * np.arange(1, n_steps + 1)
    nodes: dict[str, tuple[NodeVitals, np.ndarray]] = {}
    for key in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == key)
        idx = idx[np.argsort(times[idx], kind="stable")]
        nv = NodeVitals(config, baseline_for(key) if baseline_for else None)
        nodes[key] = (nv, idx)
    bounds = {k: np.searchsorted(times[idx], ticks, side="right") for k, (_, idx) in nodes.items()}
    done = dict.fromkeys(nodes, 0)
    for j, tick in enumerate(ticks):
        for key, (nv, idx) in nodes.items():
            hi = bounds[key][j]
            if hi > done[key]:
                sel = idx[done[key] : hi]
                nv.push(times[sel], csi[sel])
                done[key] = hi
            yield key, nv.estimate(float(tick))


def run_node(
    t: np.ndarray,
    csi: np.ndarray,
    config: VitalsConfig | None = None,
    baseline: Baseline | None = None,
    every_s: float = 1.0,
) -> Iterator[VitalsEstimate]:
    """One node's sorted frames (times [k], CSI [k, S]) through :class:`NodeVitals`, pushed in
    ``every_s`` chunks with an estimate after each, as the gateway does live."""
    t = np.asarray(t, np.float64)
    if len(t) == 0:
        return
    nv = NodeVitals(config, baseline)
    ticks = float(t[0]) + every_s * np.arange(
        1, max(int(np.ceil((t[-1] - t[0]) / every_s - 1e-9)), 1) + 1
    )
    bounds = np.searchsorted(t, ticks, side="right")
    lo = 0
    for tick, hi in zip(ticks, bounds, strict=True):
        if hi > lo:
            nv.push(t[lo:hi], csi[lo:hi])
            lo = hi
        yield nv.estimate(float(tick))
