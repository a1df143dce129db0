"""FrameBatch: the one in-memory representation (slicing, joining, per-node grouping, I/Q order)."""

from __future__ import annotations

import numpy as np
import pytest

from csi_edge.frames import FrameBatch, empty_meta, pairs_to_complex


def _batch(lengths, sources, src_idx, node_ids):
    meta = empty_meta(len(lengths))
    meta["n_pairs"] = lengths
    meta["src"] = src_idx
    meta["node_id"] = node_ids
    meta["seq"] = np.arange(len(lengths))
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(2 * np.asarray(lengths), out=offsets[1:])
    iq = (np.arange(offsets[-1]) % 251 - 125).astype(np.int8)
    return FrameBatch(meta, iq, offsets, list(sources))


def test_subset_gathers_the_right_bytes():
    b = _batch([64, 128, 64], ["a"], [0, 0, 0], [1, 1, 1])
    sub = b[np.array([2, 0])]
    assert sub.meta["seq"].tolist() == [2, 0]
    assert np.array_equal(sub.raw(0), b.raw(2)) and np.array_equal(sub.raw(1), b.raw(0))
    assert np.array_equal(b[b.meta["n_pairs"] == 128].raw(0), b.raw(1))


def test_concat_merges_source_tables():
    a = _batch([64], ["10.0.0.1"], [0], [1])
    b = _batch([64, 64], ["10.0.0.2", "10.0.0.1"], [0, 1], [1, 1])
    j = FrameBatch.concat([a, b])
    assert j.sources == ["10.0.0.1", "10.0.0.2"]
    assert j.node_keys().tolist() == ["10.0.0.1#1", "10.0.0.2#1", "10.0.0.1#1"]
    assert np.array_equal(j.raw(2), b.raw(1))


def test_node_groups_key_on_source_and_node_id():
    b = _batch([64] * 5, ["10.0.0.1", "/dev/ttyUSB0"], [0, 0, 1, 0, 1], [1, 2, -1, 1, -1])
    groups = {k: idx.tolist() for k, idx in b.node_groups()}
    assert groups == {"10.0.0.1#1": [0, 3], "10.0.0.1#2": [1], "/dev/ttyUSB0": [2, 4]}


def test_iq_order_imaginary_first_by_default():
    pairs = np.array([[3, -4]], np.int8)  # ESP-IDF: imaginary 3, real -4
    assert pairs_to_complex(pairs)[0] == np.complex64(-4 + 3j)
    assert pairs_to_complex(pairs, "real-first")[0] == np.complex64(3 - 4j)
    with pytest.raises(ValueError, match="iq_order"):
        pairs_to_complex(pairs, "sideways")


def test_by_length_groups_mixed_layouts():
    b = _batch([64, 128, 64], ["a"], [0, 0, 0], [1, 1, 1])
    got = {p: (idx.tolist(), c.shape) for p, idx, c in b.by_length()}
    assert got == {64: ([0, 2], (2, 64)), 128: ([1], (1, 128))}


def test_extra_columns_follow_slices_and_joins():
    a = _batch([64, 64], ["a"], [0, 0], [1, 1])
    a.extra["label"] = np.array(["walk", None], object)
    b = _batch([128], ["b"], [0], [2])  # no extras: None in the joined column
    c = _batch([64], ["c"], [0], [3])
    c.extra["host_t"] = np.array(["21:43:01.755"], object)
    j = FrameBatch.concat([a, b, c])
    assert j.extra["label"].tolist() == ["walk", None, None, None]
    assert j.extra["host_t"].tolist() == [None, None, None, "21:43:01.755"]
    assert j[np.array([3, 0])].extra["label"].tolist() == [None, "walk"]
    assert FrameBatch.concat([b, b]).extra == {}  # binary formats: nothing added
    with pytest.raises(ValueError, match="one entry per frame"):
        FrameBatch(a.meta, a.iq, a.offsets, ["a"], {"x": np.array(["1"], object)})
