"""What ``csi-edge bench`` measures, in which order, with one progress bar.

The measurements themselves are :mod:`csi_edge.inference.benchmark`; this module picks the
targets (given models, the bundled ones, or random-weight stand-ins), finds the pose bundle for
the pipeline, streaming and capacity steps, and assembles the one JSON document the command
prints (its schema is in ``csi-edge bench --help``).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BenchPlan:
    """The command's options (see ``csi-edge bench --help``)."""

    models: tuple[str, ...] = ()
    windows: tuple[int, ...] = (16, 64, 256)
    nodes: int = 4
    threads: int = 1
    quick: bool = False
    rate: float = 50.0
    max_nodes: int = 256
    capacity: bool = True
    startup: bool = True


def run_bench(plan: BenchPlan) -> dict[str, Any]:
    """Run every measurement of ``plan`` (a tqdm bar on stderr when it is a terminal)."""
    from tqdm import tqdm

    from csi_edge.inference import benchmark as bm
    from csi_edge.inference import limit_blas_threads

    threads, nodes, quick = plan.threads, plan.nodes, plan.quick
    limit_blas_threads(threads)  # as the gateway runs (open_runtime); see its docstring
    tmp = tempfile.TemporaryDirectory(prefix="csi-edge-bench-")
    notes: list[str] = []
    try:
        if plan.models:
            paths, synthetic = [Path(m) for m in plan.models], False
        else:
            paths, synthetic = bm.default_paths(Path(tmp.name))
            if synthetic:
                notes.append(
                    "no bundled models installed: measured random-weight bundles of the same "
                    "shapes (speed and memory are representative, outputs are not)"
                )
        targets = [t for p in paths for t in bm.targets_for(p, synthetic)]  # InputError names it
        bundles = [p for p in paths if bm.is_bundle(p) or not Path(p).suffix]
        pose = _pose_bundle(bundles)
        capacity = pose is not None and plan.capacity
        steps = len(targets) + len(plan.windows) + (1 if pose else 0) + (1 if plan.startup else 0)
        steps += 1 if capacity else 0
        result: dict[str, Any] = {
            "machine": bm.machine(threads),
            "models": [],
            "streaming": [],
            "pipeline": {},
        }
        with tqdm(total=steps, desc="bench", file=sys.stderr, leave=False,
                  disable=None) as bar:  # fmt: skip
            for t in targets:
                bar.set_postfix_str(f"{t.name}:{t.role} {t.variant or t.backend}")
                result["models"] += bm.bench_target(t, nodes, threads, quick)
                bar.update()
            cfg, full_graph, encoder, encoders, step_graphs = _temporal_of(pose, threads)
            for w in plan.windows:
                bar.set_postfix_str(f"streaming W={w}")
                result["streaming"] += bm.bench_streaming(
                    (w,), quick, cfg=cfg, batches=sorted({1, nodes}), full_graph=full_graph,
                    encoder=encoder, step_graphs=step_graphs, encoders=encoders,
                    encoder_label="onnxruntime fp32" if encoder else "numpy",
                )  # fmt: skip
                bar.update()
            if pose:
                bar.set_postfix_str("pipeline")
                result.update(_pipelines(pose, nodes, threads, quick))
                bar.update()
            if capacity:
                result["capacity"] = _capacity(pose, bundles, plan.rate, quick, bar, plan.max_nodes)
                bar.update()
            result["rss_mb"] = bm.peak_rss_mb()
            if plan.startup and bundles:
                bar.set_postfix_str("cold start")
                result["startup"] = bm.bench_startup(bundles, threads)
                bar.update()
        if notes:
            result["notes"] = notes
        return result
    finally:
        tmp.cleanup()


