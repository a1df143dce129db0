"""``csi-edge calibration build``: representative, balanced model inputs for quantization.

Windows are cut from real or simulated captures through the runtime's own input builder
(:mod:`csi_edge.calibration.inputs`), labelled by node, activity (still / moving / empty: from the
simulator's ground-truth sidecar when there is one, else from a motion statistic) and frame
layout (64/128/192 pairs), then sampled evenly across those strata so one long, still recording
from one node cannot dominate the activation ranges. A share of every stratum is held out for
parity reports. The output ``.npz`` holds the model's input array under its input name,
``split`` (0 calibration, 1 held out), labels, ground truth (``gt_*``) when known, and
``report_json`` (what was drawn).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.calibration.inputs import raw_bins, windows_for
from csi_edge.errors import InputError
from csi_edge.skips import SkipCounter

MOTION_FACTOR = 2.0  # a window is "moving" when its motion statistic is > 2x the capture median


class CalibrationError(InputError):
    """A user-facing problem with the captures or the model (names the file)."""


@dataclass
class Pool:
    """Every window drawn from the captures, before balancing."""

    x: list[np.ndarray] = field(default_factory=list)
    labels: dict[str, list] = field(
        default_factory=lambda: {k: [] for k in ("node", "activity", "layout", "source")}
    )
    gt: dict[str, list] = field(default_factory=dict)
    t_end: list[np.ndarray] = field(default_factory=list)
    skipped: SkipCounter = field(default_factory=SkipCounter)
    activity_source: set[str] = field(default_factory=set)


def _activity_from_truth(index: np.ndarray) -> np.ndarray:
    from csi_edge.sim.person import ACTIVITIES, MOVING

    names = np.asarray(ACTIVITIES)[np.clip(index.astype(int), 0, len(ACTIVITIES) - 1)]
    return np.where(
        names == "empty", "empty", np.where(np.isin(names, list(MOVING)), "moving", "still")
    )


def _activity_from_motion(motion: np.ndarray) -> np.ndarray:
    """Without ground truth: moving vs still by the window's amplitude variability.

    (An empty room cannot be told from a still person this way; the report says so.)
    """
    if not len(motion):
        return np.zeros(0, "U6")
    ref = max(float(np.median(motion)), 1e-6)
    return np.where(motion > MOTION_FACTOR * ref, "moving", "still")


def _truth(capture: Path):
    try:
        from csi_edge.sim.io import load_truth, truth_path
    except ImportError:  # pragma: no cover - the simulator ships with csi-edge
        return None
    if not truth_path(capture).exists():
        return None
    truth, _ = load_truth(capture)
    return truth


def add_capture(pool: Pool, capture: Path, manifest: Any, hop: int | None) -> Counter:
    """Decode one capture and add every node's windows to the pool."""
    from csi_edge.capture import CaptureError, read_capture

    try:
        res = read_capture(capture)
    except CaptureError as exc:
        raise CalibrationError(str(exc)) from None
    for reason, n in res.skipped.items():
        pool.skipped.skip(f"decode:{reason}", str(capture), n)
    frames = res.frames
    truth = _truth(capture)
    need = 64 if manifest.input["grid"] in ("lltf-ht20", "raw-64") else manifest.subcarriers
    drawn: Counter = Counter()
    for node, idx in frames.node_groups():
        sub = frames[idx]
        t = sub.meta["t_rx"].astype(np.float64)
        order = np.argsort(t, kind="stable")
        sub, t = sub[order], t[order]
        csi, keep = raw_bins(sub, res.iq_order, need)
        if (~keep).any():
            pool.skipped.skip(
                "frame-too-short", f"{capture} {node}: < {need} pairs", int((~keep).sum())
            )
        t, csi = t[keep], csi[keep]
        n_pairs = sub.meta["n_pairs"][keep]
        if manifest.input["grid"] == "lltf-ht20" and csi.shape[1] > 64:
            csi = csi[:, :64]
        win = windows_for(manifest, t, csi, n_pairs, hop)
        if not len(win.x):
            pool.skipped.skip("node-too-short", f"{capture} {node}: no full window", 1)
            continue
        if truth is not None:
            gt = truth.at(win.t_end)
            activity = _activity_from_truth(gt["activity"])
            pool.activity_source.add("ground truth")
            for key, arr in (
                ("gt_keypoints", gt["keypoints"]),
                ("gt_bpm", gt["breathing_bpm"]),
                ("gt_presence", gt["presence"]),
                ("gt_motion", gt["motion"]),
            ):
                pool.gt.setdefault(key, []).append(np.asarray(arr, np.float32))
        else:
            activity = _activity_from_motion(win.motion)
            pool.activity_source.add("motion statistic")
            for arr in pool.gt.values():  # keep gt arrays aligned: NaN where unknown
                width = arr[0].shape[1:] if arr else ()
                arr.append(np.full((len(win.x), *width), np.nan, np.float32))
        pool.x.append(win.x)
        pool.t_end.append(win.t_end)
        pool.labels["node"] += [node] * len(win.x)
        pool.labels["activity"] += list(activity)
        pool.labels["layout"] += list(win.layout)
        pool.labels["source"] += [Path(capture).name] * len(win.x)
        drawn[node] += len(win.x)
    return drawn


