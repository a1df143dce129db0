#!/usr/bin/env python3
"""Benchmark: gateway load per node count, this checkout against a baseline revision, same run.

For each node count, a fresh process runs ``csi_edge.capacity.measure_load`` (datagrams ->
decode -> ingest -> per-node vitals buffers + pose runtime + tracker, reports once a second;
see that module) against the baseline revision's package, then another against this
checkout's, alternating so machine noise hits both alike. Both processes are pinned to the
same CPU. The measuring code is this checkout's ``edge/capacity.py`` in both: it only uses
interfaces the baseline already had.

    python scripts/bench_capacity.py --baseline 7acc82e            # 4, 16, 64 nodes at 50 Hz
    python scripts/bench_capacity.py --baseline main --nodes 4,8 --quick
    python scripts/bench_capacity.py --baseline HEAD --json        # uncommitted changes vs HEAD
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in the child: make `csi_edge` the given tree's edge/ folder, then load this checkout's
# capacity module against it.
#: The child's first lines after it has read ``tree`` and ``cpu``: pin it to one CPU and make
#: ``csi_edge`` that tree's edge/ folder (scripts/bench_pipeline.py uses it too).
TREE_PRELUDE = r"""
try:
    os.sched_setaffinity(0, {int(cpu)})
except (AttributeError, OSError):
    pass
link = os.path.join(tempfile.mkdtemp(), "csi_edge")
os.symlink(os.path.join(tree, "edge"), link)
sys.path.insert(0, os.path.dirname(link))
"""
CHILD = r"""
import importlib.util, json, os, sys, tempfile
tree, probe, n, rate, warm, meas, cpu = sys.argv[1:8]
""" + TREE_PRELUDE + r"""
from csi_edge.config import GatewayConfig
from csi_edge.service import load_pose_runtime, load_vitals_model
spec = importlib.util.spec_from_file_location("capacity_probe", probe)
cap = importlib.util.module_from_spec(spec); spec.loader.exec_module(cap)
cfg = GatewayConfig()
r = cap.measure_load(int(n), float(rate), load_pose_runtime(cfg), load_vitals_model(cfg),
                     warm_s=float(warm), measure_s=float(meas))
print(json.dumps(r))
"""


def checkout(rev: str, into: Path) -> Path:
    """The tracked files of ``rev`` (git archive: no worktree bookkeeping left behind)."""
    into.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=data, check=True)
    return into


def run_side(tree: Path, n: int, args) -> dict:
    env = {**os.environ, "CSI_EDGE_STATE_DIR": tempfile.mkdtemp(prefix="csi-edge-bench-")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(ROOT / "edge" / "capacity.py"), str(n),
         str(args.rate), str(args.warm), str(args.measure), str(args.cpu)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"measurement failed in {tree} at {n} nodes:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="git revision to compare against")
    ap.add_argument("--nodes", default="4,16,64", help="node counts (comma separated)")
    ap.add_argument("--rate", type=float, default=50.0, help="frames per second per node")
    ap.add_argument("--warm", type=float, default=32.0, help="seconds to fill the windows")
    ap.add_argument("--measure", type=float, default=3.0, help="seconds measured")
    ap.add_argument("--cpu", type=int, default=0, help="CPU both sides are pinned to")
    ap.add_argument("--quick", action="store_true", help="--warm 12 --measure 2")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.warm, args.measure = 12.0, 2.0
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="csi-edge-baseline-") as tmp:
        base = checkout(args.baseline, Path(tmp))
        for n in counts:
            b = run_side(base, n, args)
            c = run_side(ROOT, n, args)
            rows.append({"nodes": n, "baseline": b, "current": c,
                         "load_ratio": round(b["load"] / max(c["load"], 1e-9), 2)})  # fmt: skip
            if not args.json:
                print(
                    f"{n:4d} nodes at {args.rate:g} Hz: load {b['load']:.3f} -> {c['load']:.3f} "
                    f"of one core ({rows[-1]['load_ratio']:.2f}x less), "
                    f"{b['cpu_ms_per_frame']:.4f} -> {c['cpu_ms_per_frame']:.4f} ms per frame",
                    flush=True,
                )
    if args.json:
        print(json.dumps({"baseline": args.baseline, "rate_hz": args.rate, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
