"""csi-edge's own lossless recording of serial/text sources (UDP is recorded as pcap).

Format (text, one record per line, UTF-8/ASCII)::

    #csi-edge-recording v1 text-lines
    <t_rx>\\t<source>\\t<line bytes, escaped>
    ...

* ``t_rx``: receive time, unix seconds, written with ``repr(float)`` (round-trips exactly);
* ``source``: where the line came from (``/dev/ttyUSB0``), escaped like the line;
* the line's exact bytes without its line ending, escaped with Python's ``unicode_escape``
  over latin-1 (tab, CR, LF, backslash and every non-printable or non-ASCII byte become
  ``\\t``, ``\\r``, ``\\n``, ``\\\\``, ``\\xhh``), so torn lines and non-UTF-8 garbage are kept
  byte for byte and the file stays greppable. Read back with ``codecs.escape_decode``.

Lines starting with ``#`` after the header are comments. A record that cannot be parsed when
reading is counted (``bad-record``) by :func:`iter_recording`'s caller via the returned reasons.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from typing import BinaryIO

from csi_edge.codecs.writer import FileWriter

HEADER = b"#csi-edge-recording v1 text-lines"


def escape(data: bytes) -> bytes:
    """Bytes -> one line of printable ASCII (see module docstring)."""
    return data.decode("latin-1").encode("unicode_escape")


def unescape(text: bytes) -> bytes:
    # codecs.escape_decode is the exact inverse of unicode_escape over latin-1 for bytes
    return codecs.escape_decode(text)[0]


class RecordingWriter(FileWriter):
    """Append ``(t_rx, source, line)`` records; ``line`` is bytes (or str, encoded UTF-8).

    Pass the line as received, normally without its ``\\n``; whatever is passed (a stray
    ``\\r``, NUL bytes, a torn half line) is stored exactly.
    """

    def __init__(self, file: str | os.PathLike | BinaryIO) -> None:
        super().__init__(file)
        self._f.write(HEADER + b"\n")

    def write(self, t_rx: float, source: str, line: bytes | str) -> None:
        if isinstance(line, str):
            line = line.encode("utf-8")
        self._f.write(b"%r\t%s\t%s\n" % (float(t_rx), escape(source.encode("utf-8")), escape(line)))
        self.count += 1


def is_recording(head: bytes) -> bool:
    return head.startswith(HEADER[:20])


def iter_recording(path: str | os.PathLike, *, chunk_lines: int = 100_000) -> Iterator[list]:
    """Yield lists of ``(t_rx, source, line_bytes)`` or ``("bad-record", detail)`` entries."""
    with open(path, "rb") as f:
        first = f.readline()
        if not is_recording(first):
            raise ValueError(f"{path}: not a csi-edge recording (first line {first[:40]!r})")
        batch: list = []
        for raw in f:
            raw = raw.rstrip(b"\n")
            if raw.startswith(b"#"):
                continue
            parts = raw.split(b"\t")
            try:
                if len(parts) != 3:
                    raise ValueError("expected 3 tab-separated fields")
                batch.append(
                    (
                        float(parts[0]),
                        unescape(parts[1]).decode("utf-8", "replace"),
                        unescape(parts[2]),
                    )
                )
            except (ValueError, UnicodeDecodeError) as e:
                batch.append(("bad-record", f"{raw[:60]!r}: {e}"))
            if len(batch) >= chunk_lines:
                yield batch
                batch = []
        if batch:
            yield batch
