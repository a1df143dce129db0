"""Per-node empty-room baselines: what 'nobody here' looks like for one node.

A baseline holds the node's quiet change rate (noise seen by the motion detector), the strongest
breathing-band SNR an empty room produced, and the static amplitude profile (mean and spread per
subcarrier). It is accumulated from still, empty-room seconds only, across as many runs as it
takes (``csi-edge calibrate`` is resumable), and stored as JSON per node:
``<dir>/<node-key-sanitized>.json`` with ``dir`` from ``--dir`` or the state directory's
``baselines/`` (:func:`csi_edge.paths.baselines_dir`). Before calibration :meth:`Baseline.default` is used: the detectors
then adapt to each node's own quiet level.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REQUIRED_STILL_S = 60.0
VERSION = 1


def baseline_dir(path: str | os.PathLike | None = None) -> Path:
    from csi_edge.paths import baselines_dir

    return Path(path) if path else baselines_dir()


def baseline_path(node: str, path: str | os.PathLike | None = None) -> Path:
    from csi_edge.frames import slug

    return baseline_dir(path) / f"{slug(node)}.json"


@dataclass
class Baseline:
    node: str = ""
    still_s: float = 0.0  # seconds of still, empty-room data accumulated so far
    required_s: float = REQUIRED_STILL_S
    runs: int = 0
    updated: float = 0.0
    # accumulated per-second statistics
    n_seconds: int = 0
    motion_levels: list[float] = field(default_factory=list)  # per-second quiet change rate
    breath_snrs: list[float] = field(default_factory=list)  # per-window empty-room SNR
    profile_sum: list[float] = field(default_factory=list)
    #: per-second change level (csi_edge.vitals.change) of the empty room
    change_levels: list[float] = field(default_factory=list)
    #: fingerprints of the data already folded in: the same capture twice counts once
    fingerprints: list[str] = field(default_factory=list)
    profile_sumsq: list[float] = field(default_factory=list)

    @classmethod
    def default(cls, node: str = "") -> Baseline:
        """The uncalibrated baseline: no profile, adaptive motion level, default thresholds."""
        return cls(node=node)

    @property
    def complete(self) -> bool:
        return self.still_s >= self.required_s

    @property
    def calibrated(self) -> bool:
        """True once enough still data is in for the detectors to use it."""
        return self.complete and self.n_seconds > 0

    @property
    def motion_level(self) -> float | None:
        return (
            float(np.median(self.motion_levels)) if self.calibrated and self.motion_levels else None
        )

    @property
    def change_level(self) -> float | None:
        return (
            float(np.median(self.change_levels)) if self.calibrated and self.change_levels else None
        )

    @property
    def breath_snr_max(self) -> float | None:
        return (
            float(np.percentile(self.breath_snrs, 99))
            if self.calibrated and self.breath_snrs
            else None
        )

    @property
    def profile(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.calibrated or not self.profile_sum:
            return None
        n = self.n_seconds
        mean = np.asarray(self.profile_sum) / n
        var = np.asarray(self.profile_sumsq) / n - mean**2
        return mean, np.sqrt(np.maximum(var, 1e-8))

    def add(self, still_s: float, motion_levels, breath_snrs, profiles: np.ndarray) -> None:
        """Fold one run's still seconds in."""
        profiles = np.atleast_2d(np.asarray(profiles, np.float64))
        self.still_s += float(still_s)
        self.motion_levels = (self.motion_levels + [float(v) for v in motion_levels])[-3600:]
        self.breath_snrs = (self.breath_snrs + [float(v) for v in breath_snrs])[-3600:]
        if len(profiles) and profiles.shape[1]:
            if not self.profile_sum or len(self.profile_sum) != profiles.shape[1]:
                self.profile_sum = [0.0] * profiles.shape[1]
                self.profile_sumsq = [0.0] * profiles.shape[1]
                self.n_seconds = 0
            self.profile_sum = (np.asarray(self.profile_sum) + profiles.sum(0)).tolist()
            self.profile_sumsq = (np.asarray(self.profile_sumsq) + (profiles**2).sum(0)).tolist()
            self.n_seconds += len(profiles)
        self.runs += 1
        self.updated = time.time()

    def to_json(self) -> dict:
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict) -> Baseline:
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        if d.get("version") != VERSION:
            raise ValueError(f"baseline version {d.get('version')!r}, expected {VERSION}")
        d = {k: v for k, v in d.items() if k != "version"}
        return cls(**d)


def load_baseline(node: str, path: str | os.PathLike | None = None) -> Baseline:
    """The stored baseline of ``node``, or the default if there is none.

    A corrupt file raises ``ValueError`` naming the file (the CLI turns it into a message).
    """
    p = baseline_path(node, path)
    if not p.exists():
        return Baseline.default(node)
    try:
        return Baseline.from_json(json.loads(p.read_text()))
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{p}: not a csi-edge baseline ({e})") from e


def save_baseline(b: Baseline, path: str | os.PathLike | None = None) -> Path:
    p = baseline_path(b.node, path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(b.to_json(), indent=1))
    tmp.replace(p)  # atomic: an interrupted run never leaves half a file
    return p
