"""Parity reports: how far an export or a quantized model is from fp32, in the task's terms.

Every export and quantization writes one (JSON next to the model, plus a readable table):
max/mean abs difference vs the fp32 reference on held-out windows, the task metric (mean
keypoint error and PCK@20/@50 against ground truth when the data has it, else against fp32;
breathing-BPM error for vitals), model sizes and single-thread batch-1 latency on this machine.
``check`` turns the accuracy loss into a pass/fail against a threshold.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]

#: default accuracy-loss limits for ``--check`` (task metric, in its own unit). Measured on the
#: bundled models: a good INT8 encoder moves keypoint error by < 0.0005 and BPM error by < 0.05;
#: quantizing the attention head too cost 0.0085 (12 %), which these limits reject.
DEFAULT_MAX_LOSS = {"keypoints": 0.005, "bpm": 0.5, "raw": 0.05}
# COCO-17: shoulders 5, 6; hips 11, 12 (torso = shoulder midpoint to hip midpoint)
_SHOULDERS, _HIPS = (5, 6), (11, 12)


def _kp(a: np.ndarray) -> np.ndarray:
    """[..., 34] -> [N, 17, 2], last frame when a window of frames is given."""
    a = np.asarray(a, np.float64)
    if a.ndim == 3:
        a = a[:, -1]
    return a.reshape(len(a), -1, 2)


def pck(pred: np.ndarray, gt: np.ndarray, k: float) -> float:
    """Fraction of keypoints within k x torso length of ground truth
    (``edge/models/MODEL_SPEC.md``, "Keypoints and PCK")."""
    p, g = _kp(pred), _kp(gt)
    torso = np.linalg.norm(g[:, _SHOULDERS].mean(1) - g[:, _HIPS].mean(1), axis=-1)
    torso = np.maximum(torso, 1e-6)[:, None]
    return float((np.linalg.norm(p - g, axis=-1) < k * torso).mean())


def keypoint_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean Euclidean keypoint distance in normalized image units."""
    return float(np.linalg.norm(_kp(pred) - _kp(gt), axis=-1).mean())


def bpm(vitals: np.ndarray) -> np.ndarray:
    """Breathing BPM from the vitals head (column 0 is (BPM - 20) / 10, MODEL_SPEC)."""
    return np.asarray(vitals, np.float64)[:, 0] * 10.0 + 20.0


def task_metrics(task: str, out: list[np.ndarray], truth: dict[str, np.ndarray]) -> dict:
    if task == "pose":
        gt = truth.get("gt_keypoints")
        if gt is None or np.shape(out[0])[-1] != 34:
            return {}
        # score only windows with a person in view (the sidecar's presence, finite keypoints)
        ok = np.isfinite(gt).all(axis=1) & (np.abs(gt).sum(axis=1) > 0)
        if "gt_presence" in truth:
            ok &= np.asarray(truth["gt_presence"]) > 0.5
        if not ok.any():
            return {}
        pred = np.asarray(out[0])[ok]
        return {
            "keypoint_error": keypoint_error(pred, gt[ok]),
            "pck@20": pck(pred, gt[ok], 0.2),
            "pck@50": pck(pred, gt[ok], 0.5),
            "scored_windows": int(ok.sum()),
        }
    if task == "vitals":
        gt = truth.get("gt_bpm")
        if gt is None or np.shape(out[0])[-1] != 3:
            return {}
        ok = np.isfinite(gt)
        return {"bpm_mae": float(np.abs(bpm(out[0])[ok] - gt[ok]).mean()) if ok.any() else None}
    return {}


#: seconds of timing per model; CSI_EDGE_LATENCY_BUDGET_S lowers it where figures don't matter
LATENCY_BUDGET_S = float(os.environ.get("CSI_EDGE_LATENCY_BUDGET_S", "0.4"))


def latency_ms(run: Runner, inputs: dict[str, np.ndarray], budget_s: float | None = None) -> float:
    """Median wall time of one batch-1 call (warm), on this machine."""
    budget_s = LATENCY_BUDGET_S if budget_s is None else budget_s
    one = {k: v[:1] for k, v in inputs.items()}
    for _ in range(3):
        run(one)
    times = []
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end or len(times) < 10:
        t0 = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - t0)
        if len(times) >= 2000:
            break
    return float(np.median(times) * 1e3)


def compare(
    task: str,
    reference: Runner,
    candidate: Runner,
    inputs: dict[str, np.ndarray],
    output_names: list[str],
    truth: dict[str, np.ndarray] | None = None,
    sizes: dict[str, int] | None = None,
    labels: dict[str, str] | None = None,
    time_it: bool = True,
    data: str = "held-out windows",
) -> dict:
    """The parity record of ``candidate`` against ``reference`` on the same windows."""
    truth = truth or {}
    ref = reference(inputs)
    got = candidate(inputs)
    outputs: dict[str, dict] = {}
    worst, total, count = 0.0, 0.0, 0
    for name, r, g in zip(output_names, ref, got, strict=False):
        d = np.abs(np.asarray(r, np.float64) - np.asarray(g, np.float64))
        outputs[name] = {"max_abs_diff": float(d.max(initial=0)), "mean_abs_diff": float(d.mean())}
        worst = max(worst, float(d.max(initial=0)))
        total += float(d.sum())
        count += d.size
    ref_metrics = task_metrics(task, ref, truth)
    rec: dict[str, Any] = {
        "labels": labels or {},
        "task": task,
        "windows": int(len(next(iter(inputs.values())))),
        "data": data,
        "max_abs_diff": worst,
        "mean_abs_diff": total / max(count, 1),
        "outputs": outputs,
        "metrics": {"reference": ref_metrics, "candidate": task_metrics(task, got, truth)},
        "ground_truth": bool(ref_metrics),
    }
    if task == "pose" and np.shape(ref[0])[-1] == 34:
        # drift of the candidate from fp32 in the task's unit, available with or without truth
        rec["metrics"]["keypoint_drift_vs_reference"] = keypoint_error(got[0], ref[0])
    elif task == "vitals" and np.shape(ref[0])[-1] == 3:
        rec["metrics"]["bpm_drift_vs_reference"] = float(np.abs(bpm(got[0]) - bpm(ref[0])).mean())
    if sizes:
        rec["size_bytes"] = sizes
    if time_it:
        rec["latency_ms"] = {
            "reference": latency_ms(reference, inputs),
            "candidate": latency_ms(candidate, inputs),
            "batch": 1,
            "threads": 1,
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        }
    return rec


