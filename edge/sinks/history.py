"""The live page's per-node trace history, kept as numbers, not as a dict per point.

Why: the page asks ``/api/history`` for the last 600 reports per node (10 minutes). As one small
dict per report that was ~370 bytes a point with the values it kept alive, ~220 KB per node
once full, and the gateway's RSS kept climbing for the first 10 minutes of every run while it
filled (3.5 MB for 16 nodes). A ring of 8 float64 per point is 38 KB per node, allocated once
(``tests/test_memory_bounds.py``); the dicts are built only when the
page asks (once per page load).

Tri-state fields (presence, motion, online) keep None apart from False: NaN is None, 0 False,
1 True (undecided is never shown as "clear").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FIELDS = ("t", "b", "h", "p", "m", "hz", "rssi", "on")  # the page's names (live.html point())
_FLAGS = frozenset({"p", "m", "on"})


def history_values(r: dict) -> tuple:
    """What the page's traces need from one report, in :data:`FIELDS` order."""
    link = r.get("link") or {}
    return (
        r.get("t"),
        r.get("breathing_bpm"),
        r.get("heart_bpm"),
        r.get("presence"),
        r.get("motion"),
        link.get("rate_hz"),
        link.get("rssi"),
        link.get("online"),
    )


def _num(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan  # not a number: shown as unknown rather than failing the sink


class History:
    """The last ``points`` reports of one node (a fixed ring: its size never grows)."""

    def __init__(self, points: int) -> None:
        self._a = np.full((points, len(FIELDS)), np.nan)
        self._n = 0  # points appended so far

    def __len__(self) -> int:
        return min(self._n, len(self._a))

    @property
    def nbytes(self) -> int:
        return self._a.nbytes

    def append(self, r: dict) -> None:
        self._a[self._n % len(self._a)] = [_num(v) for v in history_values(r)]
        self._n += 1

    def points(self) -> list[dict]:
        """Oldest first, as the page reads them: numbers, None for unknown, flags as bools."""
        cap = len(self._a)
        rows = self._a if self._n <= cap else np.roll(self._a, -(self._n % cap), axis=0)
        out = []
        for row in rows[: len(self)].tolist():
            p = {}
            for name, v in zip(FIELDS, row, strict=True):
                if v != v:  # NaN
                    p[name] = None
                elif name in _FLAGS:
                    p[name] = v != 0.0
                else:
                    p[name] = v
            out.append(p)
        return out
