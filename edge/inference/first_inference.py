"""``python -m csi_edge.inference.first_inference BUNDLE...``: a gateway-like cold start, measured.

Loads each bundle the way the daemon does, pushes synthetic frames until every model has
produced its first output, and prints JSON: seconds from process start (the OS's process
creation time, so interpreter start-up and imports count) to the first and to the last first
inference, and the process RSS with all models loaded. ``csi-edge bench`` runs it in a child
process so its own imports do not pollute the figures.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import numpy as np
    import psutil

    from csi_edge.inference.runtime import PoseRuntime, VitalsRuntime, WindowRuntime, open_runtime

    proc = psutil.Process()
    started = proc.create_time()
    firsts, loads = {}, {}
    for path in args.bundles:
        a = time.time()
        rt = open_runtime(path, threads=args.threads)
        loads[str(path)] = round(time.time() - a, 4)
        rng = np.random.default_rng(0)
        if isinstance(rt, VitalsRuntime):
            rt.run(np.zeros((8, rt.m.window), np.float32))
        elif isinstance(rt, (PoseRuntime, WindowRuntime)):
            rate = float(rt.m.input["sample_rate_hz"])
            for i in range(rt.m.window + 2):
                csi = (rng.standard_normal((1, 128)) * 9 + 4j).astype(np.complex64)
                if rt.push({"node#1": (np.array([1000.0 + i / rate]), csi)}):
                    break
        firsts[str(path)] = round(time.time() - started, 4)
    out = {
        "first_inference_s": min(firsts.values()),
        "all_models_ready_s": max(firsts.values()),
        "load_s": loads,
        "rss_mb": round(proc.memory_info().rss / 2**20, 1),
        "heavy_modules_imported": sorted(
            m for m in ("torch", "scipy", "onnx", "tensorflow") if m in sys.modules
        ),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
