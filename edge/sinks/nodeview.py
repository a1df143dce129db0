"""Console views of an ingest summary: the live per-node table and the final report.

Shared by ``csi-edge demo``, ``record`` and ``simulate-nodes``. Uses ``rich`` when it is installed
and the stream is a terminal; otherwise (pipes, CI logs) one plain line per refresh, so logs stay
readable and greppable.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from csi_edge.ingest import totals_line

COLUMNS = (
    "node",
    "frames",
    "rate Hz",
    "lost",
    "dups",
    "reord",
    "reboots",
    "RSSI",
    "layouts",
    "state",
)
_SHORT = ("node", "frames", "Hz", "lost", "dup", "reord", "boots", "RSSI", "layouts", "state")


def _layouts(node: dict) -> str:
    return " ".join(f"{p}:{c}" for p, c in node["subcarriers"].items()) or "-"


def _rate(hz: float | None) -> str:
    return "?" if hz is None else f"{hz:.1f}"  # unknown until the frames span a second


def node_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for key, n in sorted(summary["nodes"].items()):
        rows.append(
            (
                key,
                str(n["frames"]),
                _rate(n["rate_hz"]),
                str(n["lost"]),
                str(n["duplicates"]),
                str(n["reordered"]),
                str(n["reboots"]),
                "-" if n["rssi"] is None else f"{n['rssi']}",
                _layouts(n),
                "online" if n["online"] else "OFFLINE",
            )
        )
    return rows


def plain_line(summary: dict[str, Any]) -> str:
    """One line for non-terminal output, refreshed about once a second."""
    parts = [
        f"{k}: {n['frames']} fr {_rate(n['rate_hz'])} Hz lost {n['lost']} dup {n['duplicates']} "
        f"reboots {n['reboots']} rssi {n['rssi']}" + ("" if n["online"] else " OFFLINE")
        for k, n in sorted(summary["nodes"].items())
    ]
    return totals_line(summary) + (" | " + " | ".join(parts) if parts else "")


def rich_table(summary: dict[str, Any], title: str = "csi-edge ingest"):
    from rich import box
    from rich.table import Table

    rows = node_rows(summary)
    table = Table(
        title=title,
        caption=totals_line(summary),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
    )
    for c in _SHORT:
        left = c in ("node", "layouts", "state")
        width = max([len(c)] + [len(r[0]) for r in rows]) if c == "node" else None
        table.add_column(
            c, justify="left" if left else "right", no_wrap=not left or c == "node", min_width=width
        )
    for row in rows:
        style = None if row[-1] == "online" else "red"
        table.add_row(*row, style=style)
    return table


def final_text(summary: dict[str, Any]) -> str:
    """A fixed-width table for the end of a run (no rich needed)."""
    rows = [COLUMNS, *node_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([totals_line(summary), *lines])


class LiveView:
    """Refresh a per-node view about once a second: rich.Live on a terminal, else plain lines."""

    def __init__(
        self, stream: TextIO | None = None, *, title: str = "csi-edge ingest", enabled: bool = True
    ):
        self.stream = stream or sys.stdout
        self.title = title
        self.enabled = enabled
        self._live = None
        if enabled and self.stream.isatty():
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:  # rich is optional
                pass
            else:
                self._live = Live(
                    console=Console(file=self.stream), auto_refresh=False, transient=False
                )

    def __enter__(self) -> LiveView:
        if self._live is not None:
            self._live.__enter__()
        return self

    def update(self, summary: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(rich_table(summary, self.title), refresh=True)
        else:
            print(plain_line(summary), file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
