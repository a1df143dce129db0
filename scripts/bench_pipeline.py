#!/usr/bin/env python3
"""Benchmark: the per-frame pose pipeline, this checkout against a baseline revision, same run.

For each node count and ONNX precision, a fresh process runs the tree's own
``csi_edge.inference.benchmark.bench_pipeline`` (what ``csi-edge bench`` reports as
"pipeline": features -> time grid -> encoder -> temporal step -> decode -> tracking, one grid
tick of every node at a time) on the bundled pose model, first in the baseline revision, then in
this checkout, alternating so machine noise hits both alike; both pinned to the same CPU. With
``--repeat N`` each side runs N times and the lowest p50 is kept (noise only adds time).

    python scripts/bench_pipeline.py --baseline c11d71a            # 4, 16, 64 nodes
    python scripts/bench_pipeline.py --baseline main --nodes 4 --quick
    python scripts/bench_pipeline.py --baseline HEAD --json        # uncommitted changes vs HEAD

Columns: ``tick`` the whole path per tick (p50, ms), ``stages`` the model's own stages
(features + encoder + temporal head) measured on the same inputs in the same process,
``x`` their ratio (1.0 = no overhead), and per precision INT8 vs FP32 per frame.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capacity import ROOT, TREE_PRELUDE, checkout  # noqa: E402

CHILD = r"""
import json, os, sys, tempfile
tree, n, variant, quick, cpu = sys.argv[1:6]
""" + TREE_PRELUDE + r"""
from csi_edge.inference import benchmark as bm, limit_blas_threads
limit_blas_threads(1)
pose = os.path.join(tree, "edge", "models", "csi-edge-pose")
r = bm.bench_pipeline(pose, int(n), 1, quick == "1", variant)
print(json.dumps(r))
"""


def run_side(tree: Path, n: int, variant: str, args) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(n), variant, "1" if args.quick else "0",
         str(args.cpu)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"measurement failed in {tree} ({variant}, {n} nodes):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["p50_ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against")
    ap.add_argument("--nodes", default="4,16,64", help="node counts (comma separated)")
    ap.add_argument("--variants", default="fp32,int8", help="bundle variants (ONNX)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per side; the lowest p50 is kept")
    ap.add_argument("--cpu", type=int, default=0, help="CPU both sides are pinned to")
    ap.add_argument("--quick", action="store_true", help="fewer ticks per run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    variants = [v for v in args.variants.split(",") if v.strip()]
    res: dict[str, dict] = {"baseline": {}, "current": {}}
    with tempfile.TemporaryDirectory(prefix="csi-edge-baseline-") as tmp:
        base = checkout(args.baseline, Path(tmp))
        for n in counts:
            for v in variants:
                runs: dict[str, list[dict]] = {"baseline": [], "current": []}
                for _ in range(max(1, args.repeat)):
                    runs["baseline"].append(run_side(base, n, v, args))
                    runs["current"].append(run_side(ROOT, n, v, args))
                for side in runs:
                    res[side][f"{v}@{n}"] = _best(runs[side])
                if not args.json:
                    b, c = res["baseline"][f"{v}@{n}"], res["current"][f"{v}@{n}"]
                    print(
                        f"{n:3d} nodes {v:5s} tick {b['p50_ms']:.3f} -> {c['p50_ms']:.3f} ms "
                        f"(stages {b['model_stages_ms']:.3f} / {c['model_stages_ms']:.3f}; "
                        f"x {b['pipeline_vs_model']:.2f} -> {c['pipeline_vs_model']:.2f})",
                        flush=True,
                    )
    if "fp32" in variants and "int8" in variants:
        ratios = {
            side: {
                n: round(r[f"fp32@{n}"]["per_frame_ms"] / r[f"int8@{n}"]["per_frame_ms"], 2)
                for n in counts
            }
            for side, r in res.items()
        }
        res["int8_vs_fp32_per_frame"] = ratios
        if not args.json:
            for n in counts:
                print(
                    f"{n:3d} nodes INT8 vs FP32 per frame: {ratios['baseline'][n]:.2f}x -> "
                    f"{ratios['current'][n]:.2f}x"
                )
    if args.json:
        print(json.dumps({"baseline_rev": args.baseline, **res}, indent=1))


if __name__ == "__main__":
    main()