def _shares(sizes: list[int], n: int) -> list[int]:
    """Split ``n`` as evenly as possible over groups of the given sizes (water filling)."""
    take = [0] * len(sizes)
    left = min(n, sum(sizes))
    while left > 0:
        open_ = [i for i in range(len(sizes)) if take[i] < sizes[i]]
        each = max(1, left // len(open_))
        for i in open_:
            add = min(each, sizes[i] - take[i], left)
            take[i] += add
            left -= add
            if left == 0:
                break
    return take


def balance(levels: list[np.ndarray], n: int, rng: np.random.Generator, idx=None) -> np.ndarray:
    """Indices of ``n`` items, even over ``levels[0]`` (e.g. node), then within each over
    ``levels[1]`` (activity), and so on; groups too small to fill their share give all they
    have and the rest goes to the others."""
    idx = np.arange(len(levels[0])) if idx is None else idx
    if not levels:
        return np.sort(rng.permutation(idx)[:n])
    labels = levels[0][idx]
    keys = sorted(np.unique(labels))
    groups = [idx[labels == k] for k in keys]
    shares = _shares([len(g) for g in groups], n)
    picked = [
        balance(levels[1:], k, rng, g) if levels[1:] else rng.permutation(g)[:k]
        for g, k in zip(groups, shares, strict=False)
    ]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def input_name(manifest: Any) -> str:
    """The model input the windows feed: 'features' for streaming pose, else the window model's."""
    from csi_edge.inference.backends import open_model

    v = manifest.variant("fp32") if "fp32" in manifest.variants else manifest.variant()
    if "window" in v.files:
        model = open_model(manifest.path(v, "window"))
        return next(iter(model.inputs))
    return "features"


def build(
    captures: list[str | Path],
    manifest_path: str | Path,
    windows: int = 512,
    holdout: float = 0.2,
    seed: int = 0,
    hop: int | None = None,
    progress: Any = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Sample a balanced calibration set; returns (npz arrays, report)."""
    from csi_edge.inference.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as exc:
        raise CalibrationError(str(exc)) from None
    pool = Pool()
    per_capture = {}
    for cap in captures:
        if progress:
            progress(cap)
        per_capture[str(cap)] = dict(add_capture(pool, Path(cap), manifest, hop))
    if not pool.x:
        raise CalibrationError(
            "no full model window in any capture (need "
            f"{manifest.window} frames per node on the model's grid): {', '.join(map(str, captures))}"
        )
    x = np.concatenate(pool.x)
    labels = {k: np.asarray(v, "U64") for k, v in pool.labels.items()}
    strata = np.char.add(
        np.char.add(np.char.add(labels["node"], "|"), np.char.add(labels["activity"], "|")),
        labels["layout"],
    )
    rng = np.random.default_rng(seed)
    pick = balance([labels["node"], labels["activity"], labels["layout"]], windows, rng)
    split = np.zeros(len(pick), np.int8)
    for s in np.unique(strata[pick]):  # hold out a share of every stratum
        members = np.flatnonzero(strata[pick] == s)
        k = int(round(holdout * len(members)))
        if k == 0 and len(members) >= 2 and holdout > 0:
            k = 1
        split[rng.permutation(members)[:k]] = 1
    arrays: dict[str, np.ndarray] = {input_name(manifest): x[pick], "split": split}
    for k, v in labels.items():
        arrays[k] = v[pick]
    arrays["t_end"] = np.concatenate(pool.t_end)[pick]
    for k, parts in pool.gt.items():
        if len(parts) == len(pool.x):
            arrays[k] = np.concatenate(parts)[pick]

    def counts(a: np.ndarray) -> dict[str, int]:
        return {str(k): int(v) for k, v in zip(*np.unique(a, return_counts=True), strict=False)}

    report = {
        "model": str(manifest.source),
        "input": input_name(manifest),
        "input_shape": list(x.shape[1:]),
        "builder": "csi_edge.inference.runtime.FeatureBuilder + TimeResampler / WindowRuntime layout"
        if manifest.task != "vitals"
        else "csi_edge.dsp.features.vitals_window",
        "windows": int(len(pick)),
        "calibration": int((split == 0).sum()),
        "held_out": int((split == 1).sum()),
        "available": int(len(x)),
        "by_node": counts(arrays["node"]),
        "by_activity": counts(arrays["activity"]),
        "by_layout": counts(arrays["layout"]),
        "available_by_activity": counts(labels["activity"]),
        "activity_source": sorted(pool.activity_source),
        "ground_truth": sorted(k for k in arrays if k.startswith("gt_")),
        "sources": per_capture,
        "skipped": pool.skipped.as_dict(),
        "seed": seed,
    }
    if "motion statistic" in pool.activity_source:
        report["note"] = (
            "activity from a motion statistic (no ground-truth sidecar): 'empty' cannot be told "
            "from 'still' that way"
        )
    arrays["report_json"] = np.asarray(json.dumps(report))
    return arrays, report


def save(arrays: dict[str, np.ndarray], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def report_table(report: dict) -> str:
    lines = [
        f"calibration set: {report['windows']} windows ({report['calibration']} calibration, "
        f"{report['held_out']} held out) of {report['available']} available, input "
        f"{report['input']} {report['input_shape']}",
        f"  activity from: {', '.join(report['activity_source'])}",
    ]
    for key in ("by_node", "by_activity", "by_layout"):
        lines.append(
            f"  {key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in report[key].items())
        )
    if report["ground_truth"]:
        lines.append("  ground truth: " + ", ".join(report["ground_truth"]))
    if report["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in report["skipped"].items()))
    if "note" in report:
        lines.append(f"  note: {report['note']}")
    return "\n".join(lines)
