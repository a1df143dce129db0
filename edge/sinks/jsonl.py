"""Every report as one JSON line, in a file that rotates (size and age, keep N, gzipped).

A write that fails (disk full, folder made read-only) is logged once with the path and the
reason, the reports it could not save are counted (``dropped``), the file is reopened on the
next report, and recovery is logged: the other sinks keep running meanwhile.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from csi_edge.report import NodeReport
from csi_edge.sinks.rotate import RotatePolicy, RotatingFile

log = logging.getLogger("csi_edge.jsonl")


class JsonlSink:
    def __init__(self, path: str | Path, policy: RotatePolicy | None = None) -> None:
        self.path = Path(path)
        self.file = RotatingFile(self.path, policy)
        self.dropped = 0
        self.failing: str | None = None

    def publish(self, reports: list[NodeReport]) -> None:
        data = "".join(
            json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in reports
        ).encode()
        try:
            self.file.write(data)
            self.file.sync()
        except OSError as e:
            self.dropped += len(reports)
            why = e.strerror or str(e)
            if self.failing != why:
                self.failing = why
                log.error(
                    "sinks.jsonl %s: cannot write: %s; reports are not being saved (%d so far), "
                    "the other sinks keep running",
                    self.path, why, self.dropped,
                )
            self._reopen()
            return
        if self.failing is not None:
            log.warning(
                "sinks.jsonl %s: writing again (%d report(s) could not be saved)",
                self.path, self.dropped,
            )
            self.failing = None

    def _reopen(self) -> None:
        try:
            if self.file._f is not None:
                self.file._f.close()
        except OSError:
            pass  # the buffered data that failed is gone: counted in dropped
        self.file._f = None

    def stats(self) -> dict:
        return {"path": str(self.path), "dropped": self.dropped, "rotations": self.file.rotations,
                "failing": self.failing}

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as e:
            log.error("sinks.jsonl %s: last write failed: %s", self.path, e.strerror or e)
