"""RuView .csi.jsonl recordings: the real sample, bad records, property test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.codecs.jsonl import decode_jsonl_lines, iter_jsonl
from csi_edge.frames import FrameFormat

DATA = Path(__file__).parent / "data" / "ruview" / "pretrain-head400.csi.jsonl"
LINES = DATA.read_bytes().splitlines()


def test_real_recording_400_records():
    res = decode_jsonl_lines(LINES, "rec")
    assert len(LINES) == 400 and res.n_inputs == 400
    assert len(res.frames) == 368 and res.packet_counts == {"edge_vitals": 16, "feature_vector": 16}
    assert not res.skipped
    pairs = res.frames.meta["n_pairs"]
    assert np.bincount(pairs)[[64, 128, 192]].tolist() == [298, 66, 4]
    assert (np.diff(pairs) != 0).sum() > 50  # lengths interleaved frame to frame
    assert set(res.frames.meta["node_id"].tolist()) == {1, 2}
    assert set(res.frames.meta["rssi"].tolist()) == {0}  # recorder's RSSI is wrong: unknown
    assert set(res.frames.meta["fmt"].tolist()) == {FrameFormat.RUVIEW_JSONL}
    first = json.loads(LINES[0])
    assert res.frames.raw(0).tobytes() == bytes.fromhex(first["iq_hex"])
    assert res.frames.meta["t_rx"][0] == first["timestamp"]
    v = next(p for p in res.packets if p.kind == "edge_vitals")
    assert (
        v.fields["breathing_bpm"] == 22.42 and v.fields["heart_bpm"] == 85.0 and v.fields["motion"]
    )
    assert np.all(np.diff(res.frames.meta["t_rx"]) >= 0)


def test_chunks_equal_whole():
    chunks = list(iter_jsonl(DATA, chunk_lines=50))
    assert len(chunks) > 2 and sum(len(c.frames) for c in chunks) == 368


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"", "empty-line"),
        (b"{not json", "bad-json"),
        (b"[1, 2]", "bad-record"),
        (b'{"type": "raw_csi", "iq_hex": "00"}', "bad-record"),
        (b'{"timestamp": 1, "node_id": 1, "type": "raw_csi", "iq_hex": "zz"}', "bad-hex"),
        (
            b'{"timestamp": 1, "node_id": 1, "type": "raw_csi", "iq_hex": "0001", "subcarriers": 2}',
            "len-mismatch",
        ),
        (
            b'{"timestamp": 1, "node_id": 1, "type": "raw_csi", "iq_hex": "0001", "size": 30}',
            "len-mismatch",
        ),
        (b'{"timestamp": 1, "node_id": 1, "type": "raw_csi", "iq_hex": "000102"}', "len-mismatch"),
        (b'{"timestamp": 1, "node_id": 1, "type": "mystery"}', "unsupported-record"),
        (b'{"timestamp": "x", "node_id": 1, "type": "raw_csi", "iq_hex": ""}', "bad-record"),
        (b'{"timestamp": 1e999, "node_id": 1, "type": "raw_csi", "iq_hex": ""}', "bad-record"),
        (b'{"timestamp": 1, "node_id": 1, "type": "raw_csi", "iq_hex": "00\xff"}', "non-utf8"),
    ],
)
def test_bad_records_counted(line, reason):
    res = decode_jsonl_lines([LINES[0], line, LINES[1]], "rec")
    assert res.skipped == {reason: 1} and len(res.frames) == 2


@st.composite
def mutated(draw):
    s = bytearray(draw(st.sampled_from(LINES[:40])))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["cut", "flip", "insert"]))
        if op == "cut":
            s = s[:i]
        elif op == "flip" and i < len(s):
            s[i] = draw(st.integers(0, 255))
        else:
            s[i:i] = draw(st.sampled_from([b'"', b"{", b"}", b",", b"0", b"null", b"\xc3"]))
    return bytes(s)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(mutated(), st.binary(max_size=100), st.sampled_from(LINES)), max_size=10))
def test_property_jsonl_never_raises_and_accounts_every_line(lines):
    res = decode_jsonl_lines(lines, "rec")
    assert res.n_inputs == len(lines)
    assert len(res.frames.iq) == res.frames.offsets[-1]


def test_ruview_recording_rssi_is_reported_unknown_not_zero(data_dir):
    """The RuView recorder wrote RSSI from the wrong offset; summaries must not claim 0 dBm."""
    import subprocess
    import sys

    from csi_edge.capture import read_capture
    from csi_edge.nodes import NodeTable

    cap = data_dir / "ruview" / "pretrain-head400.csi.jsonl"
    table = NodeTable()
    table.update(read_capture(cap).frames)
    nodes = table.summary()
    assert len(nodes) == 2 and all(
        n["rssi"] is None and n["rssi_mean"] is None for n in nodes.values()
    )
    text = subprocess.run(
        [sys.executable, "-m", "csi_edge", "decode", str(cap), "--summary"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "rssi unknown" in text and "0 dBm" not in text
