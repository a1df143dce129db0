"""The gateway's console view: a live table on a terminal, a plain line per node otherwise.

On a terminal ``rich`` redraws one table in place; in a pipe, a journal or CI log the sink prints
one greppable line per node every ``every_s`` seconds instead of a screen of escape codes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from csi_edge.report import NodeReport
from csi_edge.vitals.estimate import yes_no


def _fmt(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def report_cells(r: NodeReport) -> list[str]:
    link = r.link or {}
    pose = "-"
    if r.pose:
        conf = r.pose.get("confidence") or []
        pose = f"track {r.pose.get('track')} ({sum(c >= 0.3 for c in conf)}/17 kp)"
    nv = r.node_vitals or {}
    node_br = nv.get("breathing_bpm")
    model_br = (r.model_vitals or {}).get("breathing_bpm")
    return [
        r.name or r.node,  # the inventory's name; an unnamed node shows its key
        f"{_fmt(link.get('rate_hz'), 1)} Hz",
        str(link.get("lost", 0)),
        yes_no(r.presence),
        yes_no(r.motion),
        f"{_fmt(r.breathing_bpm, 1)} ({r.breathing_conf:.2f})",
        f"{_fmt(r.heart_bpm, 0)} ({r.heart_conf:.2f})",
        "-" if node_br is None else f"{node_br:.1f}",
        "-" if model_br is None else f"{model_br:.1f}",
        pose,
        r.reason or "",
    ]


HEADERS = [
    "node",
    "rate",
    "lost",
    "presence",
    "motion",
    "breathing bpm",
    "heart bpm",
    "node BR",
    "model BR",
    "pose",
    "note",
]


def reports_text(reports: list[NodeReport]) -> str:
    """A fixed-width table of reports (the end of a run; no rich needed)."""
    rows = [HEADERS] + [report_cells(r) for r in reports]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


class ConsoleSink:
    """Live table (rich, TTY) or plain lines (pipe); see module docstring."""

    def __init__(
        self,
        stream: TextIO | None = None,
        every_s: float = 5.0,
        live: bool | None = None,
        totals: Callable[[], str] | None = None,
        title: str = "csi-edge gateway",
    ) -> None:
        self.stream = stream or sys.stdout
        self.every_s = every_s
        self.totals = totals
        self.title = title
        self._last_plain = 0.0
        self._unprinted: list[NodeReport] | None = None
        self._live = None
        use_live = self.stream.isatty() if live is None else live
        if use_live:
            try:
                from rich.console import Console
                from rich.live import Live

                self._live = Live(
                    console=Console(file=self.stream), refresh_per_second=2, transient=False
                )
                self._live.start()
            except ImportError:
                self._live = None

    def publish(self, reports: list[NodeReport]) -> None:
        if self._live is not None:
            from rich.table import Table

            table = Table(
                title=f"{self.title} — {time.strftime('%H:%M:%S')}",
                caption=self.totals() if self.totals else None,
                expand=False,
            )
            for h in HEADERS:
                table.add_column(h)
            for r in reports:
                table.add_row(*report_cells(r))
            self._live.update(table)
            return
        now = time.monotonic()
        if now - self._last_plain < self.every_s * 0.9:  # reports come every ~1 s, with jitter
            self._unprinted = reports  # printed at close() if nothing newer is: the final state
            return
        self._last_plain = now
        self._unprinted = None
        self._write_plain(reports)

    def _write_plain(self, reports: list[NodeReport]) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.totals is not None:
            self.stream.write(f"{stamp} {self.totals()}\n")
        for r in reports:
            cells = report_cells(r)
            self.stream.write(
                f"{stamp} {cells[0]}: {cells[1]}, lost {cells[2]}, presence {cells[3]}, motion {cells[4]}, "
                f"breathing {cells[5]}, heart {cells[6]}, node BR {cells[7]}, model BR {cells[8]}, "
                f"pose {cells[9]}" + (f", note: {cells[10]}" if cells[10] else "") + "\n"
            )
        self.stream.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
        elif self._unprinted is not None:
            self._write_plain(self._unprinted)
            self._unprinted = None
