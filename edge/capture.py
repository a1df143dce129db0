"""Read any CSI capture on disk, with the format detected from its content.

Formats (``fmt`` names; detection looks at the first bytes, never at the file name):

* ``pcap``: pcap or pcapng of the nodes' UDP traffic (RuView ADR-018 datagrams);
* ``jsonl``: RuView ``*.csi.jsonl`` recordings;
* ``text``: serial logs with esp-csi ``CSI_DATA`` lines (any of the 3 layouts) or
  ESP32-CSI-Tool CSV (aliases ``esp-csi``, ``csi-tool``); receive times come from the lines;
* ``recording``: csi-edge's own serial recording (:mod:`csi_edge.codecs.recording`).

::

    res = read_capture("capture.pcap")               # DecodeResult: frames, packets, skipped
    for chunk in iter_capture("big.pcap", chunk_frames=100_000):
        ...                                          # bounded memory: one chunk at a time

A file that is not a capture at all (or is empty, or missing) raises :class:`CaptureError`
with the path and what was expected; damage inside a capture is counted in ``skipped``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from csi_edge.codecs.jsonl import is_jsonl, iter_jsonl
from csi_edge.codecs.pcap import PcapError, is_pcap, iter_pcap
from csi_edge.codecs.recording import is_recording, iter_recording
from csi_edge.codecs.result import DecodeResult
from csi_edge.codecs.text import TextLineDecoder, is_header_line
from csi_edge.errors import InputError
from csi_edge.frames import IQ_ORDERS

FORMATS = ("pcap", "jsonl", "text", "recording")
_ALIASES = {
    "pcapng": "pcap",
    "esp-csi": "text",
    "csi-tool": "text",
    "esp32-csi-tool": "text",
    "csv": "text",
    "csi.jsonl": "jsonl",
}
EXPECTED = (
    "a pcap/pcapng capture of RuView UDP traffic, a RuView .csi.jsonl recording, an esp-csi or "
    "ESP32-CSI-Tool serial log (CSI_DATA lines), or a csi-edge recording"
)
_HEAD = 1 << 20  # bytes looked at to detect a text log


class CaptureError(InputError):
    """The file cannot be read as a capture (missing, empty, unknown format)."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


def normalize_format(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    f = _ALIASES.get(fmt.lower(), fmt.lower())
    if f not in FORMATS:
        raise ValueError(
            f"unknown format {fmt!r}; expected one of {', '.join(FORMATS + tuple(_ALIASES))}"
        )
    return f


def detect_format(path: str | os.PathLike) -> str:
    """The capture format of ``path`` from its content; :class:`CaptureError` if none fits."""
    p = _check_file(path)
    with open(p, "rb") as f:
        head = f.read(_HEAD)
    if is_pcap(head):
        return "pcap"
    if is_recording(head):
        return "recording"
    if is_jsonl(head):
        return "jsonl"
    if b"CSI_DATA" in head or any(
        is_header_line(line.decode("latin-1")) for line in head.splitlines()[:50]
    ):
        return "text"
    raise CaptureError(path, f"not a CSI capture (starts with {head[:16]!r}); expected {EXPECTED}")


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
    if fmt == "pcap":
        chunks = _pcap_chunks(path, chunk_frames, port)
    elif fmt == "jsonl":
        chunks = iter_jsonl(path, chunk_lines=chunk_frames)
    elif fmt == "text":
        chunks = _text_chunks(path, chunk_frames)
    else:
        chunks = _recording_chunks(path, chunk_frames)
    any_input = False
    for res in chunks:
        res.iq_order = iq_order
        any_input = any_input or res.n_inputs > 0
        yield res
    if not any_input:
        raise CaptureError(path, f"no records found as {fmt}; expected {EXPECTED}")


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


def _pcap_chunks(path, chunk_frames: int, port):
    try:
        yield from iter_pcap(path, port=port, chunk_records=chunk_frames)
    except PcapError as e:
        raise CaptureError(path, f"{str(e).split(': ', 1)[-1]}; expected {EXPECTED}") from None


def _text_chunks(path, chunk_frames: int):
    dec = TextLineDecoder(os.path.basename(os.fspath(path)))
    with open(path, "rb") as f:
        while True:
            lines = f.readlines(chunk_frames * 256)
            if not lines:
                return
            yield dec.decode_lines(lines, np.nan)


def _recording_chunks(path, chunk_frames: int):
    decoders: dict[str, TextLineDecoder] = {}
    try:
        for batch in iter_recording(path, chunk_lines=chunk_frames):
            by_source: dict[str, list] = defaultdict(list)
            bad = DecodeResult()
            for rec in batch:
                if rec[0] == "bad-record":
                    bad.skipped.skip("bad-record", rec[1])
                else:
                    by_source[rec[1]].append(rec)
            parts = [bad]
            for source, recs in by_source.items():
                dec = decoders.setdefault(source, TextLineDecoder(source))
                parts.append(dec.decode_lines([r[2] for r in recs], np.array([r[0] for r in recs])))
            res = DecodeResult.concat(parts)
            if len(by_source) > 1 and len(res.frames):  # frames of several sources: time order
                res.frames = res.frames[np.argsort(res.frames.meta["t_rx"], kind="stable")]
            yield res
    except ValueError as e:
        raise CaptureError(path, str(e).split(": ", 1)[-1]) from None


__all__ = ["FORMATS", "CaptureError", "detect_format", "iter_capture", "read_capture"]
