#!/usr/bin/env python3
"""Benchmark: where INT8 can pay on the bundled pose model, each option timed in one run.

Per batch (nodes): the encoder fp32 / int8 on onnxruntime at each graph optimization level
(one intra-op thread, sequential, as the gateway opens it), the temporal step as numpy fp32
(the runtime's default head) against the exported fp32 step graph on onnxruntime, and the
feature builder (which no precision changes). Prints p50 ms per call.

    python scripts/bench_int8_options.py --nodes 4,16,64
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
POSE = ROOT / "edge" / "models" / "csi-edge-pose"


def _session(path: Path, level):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main() -> None:
    import onnxruntime as ort

    from csi_edge.inference import benchmark as bm
    from csi_edge.inference import limit_blas_threads
    from csi_edge.inference.bundle import load_bundle
    from csi_edge.inference.runtime import PoseRuntime

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="4,16,64")
    args = ap.parse_args()
    limit_blas_threads(1)
    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    rt = PoseRuntime(load_bundle(POSE, variant="fp32"), capacity=64)
    rng = np.random.default_rng(0)
    for n in (int(x) for x in args.nodes.split(",")):
        csi = ((rng.standard_normal((n, 128)) + 1j * rng.standard_normal((n, 128))) * 10).astype(
            np.complex64
        )
        feats = np.ascontiguousarray(rt.features(csi), np.float32)
        row = {"features": bm.time_calls(lambda c=csi: rt.features(c))}
        for prec in ("fp32", "int8"):
            for name, lv in levels.items():
                s = _session(POSE / f"encoder.{prec}.onnx", lv)
                row[f"enc {prec} {name}"] = bm.time_calls(
                    lambda s=s, f=feats: s.run(None, {"features": f})
                )
        emb = rt.encoder.run({"features": feats})["embedding"]
        row["step numpy fp32"] = bm.time_calls(lambda e=emb, k=n: rt.head.step(e, slice(0, k)))
        step = _session(POSE / "temporal_step.fp32.onnx", levels["all"])
        c = rt.cfg
        kc = np.zeros((n, c.heads_kv, c.window, c.head_dim), np.float32)
        feeds = {"embedding": emb, "k_cache": kc, "v_cache": kc.copy(),
                 "count": np.full(n, 70, np.int64)}  # fmt: skip
        row["step onnx fp32"] = bm.time_calls(lambda s=step, f=feeds: s.run(None, f))
        print(f"batch {n}: " + ", ".join(f"{k} {np.median(v):.4f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
