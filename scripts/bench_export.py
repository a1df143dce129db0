#!/usr/bin/env python
"""Benchmark the variants of a model bundle: fp32 ONNX vs INT8 ONNX vs INT8 LiteRT (and fp32
LiteRT), as ratios against fp32 ONNX measured in the same run, on this machine.

    python scripts/bench_export.py                         # the bundled models (edge/models)
    python scripts/bench_export.py path/to/bundle --batch 4

Per call: pose bundles run one frame through encoder + temporal step (the gateway's per-frame
cost, graph head), and the encoder alone (the per-frame part INT8 targets); window models run
one window. Single thread, median of repeated runs after
warm-up. Sizes are the bytes each variant ships (``full`` reference graph and weights excluded).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def median_ms(fn, seconds: float) -> float:
    for _ in range(20):
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 50:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def variant_call(bundle_dir: Path, variant: str, batch: int):
    from csi_edge.inference.bundle import load_bundle

    roles = None
    b = load_bundle(bundle_dir, variant=variant, threads=1, roles=roles)
    m = b.manifest
    rng = np.random.default_rng(0)
    if "encoder" in b.models:
        t = m.temporal
        feats = rng.standard_normal((batch, m.feature_dim)).astype(np.float32)
        k = np.zeros((batch, t["heads_kv"], t["window"], t["head_dim"]), np.float32)
        count = np.full(batch, 5, np.int64)
        enc, step = b.models["encoder"], b.models["temporal_step"]

        def call():
            e = enc.run({"features": feats})["embedding"]
            step.run({"embedding": e, "k_cache": k, "v_cache": k, "count": count})

        call.encoder = lambda: enc.run({"features": feats})
        return call, b.size_bytes() - _extra(b)
    model = b.models["window"]
    name, (shape, _) = next(iter(model.inputs.items()))
    x = rng.standard_normal([batch if d is None else d for d in shape]).astype(np.float32)
    if shape[0] is not None and shape[0] != batch:  # LiteRT graphs have batch 1
        x = x[:1]
    return (lambda: model.run({name: x})), b.size_bytes() - _extra(b)


def _extra(b) -> int:
    """Bytes of files not run per call (numpy-head weights, the ``full`` reference graph)."""
    return sum(
        b.manifest.path(b.variant, r).stat().st_size
        for r in b.variant.files
        if r in ("weights", "full")
    )


def bench(bundle_dir: Path, batch: int, seconds: float) -> dict:
    from csi_edge.inference.manifest import load_manifest

    m = load_manifest(bundle_dir)
    out = {}
    for name in m.variants:
        call, size = variant_call(bundle_dir, name, batch)
        out[name] = {"ms": median_ms(call, seconds), "bytes": size}
        if hasattr(call, "encoder"):
            out[name]["encoder_ms"] = median_ms(call.encoder, seconds)
    base = out.get("fp32", next(iter(out.values())))
    for v in out.values():
        v["speedup_vs_fp32_onnx"] = base["ms"] / v["ms"]
        v["size_vs_fp32_onnx"] = v["bytes"] / base["bytes"]
        if "encoder_ms" in v:
            v["encoder_speedup_vs_fp32_onnx"] = base["encoder_ms"] / v["encoder_ms"]
    return out


def main() -> None:
    from csi_edge.inference.bundle import bundled_models

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", nargs="*", type=Path)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per variant")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    bundles = args.bundles or bundled_models()
    results = {str(b): bench(b, args.batch, args.seconds) for b in bundles}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for b, res in results.items():
        print(f"{b} (batch {args.batch}, 1 thread)")
        enc = all("encoder_ms" in r for r in res.values())
        head = f"  {'variant':14} {'ms/call':>9} {'speedup':>8} {'KB':>8} {'size':>6}"
        print(head + (f" {'encoder ms':>11} {'speedup':>8}" if enc else ""))
        for name, r in res.items():
            line = (
                f"  {name:14} {r['ms']:9.4f} {r['speedup_vs_fp32_onnx']:7.2f}x "
                f"{r['bytes'] / 1024:8.1f} {r['size_vs_fp32_onnx']:5.2f}x"
            )
            if enc:
                line += f" {r['encoder_ms']:11.4f} {r['encoder_speedup_vs_fp32_onnx']:7.2f}x"
            print(line)


if __name__ == "__main__":
    main()
