"""Read any CSI capture on disk, with the format detected from its content.

The formats, their ``--format`` names and their readers are listed once, in
:mod:`csi_edge.registry` (pcap/pcapng of RuView UDP, csi-edge recordings, RuView ``.csi.jsonl``,
ESPectre ``.npz``, esp-csi / ESP32-CSI-Tool text logs in any of their variants:
``docs/text-captures.md``). Detection looks at the first bytes, never at the file name.

::

    res = read_capture("capture.pcap")               # DecodeResult: frames, packets, skipped
    for chunk in iter_capture("big.pcap", chunk_frames=100_000):
        ...                                          # bounded memory: one chunk at a time

A file that is not a capture at all (or is empty, or missing) raises :class:`CaptureError`
with the path and what was expected; a capture whose every record was skipped raises
:class:`~csi_edge.errors.NoDataError` with the counts of what was skipped; damage inside a
capture is counted in ``skipped``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from csi_edge import registry
from csi_edge.codecs.result import DecodeResult
from csi_edge.errors import NoDataError
from csi_edge.frames import IQ_ORDERS
from csi_edge.registry import CaptureError

FORMATS = registry.names()
EXPECTED = registry.expected()
_HEAD = 1 << 20  # bytes looked at to detect a format


def normalize_format(fmt: str | None) -> str | None:
    """Canonical format name of ``fmt`` (an alias is accepted); ValueError if unknown."""
    return None if fmt is None else registry.get(fmt).name


def detect_format(path: str | os.PathLike) -> str:
    """The capture format of ``path`` from its content; :class:`CaptureError` if none fits."""
    p = _check_file(path)
    with open(p, "rb") as f:
        head = f.read(_HEAD)
    found = registry.detect(head, os.fspath(p))
    if found is None:
        raise CaptureError(
            path, f"not a CSI capture (starts with {head[:16]!r}); expected {EXPECTED}"
        )
    return found.name


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise CaptureError(path, "no such file")
    if p.is_dir():
        raise CaptureError(path, f"is a directory; expected a file: {EXPECTED}")
    if p.stat().st_size == 0:
        raise CaptureError(path, f"the file is empty (0 bytes); expected {EXPECTED}")
    return p


def iter_capture(
    path: str | os.PathLike,
    fmt: str | None = None,
    iq_order: str = "imag-first",
    *,
    chunk_frames: int = 100_000,
    port: int | None = None,
) -> Iterator[DecodeResult]:
    """Decode ``path`` chunk by chunk (about ``chunk_frames`` inputs per :class:`DecodeResult`).

    ``port`` (pcap only): keep only UDP datagrams to this destination port.
    """
    if iq_order not in IQ_ORDERS:
        raise ValueError(f"iq_order must be one of {IQ_ORDERS}, got {iq_order!r}")
    try:
        fmt = normalize_format(fmt)
    except ValueError as e:
        raise CaptureError(path, str(e)) from None
    _check_file(path)
    fmt = fmt or detect_format(path)
    inputs = frames = packets = 0
    skipped: Counter = Counter()
    for res in registry.get(fmt).read(path, chunk_frames, port=port):
        res.iq_order = iq_order
        inputs += res.n_inputs
        frames += len(res.frames)
        packets += sum(res.packet_counts.values())
        skipped.update(res.skipped)
        yield res
    if not inputs:
        raise CaptureError(path, f"no records found as {fmt}; expected {EXPECTED}")
    if not frames and not packets:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()) if v)
        raise NoDataError(
            f"{os.fspath(path)}: no CSI frames as {fmt}: all {inputs} records were skipped "
            f"({counts}); expected {EXPECTED}"
        )


def read_capture(
    path: str | os.PathLike,
    fmt: str | None = None,
    iq_order: str = "imag-first",
    *,
    port: int | None = None,
) -> DecodeResult:
    """Decode the whole capture into one :class:`DecodeResult` (see :func:`iter_capture`)."""
    res = DecodeResult.concat(iter_capture(path, fmt, iq_order, port=port))
    res.iq_order = iq_order
    return res


__all__ = ["FORMATS", "CaptureError", "detect_format", "iter_capture", "read_capture"]
