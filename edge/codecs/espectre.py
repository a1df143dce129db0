"""ESPectre (francescopace/espectre) captures: its data-collection ``.npz`` files and its UDP
CSI stream. Facts (from its ``micro-espectre`` sources; see ``docs/text-captures.md``):

``.npz`` (``me collect``, written with ``np.savez_compressed``):

* ``csi_data``: int8 ``[N, 2 * num_subcarriers]``, the raw ESP-IDF CSI buffer of each packet
  (imaginary first, as on the wire), HT20 only: 64 subcarriers = 128 bytes;
* ``num_subcarriers``, ``label``, ``chip`` (``s3``, ``c6``...), ``gain_locked`` (bool),
  ``collected_at`` (ISO date-time, local time of the collecting PC, written at the end),
  ``duration_ms`` (first to last packet), ``format_version``;
* older files also ``timestamps`` (ms), ``rssi``, ``noise_floor`` (int8 ``[N]``).

Without ``timestamps``, frame times are spread evenly over ``duration_ms`` (noted as
``times-spread-over-duration`` in the result), starting at ``collected_at - duration_ms`` when
``collected_at`` is present (read as UTC: the PC's zone is not stored), else at 0.

UDP stream (``me stream``, port 5001), one datagram per CSI packet, little endian:
v2 ``<H magic 0x4353><B chip><B flags (bit 0 gain_locked)><B seq><H num_sc>`` + ``2*num_sc``
int8; v1 (older) has no flags byte (6-byte header). The version is told by the length, as
ESPectre's own receiver does.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.errors import InputError
from csi_edge.frames import FrameBatch, FrameFormat, empty_meta

STREAM_MAGIC = 0x4353
STREAM_PORT = 5001
CHIPS = {0: "unknown", 1: "esp32", 2: "s2", 3: "s3", 4: "c3", 5: "c5", 6: "c6"}
_PER_FILE = ("label", "chip", "gain_locked")


def is_espectre_npz(head: bytes, path: str | os.PathLike | None = None) -> bool:
    """A zip (``.npz``) holding ``csi_data.npy`` and no csi-edge ``meta.npy``."""
    if not head.startswith(b"PK\x03\x04") or path is None:
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "csi_data.npy" in names and "meta.npy" not in names


def read_espectre_npz(path: str | os.PathLike) -> DecodeResult:
    """One ESPectre sample file as frames (see the module docstring for times)."""
    name = os.path.basename(os.fspath(path))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a readable ESPectre .npz ({e})") from None
    csi = arrays.get("csi_data")
    if csi is None or csi.ndim != 2 or csi.dtype.kind not in "iu":
        raise InputError(f"{path}: csi_data must be an int8 array [packets, 2*subcarriers]")
    n, width = csi.shape
    n_sc = int(arrays["num_subcarriers"]) if "num_subcarriers" in arrays else width // 2
    if width != 2 * n_sc:
        raise InputError(
            f"{path}: csi_data has {width} values per packet but num_subcarriers is {n_sc} "
            f"(expected {2 * n_sc})"
        )
    if csi.size and (csi.min() < -128 or csi.max() > 127):
        raise InputError(f"{path}: csi_data values outside int8")
    res = DecodeResult()
    meta = empty_meta(n)
    meta["t_rx"] = _times(arrays, n, res)
    for field, key in (("rssi", "rssi"), ("noise", "noise_floor")):
        if key in arrays and len(arrays[key]) == n:
            meta[field] = arrays[key]
    meta["n_pairs"] = n_sc
    meta["fmt"] = FrameFormat.ESPECTRE
    offsets = np.arange(n + 1, dtype=np.int64) * width
    extra = {}
    for key in _PER_FILE:
        if key in arrays:
            extra[key] = np.full(n, str(arrays[key].item()), dtype=object)
    res.frames = FrameBatch(meta, csi.astype(np.int8).reshape(-1), offsets, [name], extra)
    return res


def _times(arrays: dict, n: int, res: DecodeResult) -> np.ndarray:
    ts = arrays.get("timestamps")
    if ts is not None and len(ts) == n:
        return ts.astype(np.float64) / 1000.0
    duration = float(arrays["duration_ms"]) / 1000.0 if "duration_ms" in arrays else 0.0
    t0 = 0.0
    if "collected_at" in arrays:
        try:
            end = datetime.fromisoformat(str(arrays["collected_at"].item()))
            if end.tzinfo is None:
                end = end.replace(tzinfo=timezone.utc)
            t0 = end.timestamp() - duration
        except ValueError:
            pass
    res.notes["times-spread-over-duration"] += n
    return t0 + (np.arange(n) * (duration / (n - 1)) if n > 1 else np.zeros(n))


def iter_espectre_npz(
    path: str | os.PathLike, *, chunk_frames: int = 100_000
) -> Iterator[DecodeResult]:
    yield read_espectre_npz(path)


def decode_stream(datagrams: Sequence[bytes], t_rx: float | Sequence[float], source: str):
    """ESPectre UDP stream datagrams from ``source`` -> frames; bad ones counted
    (``bad-magic``, ``truncated``, ``len-mismatch``)."""
    res = DecodeResult()
    ts = np.broadcast_to(np.asarray(t_rx, np.float64), (len(datagrams),))
    keep_t, seqs, chunks, chips, locks = [], [], [], [], []
    for d, t in zip(datagrams, ts.tolist(), strict=True):
        if len(d) < 6 or struct.unpack_from("<H", d)[0] != STREAM_MAGIC:
            res.skipped.skip("bad-magic" if len(d) >= 2 else "truncated", source)
            continue
        chip, flags, seq, n_sc = struct.unpack_from("<BBBH", d, 2) if len(d) >= 7 else (0, 0, 0, 0)
        if len(d) == 7 + 2 * n_sc:
            body, locked = d[7:], bool(flags & 1)
        else:
            chip, seq, n_sc = struct.unpack_from("<BBH", d, 2)
            if len(d) != 6 + 2 * n_sc:
                res.skipped.skip("len-mismatch", f"{source}: {len(d)} bytes")
                continue
            body, locked = d[6:], None
        keep_t.append(t)
        seqs.append(seq)
        chunks.append(body)
        chips.append(CHIPS.get(chip, str(chip)))
        locks.append(None if locked is None else str(locked))
    k = len(chunks)
    meta = empty_meta(k)
    meta["t_rx"] = keep_t
    meta["seq"] = seqs
    lens = np.fromiter((len(c) for c in chunks), np.int64, k)
    meta["n_pairs"] = lens // 2
    meta["fmt"] = FrameFormat.ESPECTRE
    offsets = np.zeros(k + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    extra = {"chip": np.array(chips, object), "gain_locked": np.array(locks, object)} if k else {}
    iq = np.frombuffer(b"".join(chunks), np.int8).copy()
    res.frames = FrameBatch(meta, iq, offsets, [source], extra)
    return res
