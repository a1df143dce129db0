"""The one list of capture formats csi-edge reads: detection, ``--format`` names, reader, writer.

Adding a format is one module (a ``detect(head, path)`` and a chunk reader returning
:class:`~csi_edge.codecs.result.DecodeResult`) plus one :class:`CaptureFormat` line in
:data:`FORMATS`. Detection tries the formats in list order on the file's first bytes (never its
name); ``csi-edge decode --format`` offers exactly the names and aliases listed here.
"""

from __future__ import annotations

import importlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from csi_edge.errors import InputError

if TYPE_CHECKING:
    from csi_edge.codecs.result import DecodeResult

# The codecs (and numpy) are imported when a format is used, not when the list is read, so
# ``csi-edge decode --help`` can show the choices instantly.


class CaptureError(InputError):
    """The file cannot be read as a capture (missing, empty, unknown format)."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {message}")


Reader = Callable[..., Iterator["DecodeResult"]]  # (path, chunk_frames, port=None) -> results


@dataclass(frozen=True)
class CaptureFormat:
    """One capture format: its name, what detects it, what reads it (and writes it, if any)."""

    name: str
    description: str
    detect: Callable[[bytes, str], bool]  # (first bytes, path) -> is it this format?
    read: Reader
    aliases: tuple[str, ...] = ()
    writer: str | None = None  # "module:Class" that writes this format, when csi-edge does

    def writer_class(self) -> type | None:
        if self.writer is None:
            return None
        mod, _, name = self.writer.partition(":")
        return getattr(importlib.import_module(mod), name)


def _is_pcap(head: bytes, path: str) -> bool:
    from csi_edge.codecs.pcap import is_pcap

    return is_pcap(head)


def _is_recording(head: bytes, path: str) -> bool:
    from csi_edge.codecs.recording import is_recording

    return is_recording(head)


def _is_jsonl(head: bytes, path: str) -> bool:
    from csi_edge.codecs.jsonl import is_jsonl

    return is_jsonl(head)


def _is_espectre(head: bytes, path: str) -> bool:
    from csi_edge.codecs.espectre import is_espectre_npz

    return is_espectre_npz(head, path)


def _is_text(head: bytes, path: str) -> bool:
    from csi_edge.codecs.text import is_text_capture

    return is_text_capture(head)


def _pcap(path, chunk_frames: int, port=None):
    from csi_edge.codecs.pcap import PcapError, iter_pcap

    try:
        yield from iter_pcap(path, port=port, chunk_records=chunk_frames)
    except PcapError as e:
        raise CaptureError(path, f"{str(e).split(': ', 1)[-1]}; expected {expected()}") from None


def _jsonl(path, chunk_frames: int, port=None):
    from csi_edge.codecs.jsonl import iter_jsonl

    return iter_jsonl(path, chunk_lines=chunk_frames)


def _espectre(path, chunk_frames: int, port=None):
    from csi_edge.codecs.espectre import iter_espectre_npz

    return iter_espectre_npz(path, chunk_frames=chunk_frames)


def _text(path, chunk_frames: int, port=None):
    """Lines of a text log; UTF-16 (with or without BOM) and UTF-8 with BOM are decoded first,
    plain UTF-8 stays bytes so a non-UTF-8 line is counted, not fatal."""
    import numpy as np

    from csi_edge.codecs.text import TextLineDecoder, sniff_text

    dec = TextLineDecoder(os.path.basename(os.fspath(path)))
    with open(path, "rb") as f:
        enc = sniff_text(f.read(4096))
    if enc is None:
        with open(path, "rb") as f:
            while lines := f.readlines(chunk_frames * 256):
                yield dec.decode_lines(lines, np.nan)
        return
    first = True
    with open(path, encoding=enc, errors="replace", newline="") as f:
        while lines := f.readlines(chunk_frames * 256):
            res = dec.decode_lines(lines, np.nan)
            if first:  # said once per file: the summary tells how the text was read
                res.notes[f"file-encoding-{enc}"] += 1
                first = False
            yield res


def _recording(path, chunk_frames: int, port=None):
    import numpy as np

    from csi_edge.codecs.recording import iter_recording
    from csi_edge.codecs.result import DecodeResult
    from csi_edge.codecs.text import TextLineDecoder

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
            if len(res.frames.sources) > 1 and len(res.frames):  # several sources: time order
                res.frames = res.frames[np.argsort(res.frames.meta["t_rx"], kind="stable")]
            yield res
    except ValueError as e:
        raise CaptureError(path, str(e).split(": ", 1)[-1]) from None


#: detection order: binary magics first, text (the loosest test) last
FORMATS: tuple[CaptureFormat, ...] = (
    CaptureFormat("pcap", "a pcap/pcapng capture of RuView UDP traffic", _is_pcap, _pcap, ("pcapng",),
                  "csi_edge.codecs.pcap:PcapWriter"),
    CaptureFormat("recording", "a csi-edge serial recording", _is_recording, _recording, (),
                  "csi_edge.codecs.recording:RecordingWriter"),
    CaptureFormat("jsonl", "a RuView .csi.jsonl recording", _is_jsonl, _jsonl, ("csi.jsonl",)),
    CaptureFormat("espectre", "an ESPectre data-collection .npz", _is_espectre, _espectre,
                  ("espectre-npz",)),
    CaptureFormat("text", "an esp-csi or ESP32-CSI-Tool serial log / CSV (CSI_DATA lines)",
                  _is_text, _text, ("esp-csi", "csi-tool", "esp32-csi-tool", "csv")),
)  # fmt: skip
BY_NAME: dict[str, CaptureFormat] = {n: f for f in FORMATS for n in (f.name, *f.aliases)}


def names() -> tuple[str, ...]:
    """Canonical format names, in detection order."""
    return tuple(f.name for f in FORMATS)


def choices() -> list[str]:
    """Every name ``--format`` accepts: canonical names, then aliases."""
    return list(names()) + [a for f in FORMATS for a in f.aliases]


def expected() -> str:
    return ", ".join(f.description for f in FORMATS)


def get(name: str) -> CaptureFormat:
    """The format called ``name`` (or an alias); ValueError naming the choices otherwise."""
    f = BY_NAME.get(name.lower())
    if f is None:
        raise ValueError(f"unknown format {name!r}; expected one of {', '.join(choices())}")
    return f


def detect(head: bytes, path: str) -> CaptureFormat | None:
    """The first format whose detector accepts these first bytes, or None."""
    for f in FORMATS:
        if f.detect(head, path):
            return f
    return None
