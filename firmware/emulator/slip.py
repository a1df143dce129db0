"""SLIP framing as the ESP ROM loader uses it: 0xC0 delimits, 0xDB 0xDC / 0xDB 0xDD escape.

Hand-written because the emulator must see *malformed* frames (a bad escape) to answer them the
way the ROM does, which general SLIP libraries hide by raising or silently dropping.
"""

from __future__ import annotations

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


def encode(packet: bytes) -> bytes:
    """One SLIP frame: delimiters around the escaped packet."""
    return b"\xc0" + packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class Decoder:
    """Incremental decoder: feed bytes, get ``(packet, ok)`` pairs; ``ok`` is False for a frame
    with an invalid escape (its content up to the error is returned so the command byte is known).
    Bytes outside frames are line noise and are ignored, as the ROM does."""

    def __init__(self) -> None:
        self._buf: bytearray | None = None
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        out: list[tuple[bytes, bool]] = []
        self._pending += data
        while True:
            if self._buf is None:
                start = self._pending.find(b"\xc0")
                if start < 0:
                    self._pending.clear()
                    return out
                del self._pending[: start + 1]
                self._buf = bytearray()
            end = self._pending.find(b"\xc0")
            if end < 0:
                self._buf += self._pending
                self._pending.clear()
                return out
            raw = bytes(self._buf + self._pending[:end])
            del self._pending[: end + 1]
            self._buf = None
            if not raw:
                # An empty frame: "C0 C0" is a frame boundary seen twice; treat the second C0
                # as the start of the next frame.
                self._buf = bytearray()
                continue
            out.append(_unescape(raw))


def _unescape(raw: bytes) -> tuple[bytes, bool]:
    if b"\xdb" not in raw:
        return raw, True
    parts = raw.split(b"\xdb")
    out = [parts[0]]
    for part in parts[1:]:
        if not part or part[0] not in (ESC_END, ESC_ESC):
            return b"".join(out), False
        out.append((b"\xc0" if part[0] == ESC_END else b"\xdb") + part[1:])
    return b"".join(out), True
