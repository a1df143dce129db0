"""RuView ``*.csi.jsonl`` recordings (``docs/wire-formats.md`` §5): one JSON object per line.

``{"timestamp": unix s, "node_id": n, "magic": "0xC5110001", "size": 148, "rssi": ..,
"type": "raw_csi", "iq_hex": "...", "subcarriers": 64}`` for raw frames; ``"type": "vitals"``
and ``"feature"`` records carry the decoded edge-vitals / feature-vector fields.

The recorder (RuView ``scripts/record-csi-udp.py``) read RSSI from the wrong offset, so the
``rssi`` of raw frames is not trusted: frames get ``rssi = 0`` (unknown). The records have no
sequence number (``seq = -1``) and no frequency (0). Receive time = ``timestamp``.

Skip reasons: ``empty-line``, ``non-utf8``, ``bad-json``, ``bad-record`` (not an object, or a
field missing / of the wrong type), ``bad-hex``, ``len-mismatch`` (``subcarriers`` or ``size``
disagree with ``iq_hex``), ``unsupported-record`` (another ``type``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.frames import FrameBatch, FrameFormat, Packet, empty_meta

_PACKET_KIND = {"vitals": "edge_vitals", "feature": "feature_vector"}


def decode_jsonl_lines(lines: Sequence[bytes | str], source: str) -> DecodeResult:
    """Decode RuView jsonl lines recorded from ``source`` (e.g. the file name)."""
    res = DecodeResult()
    t_list, node_list, chunks = [], [], []
    for raw in lines:
        out = _record(raw)
        if isinstance(out, str):
            res.skipped.skip(out, f"{source}: {str(raw)[:60]}")
        elif isinstance(out, Packet):
            out.source = source
            res.add_packet(out)
        else:
            t, node, iq = out
            t_list.append(t)
            node_list.append(node)
            chunks.append(iq)
    k = len(chunks)
    meta = empty_meta(k)
    meta["t_rx"] = t_list
    meta["node_id"] = node_list
    meta["rssi"] = 0  # unknown: the recorder read it from the wrong offset
    lens = np.fromiter((len(c) for c in chunks), np.int64, k)
    meta["n_pairs"] = lens // 2
    meta["fmt"] = FrameFormat.RUVIEW_JSONL
    offsets = np.zeros(k + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    iq = np.frombuffer(b"".join(chunks), np.int8).copy()
    res.frames = FrameBatch(meta, iq, offsets, [source])
    return res


def _record(raw: bytes | str):
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return "non-utf8"
    line = raw.strip()
    if not line:
        return "empty-line"
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return "bad-json"
    if not isinstance(obj, dict):
        return "bad-record"
    kind = obj.get("type")
    try:
        t = float(obj["timestamp"])
        node = int(obj["node_id"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return "bad-record"
    if not (np.isfinite(t) and -32768 <= node <= 32767):
        return "bad-record"
    if kind == "raw_csi":
        hx = obj.get("iq_hex")
        if not isinstance(hx, str):
            return "bad-record"
        try:
            iq = bytes.fromhex(hx)
        except ValueError:
            return "bad-hex"
        sub, size = obj.get("subcarriers"), obj.get("size")
        if len(iq) % 2 or (sub is not None and sub != len(iq) // 2):
            return "len-mismatch"
        if size is not None and size != 20 + len(iq):
            return "len-mismatch"
        return t, node, iq
    pk = _PACKET_KIND.get(kind) if isinstance(kind, str) else None
    if pk is None:
        return "unsupported-record"
    fields = {
        k: v for k, v in obj.items() if k not in ("timestamp", "node_id", "magic", "type", "size")
    }
    if pk == "edge_vitals":
        flags = fields.get("flags", 0)
        flags = flags if isinstance(flags, int) else 0
        fields = {
            "presence": bool(flags & 1),
            "fall": bool(flags & 2),
            "motion": bool(flags & 4),
            "breathing_bpm": fields.get("breathing_bpm") or None,
            "heart_bpm": fields.get("heartrate_bpm") or None,
            "rssi": fields.get("rssi"),
            "n_persons": fields.get("n_persons"),
            "motion_energy": fields.get("motion_energy"),
            "presence_score": fields.get("presence_score"),
        }
    return Packet(pk, t, "", node, fields)


def iter_jsonl(path: str | os.PathLike, *, chunk_lines: int = 100_000) -> Iterator[DecodeResult]:
    """Decode a ``.csi.jsonl`` file in chunks of ``chunk_lines`` lines."""
    source = os.path.basename(os.fspath(path))
    with open(path, "rb") as f:
        while True:
            lines = f.readlines(chunk_lines * 512)
            if not lines:
                return
            yield decode_jsonl_lines(lines, source)


def is_jsonl(head: bytes) -> bool:
    """Whether the first line of a file looks like a RuView jsonl record."""
    first = head.lstrip().split(b"\n", 1)[0]
    if not first.startswith(b"{"):
        return False
    try:
        obj = json.loads(first)
    except ValueError:
        return b'"iq_hex"' in first or b'"magic"' in first
    return isinstance(obj, dict) and ("magic" in obj or "iq_hex" in obj) and "timestamp" in obj