def loss(rec: dict) -> tuple[str, float]:
    """The accuracy loss ``--check`` judges: task metric vs truth when known, else drift."""
    m = rec["metrics"]
    ref, cand = m.get("reference", {}), m.get("candidate", {})
    if rec["task"] == "pose":
        if "keypoint_error" in ref:
            return "keypoints", cand["keypoint_error"] - ref["keypoint_error"]
        if "keypoint_drift_vs_reference" in m:
            return "keypoints", m["keypoint_drift_vs_reference"]
    if rec["task"] == "vitals":
        if ref.get("bpm_mae") is not None:
            return "bpm", cand["bpm_mae"] - ref["bpm_mae"]
        if "bpm_drift_vs_reference" in m:
            return "bpm", m["bpm_drift_vs_reference"]
    return "raw", rec["max_abs_diff"]


def check(rec: dict, max_loss: float | None = None) -> dict:
    kind, value = loss(rec)
    limit = DEFAULT_MAX_LOSS[kind] if max_loss is None else max_loss
    rec["check"] = {"loss_kind": kind, "loss": value, "threshold": limit, "ok": value <= limit}
    return rec["check"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}"
    return str(v)


def table(rec: dict) -> str:
    """A readable table of one parity record."""
    lab = rec.get("labels", {})
    ref_name, cand_name = lab.get("reference", "reference"), lab.get("candidate", "candidate")
    rows: list[tuple[str, str, str]] = []
    for key in sorted(set(rec["metrics"]["reference"]) | set(rec["metrics"]["candidate"])):
        rows.append(
            (
                key,
                _fmt(rec["metrics"]["reference"].get(key, "-")),
                _fmt(rec["metrics"]["candidate"].get(key, "-")),
            )
        )
    if "size_bytes" in rec:
        rows.append(
            (
                "size (KB)",
                _fmt(rec["size_bytes"]["reference"] / 1024),
                _fmt(rec["size_bytes"]["candidate"] / 1024),
            )
        )
    if "latency_ms" in rec:
        rows.append(
            (
                "latency (ms, batch 1, 1 thread)",
                _fmt(rec["latency_ms"]["reference"]),
                _fmt(rec["latency_ms"]["candidate"]),
            )
        )
    w0 = max([len(r[0]) for r in rows] + [28])
    w1 = max([len(r[1]) for r in rows] + [len(ref_name)])
    lines = [
        f"parity: {cand_name} vs {ref_name} on {rec['windows']} {rec.get('data', 'windows')}"
        + ("" if rec.get("ground_truth") else " (no ground truth: task metric vs reference)"),
        f"  max abs diff {_fmt(rec['max_abs_diff'])}, mean abs diff {_fmt(rec['mean_abs_diff'])}",
    ]
    for name, d in rec["outputs"].items():
        lines.append(f"    {name}: max {_fmt(d['max_abs_diff'])}, mean {_fmt(d['mean_abs_diff'])}")
    drift = {k: v for k, v in rec["metrics"].items() if k.endswith("_vs_reference")}
    for k, v in drift.items():
        lines.append(f"  {k.replace('_', ' ')}: {_fmt(v)}")
    lines.append(f"  {'':{w0}}  {ref_name:>{w1}}  {cand_name}")
    lines += [f"  {a:{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    if "check" in rec:
        c = rec["check"]
        verdict = "PASS" if c["ok"] else "FAIL"
        lines.append(
            f"  check: {c['loss_kind']} loss {_fmt(c['loss'])} <= {_fmt(c['threshold'])}: {verdict}"
        )
    return "\n".join(lines)


def write(rec: dict, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (.json) and the table next to it (.txt)."""
    path = Path(path)
    path.write_text(json.dumps(rec, indent=2, default=float) + "\n")
    txt = path.with_suffix(".txt")
    txt.write_text(table(rec) + "\n")
    return path, txt


def write_many(records: dict[str, dict], path: str | Path, title: str = "") -> tuple[Path, Path]:
    """Several graphs' records in one report: ``path`` (.json) and a .txt of tables."""
    path = Path(path)
    path.write_text(json.dumps({"title": title, "graphs": records}, indent=2, default=float) + "\n")
    txt = path.with_suffix(".txt")
    parts = [title] if title else []
    parts += [f"[{role}]\n{table(rec)}" for role, rec in records.items()]
    txt.write_text("\n\n".join(parts) + "\n")
    return path, txt
