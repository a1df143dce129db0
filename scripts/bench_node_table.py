#!/usr/bin/env python3
"""Benchmark: NodeTable.update (per-node counters and sequence bookkeeping) per receive batch.

Batches of one frame per node (how UDP flushes arrive at 50 Hz per node), after 10 s of history,
timed for the current code and, in the same run, with the sequence-jump ceiling recomputed on
every call as before it was cached (``NodeTable._ceiling_hz``):

    python scripts/bench_node_table.py
"""

from __future__ import annotations

import time

import numpy as np

import csi_edge.nodes as nodes
from csi_edge.frames import FrameBatch, empty_meta


def _batch(n_nodes: int, k: int, t: float) -> FrameBatch:
    meta = empty_meta(n_nodes)
    meta["src"] = 0
    meta["node_id"] = np.arange(n_nodes)
    meta["seq"] = k
    meta["t_rx"] = t
    meta["n_pairs"] = 64
    meta["rssi"] = -40
    return FrameBatch(meta, np.zeros(0, np.int8), np.zeros(n_nodes + 1, np.int64), ["udp"])


def _uncached(self, st) -> float:
    rate = st.rate_hz(self.rate_window_s, self.min_rate_span_s)
    return self.jump_rate_hz if rate is None else max(4.0 * rate, 100.0)


def per_batch_us(n_nodes: int, uncached: bool) -> float:
    cached = nodes.NodeTable._ceiling_hz
    if uncached:
        nodes.NodeTable._ceiling_hz = _uncached
    try:
        table = nodes.NodeTable()
        batches = [_batch(n_nodes, k, 1000.0 + k / 50.0) for k in range(1500)]
        for b in batches[:500]:
            table.update(b)
        t0 = time.perf_counter()
        for b in batches[500:]:
            table.update(b)
        return (time.perf_counter() - t0) / 1000 * 1e6
    finally:
        nodes.NodeTable._ceiling_hz = cached


def main() -> None:
    for n in (4, 16, 64):
        before = min(per_batch_us(n, True) for _ in range(3))
        after = min(per_batch_us(n, False) for _ in range(3))
        print(
            f"{n:3d} nodes: uncached {before:6.0f} us/batch, cached {after:6.0f} us/batch, {before / after:.2f}x"
        )


if __name__ == "__main__":
    main()
