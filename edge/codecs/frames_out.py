"""Decoded frames written out for other tools: ``.jsonl`` (one JSON object per frame/packet) or
``.npz`` (arrays). Used by ``csi-edge decode -o``; the keys are documented in its ``--help``.

Per-frame ``extra`` columns (host clocks, labels, device tags a text capture carried) go into
JSONL as ``"extra": {name: value}`` and into NPZ as ``extra_columns`` (names) + ``extra``
(str ``[N, k]``, ``""`` where a frame has no value).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.errors import InputError
from csi_edge.frames import FrameFormat
from csi_edge.layout import LLTF_SUBCARRIERS, lltf_canonical

SUFFIXES = (".jsonl", ".npz")


def _jsonable(v: Any) -> Any:
    """NaN/inf -> null: ``json.dumps`` would write ``NaN``, which is not JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def write_frames(res: DecodeResult, path: str | os.PathLike, iq_order: str = "imag-first") -> None:
    """Write ``res`` to ``path`` as .jsonl or .npz (by suffix); :class:`InputError` otherwise
    or when the file cannot be written."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{p}: expected a file name ending in .jsonl or .npz")
    try:
        if suffix == ".npz":
            write_npz(res, p, iq_order)
        else:
            write_jsonl(res, p, iq_order)
    except OSError as e:
        raise InputError(f"{p}: cannot write: {e.strerror or e}") from None


def write_jsonl(res: DecodeResult, path: Path, iq_order: str) -> None:
    frames = res.frames
    meta = frames.meta
    keys = frames.node_keys()
    names = meta.dtype.names
    extra = frames.extra
    packets = sorted(res.packets, key=lambda p: p.t_rx if math.isfinite(p.t_rx) else -math.inf)
    pi = 0
    with open(path, "w") as f:
        for i in range(len(frames)):
            row = dict(zip(names, meta[i].tolist(), strict=True))
            while pi < len(packets) and packets[pi].t_rx <= row["t_rx"]:
                f.write(json.dumps(_jsonable(packets[pi].to_json())) + "\n")
                pi += 1
            csi = frames.csi(i, iq_order)
            obj = {
                "type": "csi",
                "t": row["t_rx"],
                "source": frames.sources[row["src"]] if frames.sources else "",
                "node": keys[i],
                **{k: row[k] for k in names if k not in ("t_rx", "src", "fmt")},
                "format": FrameFormat.NAMES.get(row["fmt"], str(row["fmt"])),
                "iq_order": iq_order,
                "csi": np.stack((csi.real, csi.imag), axis=-1).astype(int).tolist(),
            }
            if extra:
                obj["extra"] = {n: c[i] for n, c in extra.items() if c[i] is not None}
            f.write(json.dumps(_jsonable(obj)) + "\n")
        for p in packets[pi:]:
            f.write(json.dumps(_jsonable(p.to_json())) + "\n")


def write_npz(res: DecodeResult, path: Path, iq_order: str) -> None:
    frames = res.frames
    cols = list(frames.extra)
    table = np.array(
        [["" if v is None else str(v) for v in frames.extra[c]] for c in cols], dtype=str
    ).T.reshape(len(frames), len(cols))
    np.savez_compressed(
        path,
        meta=frames.meta,
        iq=frames.iq,
        offsets=frames.offsets,
        sources=np.array(frames.sources, dtype=str),
        node_keys=np.array(frames.node_keys().tolist(), dtype=str),
        lltf=lltf_canonical(frames, iq_order=iq_order),
        lltf_subcarriers=LLTF_SUBCARRIERS,
        iq_order=np.array(iq_order),
        packets=np.array([json.dumps(_jsonable(p.to_json())) for p in res.packets], dtype=str),
        extra_columns=np.array(cols, dtype=str),
        extra=table,
    )
