"""Per-node state (csi_edge.nodes.NodeTable): gaps, duplicates, reorder, reboots, wrap, rate, keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.frames import FrameBatch, empty_meta
from csi_edge.nodes import NodeTable


def batch(seqs, t=None, *, node=1, src=0, sources=("10.0.0.5",), n_pairs=64, rssi=-40):
    n = len(seqs)
    m = empty_meta(n)
    m["seq"] = seqs
    m["t_rx"] = np.arange(n) * 0.05 if t is None else t
    m["node_id"] = node
    m["src"] = src
    m["n_pairs"] = n_pairs
    m["rssi"] = rssi
    return FrameBatch(m, np.zeros(0, np.int8), np.zeros(n + 1, np.int64), list(sources))


def one(table: NodeTable) -> dict:
    (only,) = table.summary().values()
    return only


def test_clean_stream_counts_frames_and_rate():
    nt = NodeTable()
    nt.update(batch(range(200), np.arange(200) / 20.0))
    s = one(nt)
    assert (s["frames"], s["lost"], s["duplicates"], s["reordered"], s["reboots"]) == (
        200,
        0,
        0,
        0,
        0,
    )
    assert s["rate_hz"] == pytest.approx(20.0, rel=1e-6)
    assert s["subcarriers"] == {"64": 200}


def test_gaps_are_lost_frames():
    nt = NodeTable()
    nt.update(batch([0, 1, 2, 5, 6, 10]))
    assert one(nt)["lost"] == 2 + 3


def test_duplicates_within_and_across_batches():
    nt = NodeTable()
    nt.update(batch([0, 1, 1, 2]))
    nt.update(batch([2, 3], [0.2, 0.25]))
    s = one(nt)
    assert s["duplicates"] == 2
    assert s["lost"] == 0
    assert s["frames"] == 6


def test_reordered_frame_fills_its_gap():
    nt = NodeTable()
    nt.update(batch([0, 1, 3, 4]))
    assert one(nt)["lost"] == 1
    nt.update(batch([2, 5], [0.21, 0.25]))  # late, 10 ms after the newest frame
    s = one(nt)
    assert s["reordered"] == 1
    assert s["lost"] == 0
    assert s["duplicates"] == 0


def test_reboot_after_silence_restarts_sequence():
    nt = NodeTable()
    t1 = np.arange(30) * 0.05
    t2 = t1[-1] + 2.0 + np.arange(30) * 0.05  # 2 s silence, then seq from 0 again
    nt.update(batch(list(range(30)) + list(range(30)), np.concatenate([t1, t2])))
    s = one(nt)
    assert s["reboots"] == 1
    assert s["duplicates"] == 0 and s["lost"] == 0 and s["reordered"] == 0
    assert s["rate_hz"] == pytest.approx(20.0, rel=1e-6)  # the silence is not part of the rate


def test_large_backward_jump_is_a_reboot_even_without_silence():
    nt = NodeTable(reorder_window=64)
    nt.update(batch(list(range(1000, 1100)) + [0, 1, 2], np.arange(103) * 0.05))
    s = one(nt)
    assert s["reboots"] == 1
    assert s["lost"] == 0


def test_lost_frames_of_an_earlier_boot_are_kept():
    nt = NodeTable()
    nt.update(batch([0, 1, 4, 5], [0, 0.05, 0.1, 0.15]))
    nt.update(batch([0, 1, 2], [3.0, 3.05, 3.1]))
    s = one(nt)
    assert s["reboots"] == 1 and s["lost"] == 2


def test_sequence_wraps_at_2_pow_32():
    nt = NodeTable()
    top = 2**32
    nt.update(batch([top - 3, top - 2]))
    nt.update(batch([top - 1, 0, 2], [0.1, 0.15, 0.2]))
    s = one(nt)
    assert (s["reboots"], s["lost"], s["duplicates"]) == (0, 1, 0)


def test_nodes_keyed_by_source_and_node_id():
    nt = NodeTable()
    srcs = ("192.168.1.20", "192.168.1.21")
    m = batch([0, 0, 1, 1, 0], sources=srcs)
    m.meta["src"] = [0, 1, 0, 1, 0]
    m.meta["node_id"] = [1, 1, 1, 1, 2]  # node id 1 on two boards (the default), node 2 on one
    nt.update(m)
    s = nt.summary()
    assert set(s) == {"192.168.1.20#1", "192.168.1.21#1", "192.168.1.20#2"}
    assert s["192.168.1.20#1"]["frames"] == 2 and s["192.168.1.20#1"]["duplicates"] == 0
    assert s["192.168.1.21#1"]["frames"] == 2
    assert s["192.168.1.20#2"]["node_id"] == 2


def test_layout_histogram_rssi_and_frames_without_sequence():
    nt = NodeTable()
    b = batch([-1] * 6, sources=("/dev/ttyUSB0",), node=-1)
    b.meta["n_pairs"] = [64, 128, 64, 192, 64, 128]
    b.meta["rssi"] = [-40, -42, -44, -46, -48, -50]
    nt.update(b)
    s = nt.summary()["/dev/ttyUSB0"]
    assert s["subcarriers"] == {"64": 3, "128": 2, "192": 1}
    assert s["rssi"] == -50 and s["rssi_mean"] == pytest.approx(-45.0)
    assert s["lost"] == 0 and s["frames"] == 6


def test_offline_after_timeout():
    now = [100.0]
    nt = NodeTable(offline_after_s=5.0, clock=lambda: now[0])
    nt.update(batch([0, 1], [99.0, 99.05]))
    assert one(nt)["online"] is True
    now[0] = 110.0
    assert one(nt)["online"] is False
    # offline use (no clock): "now" is the newest frame in the table
    nt2 = NodeTable(offline_after_s=5.0)
    nt2.update(batch([0], [0.0], node=1))
    nt2.update(batch([0], [60.0], node=2))
    s = nt2.summary()
    assert s["10.0.0.5#1"]["online"] is False and s["10.0.0.5#2"]["online"] is True


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=200),
    st.integers(1, 50),
    st.randoms(use_true_random=False),
)
def test_batching_does_not_change_the_result(steps, chunk, rnd):
    """Any split into batches gives the same counts as one batch, and lost matches the gaps."""
    seqs = np.cumsum(steps).tolist()  # increasing, gaps of 0..4 missing frames
    # a little local reordering (within 3 places) and a few duplicates right after the original
    order = sorted(range(len(seqs)), key=lambda i: i + rnd.uniform(0, 3))
    stream: list[int] = []
    n_dups = 0
    for j, i in enumerate(order):
        stream.append(seqs[i])
        if j % 7 == 3:
            stream.append(seqs[i])
            n_dups += 1
    t = np.arange(len(stream)) * 0.001
    whole = NodeTable()
    whole.update(batch(stream, t))
    parts = NodeTable()
    for a in range(0, len(stream), chunk):
        parts.update(batch(stream[a : a + chunk], t[a : a + chunk]))
    sw, sp = one(whole), one(parts)
    for k in ("frames", "lost", "duplicates", "reordered", "reboots"):
        assert sw[k] == sp[k], k
    assert sw["reboots"] == 0
    assert sw["lost"] == (max(seqs) - min(seqs) + 1) - len(seqs)
    assert sw["duplicates"] == n_dups


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(2**12, 2**31 - 1), st.booleans())
def test_a_far_jump_is_an_outlier_or_a_restart_never_lost_frames(chunk, jump, followed):
    """A sequence far ahead of the node's rate: forged (the old sequence goes on) -> one counted
    outlier, or a restart (the node goes on from it) -> one reboot; never ``jump`` lost frames.
    The same whatever the batching, including a far frame that ends a batch."""
    seqs = list(range(100))
    far = [(99 + jump) % 2**32]
    after = [(far[0] + 1 + i) % 2**32 for i in range(50)] if followed else list(range(100, 150))
    stream = seqs + far + after
    t = np.arange(len(stream)) * 0.02
    for size in (len(stream), chunk):
        nt = NodeTable()
        for a in range(0, len(stream), size):
            nt.update(batch(stream[a : a + size], t[a : a + size]))
        s = one(nt)
        assert s["frames"] == len(stream) and s["lost"] == 0 and s["duplicates"] == 0
        assert (s["reboots"], s["seq_outliers"]) == ((1, 0) if followed else (0, 1))


def test_a_long_silence_allows_a_proportionally_long_gap():
    """A node unreachable for 100 s at 20 Hz really lost ~2000 frames: that is not a jump."""
    nt = NodeTable()
    nt.update(batch(range(40), np.arange(40) / 20.0))
    nt.update(batch(range(2040, 2060), 100.0 + np.arange(20) / 20.0))
    s = one(nt)
    assert (s["lost"], s["reboots"], s["seq_outliers"]) == (2000, 0, 0)


def test_rate_is_unknown_until_the_frames_span_a_second_when_live():
    nt = NodeTable(clock=lambda: 0.0)
    nt.update(batch(range(500), np.linspace(0, 0.001, 500)))  # a burst: 500 frames in 1 ms
    assert one(nt)["rate_hz"] is None
    nt.update(batch(range(500, 550), 1.0 + np.arange(50) / 50.0))  # then 50 Hz for a second
    assert one(nt)["rate_hz"] < 600  # frames over the 2 s they span, not 500,000 Hz
