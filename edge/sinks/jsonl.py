"""Append every report as one JSON line: the simplest record of what the gateway saw."""

from __future__ import annotations

import json
from pathlib import Path

from csi_edge.report import NodeReport


class JsonlSink:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def publish(self, reports: list[NodeReport]) -> None:
        for r in reports:
            self._file.write(json.dumps(r.to_json(), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
