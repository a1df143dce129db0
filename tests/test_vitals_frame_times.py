"""Frame times for offline runs when a capture has no receive times (csi_edge.vitals.run)."""

from __future__ import annotations

import numpy as np

from csi_edge.sim import preset, simulate
from csi_edge.vitals.run import frame_times


def test_the_node_clock_is_unwrapped_where_its_u32_microseconds_wrap():
    frames = simulate(preset("still", 6, rate_hz=20), 1).frames
    n = len(frames)
    start = 2**32 - 2_000_000  # 2 s before the u32 microsecond clock wraps
    true_us = start + np.arange(n, dtype=np.int64) * 50_000
    frames.meta["t_rx"] = 0.0
    frames.meta["local_us"] = true_us % 2**32
    assert (np.diff(frames.meta["local_us"].astype(np.int64)) < 0).any()  # it did wrap
    t, source = frame_times(frames)
    assert source == "local_us"
    np.testing.assert_allclose(t, true_us / 1e6)
