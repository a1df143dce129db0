"""How many nodes this machine sustains, measured through the gateway's own path.

Each tick (1/rate s) every node sends one raw CSI datagram (RuView ``0xC5110001``, 128 pairs:
LLTF + HT-LTF, as an ESP32-S3 on HT20 sends); the tick's datagrams are decoded in one call (as
the UDP source batches what arrived), accounted by ingest and routed by the gateway: per-node
vitals buffers and the pose runtime + tracker. Once per simulated second the gateway builds
its reports (the DSP vitals estimate per node and the vitals model). The CPU time this process
spends per simulated second is the load: 1.0 = one core fully busy. Every frame is processed
(nothing is dropped or sampled); a load above 1 means the gateway would fall behind.

Vitals estimates cost more once their windows are full, so each measurement first fills them
(``warm_s`` seconds of frames, pose off for all but the last seconds, which is all the temporal
window needs) and then measures ``measure_s`` seconds at steady state.

Only the gateway's public interfaces are used here, so ``scripts/bench_capacity.py`` can run
this same file against an older checkout as the baseline.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: load that still counts as "sustained": leaves a fifth of the core for the kernel's receive
#: path, the asyncio loop and the sinks, which this measurement does not include
SUSTAINED_LOAD = 0.8
_SEQ = struct.Struct("<I")


def _datagrams(n_nodes: int, n_ticks: int, seed: int = 0) -> list[list[bytes]]:
    """``n_ticks`` ticks of one 128-pair raw frame per node (int8 CSI that moves a little)."""
    from csi_edge.codecs.ruview import encode_raw_frame

    rng = np.random.default_rng(seed)
    base = rng.integers(-40, 40, (n_nodes, 128, 2))
    ticks = []
    for k in range(n_ticks):
        wobble = rng.integers(-3, 4, (n_nodes, 128, 2))
        csi = np.clip(base + wobble, -127, 127).astype(np.int8)
        ticks.append([encode_raw_frame(j + 1, k, csi[j]) for j in range(n_nodes)])
    return ticks


def measure_load(
    n_nodes: int,
    rate_hz: float = 50.0,
    pose: Any = None,
    vitals_model: Any = None,
    warm_s: float = 32.0,
    measure_s: float = 3.0,
    pose_warm_s: float = 4.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """CPU seconds per simulated second for ``n_nodes`` at ``rate_hz`` (see module docstring)."""
    from csi_edge.codecs.ruview import RuViewDecoder
    from csi_edge.config import GatewayConfig
    from csi_edge.gateway import Gateway

    cfg = GatewayConfig()
    # every simulated node is admitted at once (the flood caps of ingest.max_* would refuse them)
    cfg.ingest.max_nodes = cfg.ingest.max_new_nodes_per_min = max(n_nodes, 1) * 2
    gw = Gateway(cfg, [], [], pose, vitals_model)
    dec = RuViewDecoder()
    ticks_per_s = int(round(rate_hz))
    n_warm = int(warm_s * ticks_per_s)
    n_meas = max(1, int(measure_s * ticks_per_s))
    pose_from = max(0, n_warm - int(pose_warm_s * ticks_per_s))
    sources = [f"10.0.{j // 250}.{j % 250 + 2}:5005" for j in range(n_nodes)]
    # one second of CSI, re-sent with each tick's sequence number patched in (header bytes
    # 12..15): the link statistics see a clean stream and memory stays flat at 256 nodes
    block = [[bytearray(d) for d in tick] for tick in _datagrams(n_nodes, ticks_per_s)]
    t0 = 1_700_000_000.0
    cpu = 0.0
    for k in range(n_warm + n_meas):
        if k == n_warm and progress:
            progress(f"{n_nodes} nodes: measuring")
        now = t0 + k / rate_hz
        gw.pose = pose if k >= pose_from else None
        tick = block[k % ticks_per_s]
        for d in tick:
            _SEQ.pack_into(d, 12, k)
        c0 = time.process_time() if k >= n_warm else 0.0
        result = dec.decode([bytes(d) for d in tick], np.full(n_nodes, now), sources)
        gw.ingest.emit(result)
        if (k + 1) % ticks_per_s == 0:
            gw.reports(now)
        if k >= n_warm:
            cpu += time.process_time() - c0
    seconds = n_meas / rate_hz
    return {
        "nodes": n_nodes,
        "rate_hz": rate_hz,
        "frames": n_nodes * n_meas,
        "load": round(cpu / seconds, 4),
        "cpu_ms_per_frame": round(1e3 * cpu / (n_nodes * n_meas), 4),
        "pose_frames": int(getattr(gw, "pose_frames", 0)),
    }


def sustained_nodes(
    rate_hz: float = 50.0,
    pose: Callable[[], Any] | None = None,
    vitals_model: Callable[[], Any] | None = None,
    start: int = 4,
    limit: int = 256,
    warm_s: float = 32.0,
    measure_s: float = 3.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Double the node count from ``start`` until the load passes :data:`SUSTAINED_LOAD` (or
    ``limit``); the verdict is the largest count measured under it. ``pose``/``vitals_model``
    are factories: every step gets fresh models, as a fresh gateway would."""
    steps = []
    n = start
    while n <= limit:
        if progress:
            progress(f"{n} nodes at {rate_hz:g} Hz")
        r = measure_load(
            n,
            rate_hz,
            pose() if pose else None,
            vitals_model() if vitals_model else None,
            warm_s=warm_s,
            measure_s=measure_s,
            progress=progress,
        )
        steps.append(r)
        if r["load"] > SUSTAINED_LOAD:
            break
        n *= 2
    ok = [s for s in steps if s["load"] <= SUSTAINED_LOAD]
    best = ok[-1] if ok else None
    over = next((s for s in steps if s["load"] > SUSTAINED_LOAD), None)
    return {
        "rate_hz": rate_hz,
        "sustained_nodes": best["nodes"] if best else 0,
        "sustained_load": best["load"] if best else None,
        "first_over": over and {"nodes": over["nodes"], "load": over["load"]},
        "reached_limit": over is None,
        "threshold_load": SUSTAINED_LOAD,
        "warm_s": warm_s,
        "measure_s": measure_s,
        "steps": steps,
    }


def verdict(cap: dict[str, Any], with_pose: bool, with_vitals: bool) -> str:
    """One sentence a person can act on."""
    parts = ["pose"] if with_pose else []
    parts += ["the vitals model"] if with_vitals else []
    what = ", ".join(parts + ["DSP vitals"]) if parts else "DSP vitals"
    n, rate = cap["sustained_nodes"], cap["rate_hz"]
    if n == 0:
        s = cap["steps"][0]
        return (
            f"this machine does NOT sustain {s['nodes']} nodes at {rate:g} Hz with {what}: "
            f"load {s['load']:.2f} of one core (limit {cap['threshold_load']:.1f})"
        )
    tail = (
        f"; {cap['first_over']['nodes']} nodes would need {cap['first_over']['load']:.2f}"
        if cap["first_over"]
        else " (the largest count tried)"
    )
    return (
        f"this machine sustains {n} nodes at {rate:g} Hz with {what}, every frame processed, "
        f"on one core (load {cap['sustained_load']:.2f}{tail})"
    )
