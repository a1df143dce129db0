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

    from csi_edge.app.bench import BenchPlan, run_bench

    try:
        wins = tuple(int(w) for w in windows.split(",") if w.strip())
        if not wins or min(wins) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(
            f"expected positive integers like 16,64,256, got {windows!r}", param_hint="--windows"
        ) from None
    plan = BenchPlan(
        models=tuple(models),
        windows=wins,
        nodes=nodes,
        threads=threads,
        quick=quick,
        rate=rate,
        max_nodes=max_nodes,
        capacity=not no_capacity,
        startup=not no_startup,
    )
    result = run_bench(plan)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_tables(result)


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
