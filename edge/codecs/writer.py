"""The file handling the capture writers share (:class:`~csi_edge.codecs.pcap.PcapWriter`,
:class:`~csi_edge.codecs.recording.RecordingWriter`): a path is opened and closed by the writer, an
open binary file is written to and only flushed (its owner closes it)."""

from __future__ import annotations

import os
from typing import BinaryIO


class FileWriter:
    """Base for writers of one binary file; usable as a context manager."""

    def __init__(self, file: str | os.PathLike | BinaryIO) -> None:
        self._own = not hasattr(file, "write")
        self._f: BinaryIO = open(file, "wb") if self._own else file  # type: ignore[arg-type]  # noqa: SIM115
        self.count = 0  # records written

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        """Close the file if the writer opened it, else flush it."""
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
