"""The labelled real ESP32 recordings in ``tests/data/labelled/`` as (times, LLTF CSI, labels).

Used by ``tests/test_vitals_real.py`` and ``scripts/bench_real_motion.py``: one loader, so the
benchmark and the tests score exactly the same seconds. See ``tests/data/PROVENANCE.md``.

Labels per recording: ``kind`` is "empty" (nobody there: a room, a still link, foil in the
link), "static" (a still hand in the link: nothing moves, presence not scored) or "labelled"
(per-frame labels: ``motion[k]`` True for frames of movement, ``present`` True throughout).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "labelled"
#: the esp32s2-har files carry no sample rate; ~900 frames per stand-up/walk/turn/sit-down
#: sequence (stand-up ~126 frames) fits ~50 Hz. An assumption, stated in PROVENANCE.md.
HAR_RATE_HZ = 50.0
#: their labels: SEATED_* is someone sitting still; every other label is movement
HAR_QUIET = ("SEATED",)


@dataclass
class Recording:
    name: str
    chip: str
    kind: str  # "empty" | "static" | "motion" | "labelled"
    t: np.ndarray  # receive times [k], seconds
    csi: np.ndarray  # complex64 [k, 53] LLTF grid
    motion: np.ndarray  # bool [k]: this frame is movement (per the file's labels)
    amplitude_only: bool = False

    @property
    def rate_hz(self) -> float:
        return (len(self.t) - 1) / max(float(self.t[-1] - self.t[0]), 1e-9)


def _csv(path: Path, chip: str, kind: str) -> Recording:
    from csi_edge.capture import read_capture
    from csi_edge.vitals.run import frame_times, lltf_frames

    frames = read_capture(path).frames
    t, _ = frame_times(frames)
    order = np.argsort(t, kind="stable")
    csi = lltf_frames(frames)[order]
    t = t[order]
    return Recording(path.stem, chip, kind, t, csi, np.full(len(t), kind == "motion"))


def _har(x_path: Path) -> Recording:
    """Amplitude [56, frames] (HT20 subcarriers -28..-1, 1..28) -> the 53-bin LLTF grid
    (-26..26, DC 0) with ZERO phase: these files keep no phase."""
    amp = np.load(x_path).T  # [frames, 56]
    labels = np.load(str(x_path).replace("-x.npy", "-y.npy"), allow_pickle=True).reshape(-1)
    csi = np.zeros((len(amp), 53), np.complex64)
    csi[:, :26] = amp[:, 2:28]
    csi[:, 27:] = amp[:, 28:54]
    t = np.arange(len(amp)) / HAR_RATE_HZ
    moving = np.array([not str(lab).startswith(HAR_QUIET) for lab in labels])
    return Recording(x_path.name[:-6], "esp32-s2", "labelled", t, csi, moving, True)


def recordings() -> list[Recording]:
    """Every labelled recording in tests/data/labelled, in a fixed order."""
    out = []
    for p in sorted((DATA / "tristsou").glob("*.csv")):
        out.append(
            _csv(p, "esp32-s3", "empty" if p.stem.startswith(("empty", "foil")) else "static")
        )
    for p in sorted((DATA / "mendelas").glob("*.csv")):
        kind = {"E00": "empty", "E01": "static", "E02": "motion"}[p.stem[:3]]
        out.append(_csv(p, "esp32", kind))
    for p in sorted((DATA / "esp32s2-har").glob("*-x.npy")):
        out.append(_har(p))
    return out


def second_labels(rec: Recording, ticks: np.ndarray) -> np.ndarray:
    """Per estimate tick (covering (tick-1, tick]): 1 motion, 0 quiet, -1 mixed/none (not
    scored: a second in which the label changes)."""
    lo = np.searchsorted(rec.t, ticks - 1.0, side="right")
    hi = np.searchsorted(rec.t, ticks, side="right")
    out = np.full(len(ticks), -1)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b > a:
            m = rec.motion[a:b]
            out[i] = 1 if m.all() else 0 if not m.any() else -1
    return out
