"""The emulated board's SPI NOR flash: blank 0xFF, erase per 4 KB sector, writes can only clear bits.

With ``path`` the flash is a memory-mapped file, so tests and users can inspect what was written
while the emulator runs (and the content survives a restart of the emulator).
"""

from __future__ import annotations

import mmap
import os
import threading

from csi_edge.errors import InputError

SECTOR = 0x1000


class FlashError(InputError):
    """An access outside the flash chip (the host asked for it; answered as a ROM error)."""


class Flash:
    """NOR flash of ``size`` bytes, optionally backed by a file."""

    def __init__(self, size: int, path: str | os.PathLike | None = None) -> None:
        if size <= 0 or size % SECTOR:
            raise ValueError(f"flash size {size} must be a positive multiple of {SECTOR}")
        self.size = size
        self.lock = threading.RLock()
        self._file = None
        if path is None:
            self.mem: bytearray | mmap.mmap = bytearray(b"\xff" * size)
        else:
            exists = os.path.exists(path)
            self._file = open(path, "r+b" if exists else "w+b")  # noqa: SIM115 - lives with the mmap
            cur = os.fstat(self._file.fileno()).st_size
            if cur < size:
                self._file.seek(cur)
                self._file.write(b"\xff" * (size - cur))
                self._file.flush()
            elif cur > size:
                self._file.truncate(size)
            self.mem = mmap.mmap(self._file.fileno(), size)

    def check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashError(
                f"access 0x{offset:x}+0x{length:x} is outside the {self.size >> 20} MB flash"
            )

    def read(self, offset: int, length: int) -> bytes:
        self.check(offset, length)
        with self.lock:
            return bytes(self.mem[offset : offset + length])

    def erase(self, offset: int, length: int) -> None:
        """Erase every sector touched by ``[offset, offset+length)``."""
        start = offset - offset % SECTOR
        end = -(-(offset + length) // SECTOR) * SECTOR
        self.check(start, end - start)
        with self.lock:
            self.mem[start:end] = b"\xff" * (end - start)

    def write(self, offset: int, data: bytes) -> None:
        """Program bytes: like real NOR flash, a write can only turn 1 bits into 0 bits."""
        self.check(offset, len(data))
        if not data:
            return
        with self.lock:
            old = self.mem[offset : offset + len(data)]
            if old == b"\xff" * len(data):
                self.mem[offset : offset + len(data)] = data
            else:
                merged = int.from_bytes(old, "little") & int.from_bytes(data, "little")
                self.mem[offset : offset + len(data)] = merged.to_bytes(len(data), "little")

    def erase_all(self) -> None:
        with self.lock:
            self.mem[:] = b"\xff" * self.size

    def flush(self) -> None:
        if isinstance(self.mem, mmap.mmap):
            self.mem.flush()

    def close(self) -> None:
        if isinstance(self.mem, mmap.mmap):
            self.mem.flush()
            self.mem.close()
        if self._file is not None:
            self._file.close()
