"""Bounded output files on an SD card: rotate by size and age, keep N, compress the old ones.

``reports.jsonl`` is written until it passes ``max_bytes`` or ``max_age_s``; it is then renamed
``reports.<UTC time>.jsonl``, gzipped on a background thread (``.jsonl.gz``; the gateway loop
never waits for compression) and the oldest rotated files beyond ``keep`` are deleted. Hand-written
because ``logging.handlers`` rotates text log records by size *or* time, not binary records with a
file header (the pcap ring) by both, and compresses on the caller's thread.

Writes are flushed and ``fsync``-ed at most once a second (:meth:`RotatingFile.sync`), so a
power cut loses at most the last second and SIGTERM loses nothing (the file is synced on close).
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("csi_edge.files")
_FINISH = threading.Lock()  # one compression/prune at a time: pruning never races a compressor


@dataclass
class RotatePolicy:
    max_bytes: int = 50 * 1024 * 1024
    max_age_s: float = 24 * 3600.0
    keep: int = 7
    compress: bool = True


class RotatingFile:
    """An append-only binary file with rotation. ``header(f)`` writes what every new file starts
    with (the pcap global header); ``clock`` is wall time (rotation names are UTC times)."""

    def __init__(
        self,
        path: str | os.PathLike,
        policy: RotatePolicy | None = None,
        *,
        header: Callable[[BinaryIO], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.policy = policy or RotatePolicy()
        self.header = header
        self.clock = clock
        self.rotations = 0
        self._compressors: list[threading.Thread] = []
        self._f: BinaryIO | None = None
        self._opened_at = 0.0
        self._size = 0
        self._last_sync = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    @property
    def regular(self) -> bool:
        """Only a regular file rotates (``/dev/null`` or a FIFO is written as it is)."""
        try:
            return self.path.is_file()
        except OSError:
            return False

    def _open(self) -> None:
        self._f = open(self.path, "ab")  # noqa: SIM115 - kept open across writes
        self._size = self._f.tell()
        self._opened_at = self.clock()
        if self._size and self.regular:
            # resume: the age of an existing file counts from its first write, not from now
            self._opened_at = min(self._opened_at, _ctime(self.path, self._opened_at))
        if self._size == 0 and self.header is not None:
            self.header(self._f)
            self._size = self._f.tell()

    def write(self, data: bytes) -> None:
        if self._f is None:
            self._open()
        if self.regular and self._size > 0 and self._due():
            self.rotate()
        self._f.write(data)
        self._size += len(data)

    def _due(self) -> bool:
        p = self.policy
        if self.header is not None and self._size <= 24:  # nothing but the header yet
            return False
        return self._size >= p.max_bytes or self.clock() - self._opened_at >= p.max_age_s

    def sync(self, force: bool = False) -> None:
        """Flush to the OS and fsync, at most once a second unless ``force``."""
        if self._f is None:
            return
        self._f.flush()
        now = time.monotonic()
        if force or now - self._last_sync >= 1.0:
            self._last_sync = now
            with contextlib.suppress(OSError):  # a pipe or /dev/full: nothing to sync
                os.fsync(self._f.fileno())

    def rotate(self) -> Path | None:
        """Close the current file, rename it with its UTC time, compress and prune (background)."""
        if self._f is None:
            return None
        self._f.close()
        self._f = None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        target = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
        n = 1
        while target.exists() or target.with_name(target.name + ".gz").exists():
            n += 1
            target = self.path.with_name(f"{self.path.stem}.{stamp}-{n}{self.path.suffix}")
        os.replace(self.path, target)
        self.rotations += 1
        self._open()
        self._compressors = [t for t in self._compressors if t.is_alive()]
        t = threading.Thread(target=self._finish, args=(target,), name="csi-edge-rotate", daemon=True)
        self._compressors.append(t)
        t.start()
        return target

    def rotated(self) -> list[Path]:
        """Rotated files of this path, oldest first."""
        pat = f"{self.path.stem}.*{self.path.suffix}"
        found = list(self.path.parent.glob(pat)) + list(self.path.parent.glob(pat + ".gz"))
        return sorted((p for p in found if p != self.path), key=lambda p: p.name)

    def _finish(self, target: Path) -> None:
        with _FINISH:
            self._finish_one(target)

    def _finish_one(self, target: Path) -> None:
        try:
            if self.policy.compress:
                gz = target.with_name(target.name + ".gz")
                with open(target, "rb") as src, gzip.open(gz.with_suffix(".tmp"), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(gz.with_suffix(".tmp"), gz)
                target.unlink()
            for old in self.rotated()[: max(len(self.rotated()) - self.policy.keep, 0)]:
                old.unlink(missing_ok=True)
        except OSError as e:
            log.warning("%s: rotating failed: %s (the uncompressed file is kept)", target, e.strerror or e)

    def wait(self) -> None:
        """Wait for background compression (tests, shutdown)."""
        for t in self._compressors:
            t.join()

    def close(self) -> None:
        if self._f is not None:
            try:
                self.sync(force=True)
            finally:
                self._f.close()
                self._f = None
        self.wait()


def _ctime(path: Path, default: float) -> float:
    try:
        st = path.stat()
        return min(st.st_mtime, getattr(st, "st_birthtime", st.st_mtime), st.st_ctime)
    except OSError:
        return default
