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
    scored: np.ndarray | None = None  # bool [k]: False = not scored (label unknown)

    @property
    def rate_hz(self) -> float:
        return (len(self.t) - 1) / max(float(self.t[-1] - self.t[0]), 1e-9)


#: The mendelas recordings (20 s each) follow one protocol: the link is left undisturbed for the
#: first ~10 s, then the action starts (a hand waved, or a hand moved into the link and held).
#: Visible in all 12 files: the change ratio is 0.9-1.3 before 10 s in every one, and rises in
#: the E01/E02 files within a second after it. File-name labels alone would call the quiet first
#: half "motion"; see tests/data/PROVENANCE.md.
MENDELAS_ACTION_S = 10.0


def _mendelas(path: Path) -> Recording:
    kind = {"E00": "empty", "E01": "static", "E02": "motion"}[path.stem[:3]]
    rec = _csv(path, "esp32", kind)
    rel = rec.t - rec.t[0]
    after = rel >= MENDELAS_ACTION_S
    rec.motion = after if kind == "motion" else np.zeros(len(rel), bool)
    # E01: the hand moves into the link at ~10 s and is then held still: neither quiet nor
    # movement by label, so those seconds are not scored.
    rec.scored = ~after if kind == "static" else np.ones(len(rel), bool)
    return rec


def _csv(path: Path, chip: str, kind: str) -> Recording:
    """Frame times as the decoder gives them (``csi-edge vitals`` sees the same): the node's
    ``local_timestamp`` on its ``real_timestamp`` timeline (docs/text-captures.md §5)."""
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


def _load(tristsou: list[Path], mendelas: list[Path], har: list[Path]) -> list[Recording]:
    out = []
    for p in tristsou:
        kind = "empty" if p.stem.startswith(("empty", "foil")) else "static"
        out.append(_csv(p, "esp32-s3", kind))
    out += [_mendelas(p) for p in mendelas]
    out += [_har(p) for p in har]
    return out


def recordings() -> list[Recording]:
    """Every labelled recording in tests/data/labelled, in a fixed order."""
    return _load(
        sorted((DATA / "tristsou").glob("*.csv")),
        sorted((DATA / "mendelas").glob("*.csv")),
        sorted((DATA / "esp32s2-har").glob("*-x.npy")),
    )


def heldout_recordings(root: Path) -> list[Recording]:
    """The recordings of the same three sources under ``root`` (a folder holding the original
    ``esp32-csi-tool-labelled/{tristsou,mendelas}`` and ``esp32s2-har-amplitude`` folders) that
    are NOT in tests/data: never used to choose a default, so they check that none was tuned to
    the test files. Empty when ``root`` holds none of them."""
    root = Path(root)
    kept = {p.name for p in DATA.glob("*/*")}

    def new(folder: Path, pattern: str) -> list[Path]:
        return sorted(p for p in folder.glob(pattern) if p.name not in kept)

    lab = root / "esp32-csi-tool-labelled"
    return _load(
        new(lab / "tristsou", "*.csv"),
        new(lab / "mendelas", "*.csv"),
        new(root / "esp32s2-har-amplitude", "*-x.npy"),
    )


#: The motion detector decides each second from its last 2 s of frames
#: (``VitalsConfig.motion_ratio_window_s``), so a tick is scored quiet or movement only when
#: all of (tick - 2 s, tick] carries that label: a tick whose window holds a label change is
#: neither (and per-frame labels made by hand are not exact to the frame anyway).
LABEL_WINDOW_S = 2.0


def second_labels(
    rec: Recording, ticks: np.ndarray, window_s: float = LABEL_WINDOW_S
) -> np.ndarray:
    """Per estimate tick (covering (tick-window_s, tick]): 1 motion, 0 quiet, -1 mixed/none (not
    scored: a window in which the label changes)."""
    lo = np.searchsorted(rec.t, ticks - window_s, side="right")
    hi = np.searchsorted(rec.t, ticks, side="right")
    out = np.full(len(ticks), -1)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b > a:
            m = rec.motion[a:b]
            if rec.scored is not None and not rec.scored[a:b].all():
                continue
            out[i] = 1 if m.all() else 0 if not m.any() else -1
    return out
