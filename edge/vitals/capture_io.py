"""Read any capture for the vitals/calibrate commands (``edge.capture`` when present)."""

from __future__ import annotations

import os


def read_any(path: str | os.PathLike):
    """-> DecodeResult. Raises ValueError/OSError with the file name on bad input."""
    try:
        from edge.capture import read_capture
    except ImportError:
        read_capture = None
    if read_capture is not None:
        return read_capture(path)
    from edge.codecs.pcap import is_pcap, read_pcap

    with open(path, "rb") as f:
        head = f.read(8)
    if is_pcap(head):
        return read_pcap(path)
    raise ValueError(f"{path}: not a capture this build can read (pcap expected)")
