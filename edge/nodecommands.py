"""Actions on one node while the gateway runs: recalibrate its room baseline, set its motion
sensitivity (Home Assistant's Recalibrate button and sensitivity number, or any caller).

The per-node state they act on lives with the estimators (on their worker thread or in their
child process), so a command travels with the next estimate job and acts there:

* **recalibrate**: after ``delay_s`` (time to leave the room) the node's frames are collected
  for ``seconds`` (75 by default: a complete baseline needs 60 s of a still room); they become a
  NEW baseline (a press means "this is the empty room now": furniture moved, the old one is
  stale), checked exactly as ``csi-edge baseline`` checks (refused, and the old baseline kept,
  if they show motion or a breathing-like signal); it is saved and the running estimator uses
  it at once. The status (waiting, collecting, accepted,
  refused, with the reason) is reported per node.
* **motion ratio**: the change ratio above which this node flags motion (default 2.0 from
  ``[vitals] motion_ratio``; lower is more sensitive). Kept in the state directory
  (``node-settings.json``) so it survives restarts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.errors import InputError

log = logging.getLogger("csi_edge.nodecommands")

MOTION_RATIO_RANGE = (1.1, 10.0)  #: 1.0 is what noise alone gives (docs/vitals.md)
RECALIBRATE_SECONDS = (20.0, 600.0)  #: a baseline needs >= 20 s of a still, empty room
RECALIBRATE_S = 75.0  #: the default: enough for a complete baseline (60 s still)
SETTINGS_FILE = "node-settings.json"


@dataclass(frozen=True)
class Recalibrate:
    key: str
    seconds: float = RECALIBRATE_S
    delay_s: float = 10.0


@dataclass(frozen=True)
class SetMotionRatio:
    key: str
    ratio: float


Command = Recalibrate | SetMotionRatio


def recalibrate(key: str, seconds: float = RECALIBRATE_S, delay_s: float = 10.0) -> Recalibrate:
    """A checked :class:`Recalibrate` (InputError naming the value when out of range)."""
    lo, hi = RECALIBRATE_SECONDS
    if not lo <= float(seconds) <= hi:
        raise InputError(f"recalibrate {key}: seconds must be {lo:g}-{hi:g}, got {seconds!r}")
    if not 0.0 <= float(delay_s) <= 600.0:
        raise InputError(f"recalibrate {key}: delay must be 0-600 s, got {delay_s!r}")
    return Recalibrate(key, float(seconds), float(delay_s))


def motion_ratio(key: str, value: Any) -> SetMotionRatio:
    """A checked :class:`SetMotionRatio`."""
    lo, hi = MOTION_RATIO_RANGE
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise InputError(f"motion ratio for {key}: expected a number, got {value!r}") from None
    if not lo <= ratio <= hi:
        raise InputError(f"motion ratio for {key}: must be {lo:g}-{hi:g}, got {ratio:g}")
    return SetMotionRatio(key, ratio)


# -- per-node settings on disk --------------------------------------------------------------------
def settings_path(state_dir: str | os.PathLike) -> Path:
    return Path(state_dir) / SETTINGS_FILE


def load_settings(state_dir: str | os.PathLike | None) -> dict[str, dict]:
    """``{node key: {"motion_ratio": x}}``; a missing file is empty, a bad one is logged and
    ignored (the defaults apply; the file is rewritten at the next change)."""
    if state_dir is None:
        return {}
    path = settings_path(state_dir)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s: unreadable per-node settings (%s); using the defaults", path, e)
        return {}
    out = {}
    for key, s in (doc.get("nodes") or {}).items() if isinstance(doc, dict) else ():
        try:
            out[key] = {"motion_ratio": motion_ratio(key, s["motion_ratio"]).ratio}
        except (InputError, KeyError, TypeError) as e:
            log.warning("%s: node %s: %s; ignored", path, key, e)
    return out


def save_settings(state_dir: str | os.PathLike, settings: dict[str, dict]) -> Path:
    """Write atomically (a crash leaves the old file or the new one, never half of one)."""
    path = settings_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"nodes": settings}, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


# -- recalibration, on the estimators' side ------------------------------------------------------
class LiveCalibration:
    """The frames of one node being collected for a new baseline."""

    def __init__(self, cmd: Recalibrate, now: float) -> None:
        self.key = cmd.key
        self.start = now + cmd.delay_s
        self.until = self.start + cmd.seconds
        self._t: list[np.ndarray] = []
        self._x: list[np.ndarray] = []

    def feed(self, t: np.ndarray, csi: np.ndarray) -> None:
        keep = (t >= self.start) & (t < self.until)
        if keep.any():
            self._t.append(t[keep])
            self._x.append(csi[keep])

    def status(self, now: float) -> dict:
        if now < self.start:
            return {"state": "waiting", "message": f"starts in {self.start - now:.0f} s: leave the room",
                    "until": self.until}  # fmt: skip
        return {"state": "collecting", "message": f"{self.until - now:.0f} s left: keep the room empty",
                "until": self.until}  # fmt: skip

    def finish(self, baselines_dir, config):  # noqa: ANN001, ANN201
        """(final status, the new baseline or None when refused); an accepted one is saved."""
        from csi_edge.vitals.baseline import Baseline, save_baseline
        from csi_edge.vitals.room import calibrate_node

        if not self._t:
            return {"state": "refused", "message": "no frames arrived while collecting"}, None
        if len({x.shape[1:] for x in self._x}) > 1:
            return {"state": "refused", "message": "the node changed its CSI width"}, None
        baseline = Baseline.default(self.key)
        t = np.concatenate(self._t)
        x = np.concatenate(self._x)
        order = np.argsort(t, kind="stable")
        out = calibrate_node(self.key, t[order], x[order], baseline, config)
        if not out.accepted:
            return {"state": "refused", "message": out.message}, None
        try:
            where = save_baseline(baseline, baselines_dir)
        except OSError as e:
            return {"state": "refused", "message": f"cannot save the baseline: {e}"}, None
        return {"state": "accepted", "message": f"{out.message}; saved {where}"}, baseline