def _pipelines(pose, nodes: int, threads: int, quick: bool) -> dict[str, Any]:  # noqa: ANN001
    """The default variant (what the gateway runs), then the other ONNX precision, and the
    INT8 keypoint error against FP32."""
    from csi_edge.inference import benchmark as bm

    out: dict[str, Any] = {}
    out["pipeline"] = main = bm.bench_pipeline(pose, nodes, threads, quick)
    int8 = _int8_variant(pose)
    if int8 and main["variant"] != int8:
        out["pipeline_int8"] = bm.bench_pipeline(pose, nodes, threads, quick, int8)
    elif int8 and _has_variant(pose, "fp32"):
        out["pipeline_fp32"] = bm.bench_pipeline(pose, nodes, threads, quick, "fp32")
    if int8 and _has_variant(pose, "fp32"):
        on = main if main["variant"] == int8 else out["pipeline_int8"]
        on.update(bm.keypoint_error(pose, int8, reference="fp32"))
    return out


def _capacity(pose, bundles, rate: float, quick: bool, bar, max_nodes: int) -> dict:
    """The sustained-nodes verdict (csi_edge.capacity) with this pose bundle and, when one
    was given or is bundled, a vitals model."""
    from csi_edge.capacity import sustained_nodes, verdict
    from csi_edge.inference.manifest import load_manifest
    from csi_edge.inference.runtime import open_runtime

    vitals = next((b for b in bundles if _task_of(b) == "vitals"), None)
    cap = sustained_nodes(
        rate,
        pose=lambda: open_runtime(pose, capacity=4),
        vitals_model=(lambda: open_runtime(vitals)) if vitals else None,
        start=min(4, max_nodes),
        limit=max_nodes,
        warm_s=11.0 if quick else 32.0,
        measure_s=1.0 if quick else 3.0,
        progress=lambda m: bar.set_postfix_str(f"capacity: {m}"),
    )
    cap["pose_model"] = load_manifest(pose).name
    cap["vitals_model"] = load_manifest(vitals).name if vitals else None
    cap["verdict"] = verdict(cap, True, vitals is not None)
    return cap


def _task_of(bundle) -> str | None:
    from csi_edge.inference.manifest import load_manifest

    try:
        return load_manifest(bundle).task
    except Exception:  # noqa: BLE001 - not a bundle: no task
        return None


def _pose_bundle(bundles):
    from csi_edge.inference.manifest import load_manifest

    for b in bundles:
        try:
            m = load_manifest(b if b.is_dir() else b)
        except Exception:  # a bare name that is no bundle: not a pose pipeline candidate
            continue
        if m.task == "pose" and any("encoder" in v.files for v in m.variants.values()):
            return b
    return None


def _has_variant(bundle, name: str) -> bool:
    from csi_edge.inference.manifest import load_manifest

    return name in load_manifest(bundle).variants


def _int8_variant(bundle) -> str | None:
    from csi_edge.inference.manifest import load_manifest

    m = load_manifest(bundle)
    for v in m.variants.values():
        if v.precision == "int8" and v.backend == "onnxruntime" and "encoder" in v.files:
            return v.name
    return None


def _temporal_of(bundle, threads: int):
    """For the streaming comparison: the pose model's head shape, its exported ``full`` graph
    (the recompute baseline), its fp32 onnxruntime encoder (the step's encoder: same backend
    and precision as the baseline), other encoders (INT8) and exported step graphs."""
    from csi_edge.temporal import TemporalConfig

    if bundle is None:
        return TemporalConfig(), None, None, {}, {}
    from csi_edge.inference.benchmark import model_encoder
    from csi_edge.inference.bundle import open_role
    from csi_edge.inference.manifest import load_manifest

    m = load_manifest(bundle)
    full, encoder, encoders, steps = None, None, {}, []
    for v in m.variants.values():
        if v.backend == "onnxruntime" and "encoder" in v.files:
            if v.precision == "fp32" and encoder is None:
                encoder = model_encoder(open_role(m, v, "encoder", threads))
                if "full" in v.files:
                    full = open_role(m, v, "full", threads)
            elif v.precision != "fp32":
                label = f"onnxruntime_{v.name}_encoder".replace("-", "_")
                encoders[label] = model_encoder(open_role(m, v, "encoder", threads))
        if {"encoder", "temporal_step"} <= set(v.files):
            label = f"{v.backend}_{v.name}_graphs".replace("-", "_")
            enc = open_role(m, v, "encoder", threads)
            steps.append((label, enc, open_role(m, v, "temporal_step", threads)))
    return TemporalConfig.from_dict(m.temporal), full, encoder, encoders, {m.window: steps}
