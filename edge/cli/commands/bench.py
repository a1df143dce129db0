"""``csi-edge bench``: latency, throughput and memory of the models on this machine."""

from __future__ import annotations

import click


@click.command()
@click.argument("models", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (stable keys).")
@click.option(
    "--threads", default=1, show_default=True, type=click.IntRange(1, 64),
    help="Intra-op threads per model (onnxruntime / LiteRT).",
)  # fmt: skip
@click.option(
    "--nodes", default=4, show_default=True, type=click.IntRange(1, 256),
    help="Nodes batched together (batch N latency, pipeline).",
)  # fmt: skip
@click.option("--quick", is_flag=True, help="Fewer repetitions (~11 s instead of ~25 s).")
@click.option("--no-startup", is_flag=True, help="Skip the cold-start child process.")
@click.option(
    "--windows", default="16,64,256", show_default=True, metavar="W,W,...",
    help="Window lengths for the streaming-vs-recompute comparison.",
)  # fmt: skip
@click.option(
    "--rate", default=50.0, show_default=True, type=click.FloatRange(1, 1000),
    help="Frames per second per node for the capacity verdict.",
)  # fmt: skip
@click.option(
    "--max-nodes", default=256, show_default=True, type=click.IntRange(1, 4096),
    help="Stop the capacity search at this many nodes.",
)  # fmt: skip
@click.option("--no-capacity", is_flag=True, help="Skip the sustained-nodes measurement.")
def command(
    models, as_json, threads, nodes, quick, no_startup, windows, rate, max_nodes, no_capacity
):
    """Measure the models on THIS machine: load time, latency p50/p90/p99 at batch 1 and at
    batch N (nodes), throughput, model size, for each backend and precision; the streaming
    temporal step against a full-window recompute at W = 16, 64, 256; the whole per-frame
    pipeline (features -> encoder -> temporal step -> head -> tracking); peak RSS; in a
    fresh process, the time from process start to first inference; and the verdict: how many
    nodes at --rate Hz this machine sustains on one core with pose and vitals, every frame
    processed (measured by doubling the node count through the gateway's own path until the
    load passes 0.8 of a core; not extrapolated).

    MODELS are bundle folders (with manifest.json), bundled model names, or bare .onnx /
    .tflite files. Without MODELS the bundled models are measured; when none are installed,
    random-weight bundles of the same shapes are generated (marked "synthetic").

    \b
    Examples:
      csi-edge bench                         bundled models, readable table
      csi-edge bench --quick --json > b.json for scripts (schema below)
      csi-edge bench edge/models/csi-edge-pose --nodes 8 --threads 2
      csi-edge bench model.int8.tflite model.onnx

    \b
    JSON: {"machine": {cpu, cores, threads, libraries...},
           "models": [{"model", "backend", "precision", "batch", "load_ms",
                       "p50_ms", "p90_ms", "p99_ms", "size_bytes", ...}],
           "streaming": [{"window", "step_ms", "full_ms", ...}],
           "pipeline": {...}, "rss_mb": peak, "startup": {...},
           "capacity": {"verdict", "sustained_nodes", "rate_hz", "steps": [...]}}
    """
    import json
    import sys
    import tempfile
    from pathlib import Path

    from tqdm import tqdm

    from csi_edge.inference import benchmark as bm
    from csi_edge.inference import limit_blas_threads

    limit_blas_threads(threads)  # as the gateway runs (open_runtime); see its docstring

    try:
        wins = tuple(int(w) for w in windows.split(",") if w.strip())
        if not wins or min(wins) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(
            f"expected positive integers like 16,64,256, got {windows!r}", param_hint="--windows"
        ) from None
    tmp = tempfile.TemporaryDirectory(prefix="csi-edge-bench-")
    notes: list[str] = []
    try:
        if models:
            paths, synthetic = [Path(m) for m in models], False
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
        capacity = pose is not None and not no_capacity
        steps = len(targets) + len(wins) + (1 if pose else 0) + (0 if no_startup else 1)
        steps += 1 if capacity else 0
        result = {"machine": bm.machine(threads), "models": [], "streaming": [], "pipeline": {}}
        with tqdm(total=steps, desc="bench", file=sys.stderr, leave=False,
                  disable=None) as bar:  # fmt: skip
            for t in targets:
                bar.set_postfix_str(f"{t.name}:{t.role} {t.variant or t.backend}")
                result["models"] += bm.bench_target(t, nodes, threads, quick)
                bar.update()
            cfg, full_graph, encoder, encoders, step_graphs = _temporal_of(pose, threads)
            for w in wins:
                bar.set_postfix_str(f"streaming W={w}")
                result["streaming"] += bm.bench_streaming(
                    (w,), quick, cfg=cfg, batches=sorted({1, nodes}), full_graph=full_graph,
                    encoder=encoder, step_graphs=step_graphs, encoders=encoders,
                    encoder_label="onnxruntime fp32" if encoder else "numpy",
                )  # fmt: skip
                bar.update()
            if pose:
                bar.set_postfix_str("pipeline")
                # the default variant (what the gateway runs), then the other ONNX precision
                result["pipeline"] = main = bm.bench_pipeline(pose, nodes, threads, quick)
                int8 = _int8_variant(pose)
                if int8 and main["variant"] != int8:
                    result["pipeline_int8"] = bm.bench_pipeline(pose, nodes, threads, quick, int8)
                elif int8 and _has_variant(pose, "fp32"):
                    result["pipeline_fp32"] = bm.bench_pipeline(pose, nodes, threads, quick, "fp32")
                if int8 and _has_variant(pose, "fp32"):
                    on = main if main["variant"] == int8 else result["pipeline_int8"]
                    on.update(bm.keypoint_error(pose, int8, reference="fp32"))
                bar.update()
            if capacity:
                result["capacity"] = _capacity(pose, bundles, rate, quick, bar, max_nodes)
                bar.update()
            result["rss_mb"] = bm.peak_rss_mb()
            if not no_startup and bundles:
                bar.set_postfix_str("cold start")
                result["startup"] = bm.bench_startup(bundles, threads)
                bar.update()
        if notes:
            result["notes"] = notes
        if as_json:
            click.echo(json.dumps(result, indent=2))
        else:
            _print_tables(result)
    finally:
        tmp.cleanup()


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


def _print_tables(r: dict) -> None:
    m = r["machine"]
    click.echo(
        f"machine: {m['cpu']} ({m['arch']}, {m['cores']} cores), {m['threads']} thread(s); "
        + ", ".join(f"{k} {v}" for k, v in m["libraries"].items())
    )
    for n in r.get("notes", []):
        click.echo(f"note: {n}")
    cap = r.get("capacity")
    if cap:
        click.echo("")
        click.echo(f"VERDICT: {cap['verdict']}")
        click.echo(
            "  load = CPU seconds per second of traffic (1.0 = one core busy); per step: "
            + ", ".join(f"{s['nodes']} nodes {s['load']:.2f}" for s in cap["steps"])
            + (" (quick: windows only partly filled, a low estimate)" if cap["warm_s"] < 30 else "")
        )
    click.echo("")
    hdr = f"{'model':<24}{'role':<14}{'backend':<12}{'prec':<6}{'batch':>5}{'load ms':>9}"
    hdr += f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'items/s':>10}{'size':>9}"
    click.echo(hdr)
    click.echo("-" * len(hdr))
    legend = (
        "  load ms: time to open the model; p50/p90/p99: latency of one call on `batch` items "
        "(one frame per node); items/s: batch / p50"
    )
    for x in r["models"]:
        click.echo(
            f"{x['model'][:23]:<24}{x['role'][:13]:<14}{x['backend']:<12}{x['precision']:<6}"
            f"{x['batch']:>5}{x['load_ms']:>9.1f}{x['p50_ms']:>9.3f}{x['p90_ms']:>9.3f}"
            f"{x['p99_ms']:>9.3f}{x['throughput_per_s']:>10.0f}{_kb(x['size_bytes']):>9}"
        )
    click.echo(legend)
    if r["streaming"]:
        s0 = r["streaming"][0]
        click.echo("")
        click.echo("streaming step vs full-window recompute, per call of `batch` frames:")
        click.echo(f"  step: {s0['step_impl']}")
        click.echo(f"  full: {s0['full_impl']} over the last W frames")
        click.echo(
            f"{'W':>6}{'batch':>6}{'step ms':>10}{'full ms':>10}{'x full':>8}"
            f"{'last-only ms':>14}{'x last':>8}{'head step':>11}{'head full':>11}{'x head':>8}"
        )
        extra = []
        for s in r["streaming"]:
            extra += [
                f"  W={s['window']} batch {s['batch']}: {k[:-8]} step {v:.4f} ms, "
                f"x{s['full_ms'] / v:.1f} vs full"
                for k, v in s.items()
                if k.endswith("_step_ms") and k != "head_step_ms"
            ]
            click.echo(
                f"{s['window']:>6}{s['batch']:>6}{s['step_ms']:>10.4f}{s['full_ms']:>10.4f}"
                f"{s['speedup_vs_full']:>8.1f}{s['recompute_last_ms']:>14.4f}"
                f"{s['speedup_vs_recompute_last']:>8.1f}{s['head_step_ms']:>11.4f}"
                f"{s['head_full_ms']:>11.4f}{s['speedup_head_only']:>8.1f}"
            )
        for line in extra:
            click.echo(line)
    for key in ("pipeline", "pipeline_int8", "pipeline_fp32"):
        p = r.get(key)
        if p:
            click.echo("")
            click.echo(
                f"pipeline {p['model']} [{p['variant']}], {p['nodes']} node(s) at {p['rate_hz']:g} Hz: "
                f"p50 {p['p50_ms']:.3f} / p90 {p['p90_ms']:.3f} / p99 {p['p99_ms']:.3f} ms per tick "
                f"(budget {p['budget_ms']} ms), {p['per_frame_ms']:.3f} ms per frame"
            )
            if p.get("pipeline_vs_model"):
                click.echo(
                    f"  whole path {p['pipeline_vs_model']:.2f}x the model's own stages "
                    f"({p['model_stages_ms']:.3f} ms: features + encoder + temporal head)"
                )
            if "keypoint_mae_vs_fp32" in p:
                click.echo(
                    f"  keypoints vs fp32 on the same frames: mean abs "
                    f"{p['keypoint_mae_vs_fp32']:.4f}, max {p['keypoint_max_vs_fp32']:.4f} "
                    "(normalized image units)"
                )
            click.echo(
                "  stages p50 ms: "
                + ", ".join(f"{k} {v:.3f}" for k, v in p["stages_p50_ms"].items())
            )
    click.echo("")
    click.echo(f"peak RSS of this benchmark process: {r['rss_mb']} MB")
    s = r.get("startup")
    if s and "error" not in s:
        click.echo(
            f"cold start (fresh process): first inference {s['first_inference_s']:.2f} s after "
            f"process start, all models ready {s['all_models_ready_s']:.2f} s, RSS {s['rss_mb']} MB"
            + (
                f" (a bare interpreter reaches its first statement after "
                f"{s['interpreter_baseline_s']:.2f} s)"
                if "interpreter_baseline_s" in s
                else ""
            )
        )
    elif s:
        click.echo(f"cold start failed: {s['error']}")


def _kb(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n < 1 << 20 else f"{n / 2**20:.1f} MB"
