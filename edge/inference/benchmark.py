"""Measurements behind ``csi-edge bench`` (the JSON is a stable interface for scripts).

Everything is measured in this process, on this machine, against a baseline measured in the
same run: per-model latency (batch 1 and batch N = nodes), the streaming step against a full
recompute at several window lengths, the whole per-frame pipeline, and peak RSS. The startup
figures (process start -> first inference, RSS of a gateway-like process with the models
loaded) come from a fresh child process, :mod:`csi_edge.inference.first_inference`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.inference.backends import open_model
from csi_edge.inference.bundle import load_bundle, resolve
from csi_edge.inference.manifest import MANIFEST_NAME, load_manifest

WINDOWS = (16, 64, 256)


# -- timing ------------------------------------------------------------------------------------
def time_calls(fn: Callable[[], Any], quick: bool = False) -> np.ndarray:
    """Per-call latencies in ms: warm up, then repeat for ~0.4 s (quick: ~0.1 s), 20..3000 calls."""
    for _ in range(3 if quick else 10):
        fn()
    budget = 0.1 if quick else 0.4
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    n = int(min(3000, max(20, budget / one)))
    out = np.empty(n)
    pc = time.perf_counter_ns
    for i in range(n):
        a = pc()
        fn()
        out[i] = (pc() - a) / 1e6
    return out


def pct(ms: np.ndarray) -> dict[str, float]:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": round(p50, 4), "p90_ms": round(p90, 4), "p99_ms": round(p99, 4)}


def peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024 / (1024 if sys.platform == "darwin" else 1), 1)


def machine(threads: int) -> dict[str, Any]:
    """CPU model, cores, threads used, library versions: what the figures depend on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    libs = {}
    for dist in ("csi-edge", "numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime"):
        with contextlib.suppress(PackageNotFoundError):
            libs[dist] = version(dist)
    return {
        "cpu": cpu,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "libraries": libs,
    }


# -- what to measure ---------------------------------------------------------------------------
@dataclass
class Target:
    """One model file to time: a bundle role of one variant, or a bare model file."""

    name: str
    path: Path
    backend: str
    precision: str
    role: str
    feeds: Callable[[int], dict[str, np.ndarray]]
    variant: str = ""
    names: tuple[list[str], list[str]] | None = None
    synthetic: bool = False


def _feeds_for(inputs: dict[str, tuple], seed: int = 0) -> Callable[[int], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)

    def make(batch: int) -> dict[str, np.ndarray]:
        out = {}
        for name, (shape, dtype) in inputs.items():
            dims = [batch if i == 0 else (d if d is not None else 16) for i, d in enumerate(shape)]
            if np.issubdtype(dtype, np.integer):
                out[name] = rng.integers(0, 100, dims).astype(dtype)
            else:
                out[name] = rng.standard_normal(dims).astype(np.float32)
        return out

    return make


def targets_for(path: str | Path, synthetic: bool = False) -> list[Target]:
    """Every timed model of a bundle (all variants; not the ``full`` baseline) or one bare file."""
    p = Path(path)
    if p.suffix.lower() in (".onnx", ".tflite") and p.is_file():
        m = open_model(p)
        prec = "int8" if "int8" in p.name.lower() else "fp32"
        return [Target(p.stem, p, m.backend, prec, "model", _feeds_for(m.inputs))]
    folder = resolve(p)
    man = load_manifest(folder)
    out = []
    for v in man.variants.values():
        for role, fname in v.files.items():
            if role in ("weights", "full"):
                continue
            f = folder / fname
            from csi_edge.inference.manifest import expected_io

            want_in, want_out = expected_io(man, role)
            names = (list(want_in), list(want_out)) if "*" not in want_in else None
            m = open_model(f, names=names)
            out.append(
                Target(
                    man.name,
                    f,
                    m.backend,
                    v.precision,
                    role,
                    _feeds_for(m.inputs),
                    variant=v.name,
                    names=names,
                    synthetic=synthetic,
                )  # fmt: skip
            )
    return out


def bench_target(t: Target, nodes: int, threads: int, quick: bool) -> list[dict[str, Any]]:
    """Load time and latency at batch 1 and batch ``nodes`` for one model file."""
    a = time.perf_counter()
    model = open_model(t.path, threads=threads, names=t.names)
    load_ms = (time.perf_counter() - a) * 1e3
    rows = []
    fixed = any(s[0] is not None for s, _ in model.inputs.values())  # batch fixed in the file
    for batch in sorted({1, nodes}):
        feeds = t.feeds(batch)
        ms = time_calls(lambda feeds=feeds: model.run(feeds), quick)
        row = {
            "model": t.name,
            "backend": t.backend,
            "precision": t.precision,
            "batch": batch,
            "load_ms": round(load_ms, 2),
            **pct(ms),
            "size_bytes": t.path.stat().st_size,
            "role": t.role,
            "variant": t.variant,
            "file": t.path.name,
            "throughput_per_s": round(batch * 1e3 / float(np.mean(ms)), 1),
            "per_item_ms": round(float(np.median(ms)) / batch, 4),
        }
        if batch > 1 and fixed:
            row["note"] = "batch axis fixed at 1 in the file: rows run one by one"
        if t.synthetic:
            row["synthetic"] = True
        rows.append(row)
    return rows


# -- streaming step vs recompute ---------------------------------------------------------------
def bench_streaming(
    windows: Iterable[int] = WINDOWS,
    quick: bool = False,
    cfg=None,
    batches: Iterable[int] = (1,),
    full_graph: Any | None = None,
    encoder: Callable[[np.ndarray], np.ndarray] | None = None,
    step_graphs: dict[int, list[tuple[str, Any, Any]]] | None = None,
    encoders: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    encoder_label: str = "numpy",
) -> list[dict[str, Any]]:
    """Cost of one new frame per stream at window W (buffer full, wrapped once):

    * ``step_ms``: what the streaming runtime does: the encoder on the new frame + the
      ring-buffer step (one k/v write, attention over W cached keys) + keypoint head;
    * ``full_ms``: what a runtime without a cache does for every new frame: the ``full`` graph
      over the last W frames (encoder on all W frames, W x W causal attention, head at every
      position), on the same backend and precision as the step's encoder (``full_graph``:
      the bundle's exported graph; its scores are dense T x T, so its cost at T = W is that of
      a W-frame model whatever window it masks to). Without one: the same encoder on W frames
      + the numpy full-window head (``full_impl`` says which);
    * extras: ``numpy_full_ms`` (encoder on W frames + numpy full-window head),
      ``recompute_last_ms`` (the leanest no-cache recompute: embeddings kept, k/v of all W
      frames re-projected, attention and head for the newest frame only), ``head_step_ms`` /
      ``head_full_ms`` (the numpy heads alone, no encoder), ``<label>_step_ms`` for each extra
      encoder (e.g. INT8) and each exported step graph.

    With ``batch`` b > 1, b streams (nodes) advance together; times are per call (b frames).
    ``encoder``: features [..., F] -> embeddings [..., D] (default: the numpy reference with
    random weights; the CLI passes the bundle's fp32 onnxruntime encoder, the runtime's).
    """
    from csi_edge.temporal import Encoder, StreamingHead, TemporalConfig, random_weights

    rows = []
    base = cfg or TemporalConfig()
    for w in windows:
        c = TemporalConfig(base.heads_q, base.heads_kv, base.head_dim, w, base.embed_dim)
        wts = random_weights(c)
        if encoder is None:  # the encoder does not depend on W: one per run is enough
            encoder = _numpy_encoder(Encoder(wts))
        for b in batches:
            head = StreamingHead(wts, c, capacity=b)
            rng = np.random.default_rng(0)
            x = rng.standard_normal((b, 2 * w, 104)).astype(np.float32)
            e = encoder(x)
            for i in range(2 * w):  # fill and wrap once
                head.step(e[:, i], slice(0, b))
            new = np.ascontiguousarray(x[:, -1])
            win = np.ascontiguousarray(x[:, -w:])
            ew = np.ascontiguousarray(e[:, -w:])
            e1 = np.ascontiguousarray(e[:, -1])
            enc, sl = encoder, slice(0, b)

            def med(fn) -> float:
                return float(np.median(time_calls(fn, quick)))

            s = med(lambda: head.step(enc(new), sl))  # noqa: B023
            nf = med(lambda: head.full_forward(enc(win)))  # noqa: B023
            r = med(lambda: (enc(new), _recompute_last(head, ew)))  # noqa: B023
            hs = med(lambda: head.step(e1, sl))  # noqa: B023
            hf = med(lambda: head.full_forward(ew))  # noqa: B023
            if full_graph is not None:
                f = med(lambda g=full_graph, fw=win: g.run({"features": fw}))
                impl = "full graph (onnxruntime fp32)"
            else:
                f, impl = nf, f"{encoder_label} encoder on W frames + numpy full-window head"
            row = {
                "window": w,
                "step_ms": round(s, 4),
                "full_ms": round(f, 4),
                "batch": b,
                "speedup_vs_full": round(f / s, 1),
                "step_impl": f"{encoder_label} encoder + numpy ring-buffer step + head",
                "full_impl": impl,
                "numpy_full_ms": round(nf, 4),
                "recompute_last_ms": round(r, 4),
                "speedup_vs_recompute_last": round(r / s, 1),
                "head_step_ms": round(hs, 4),
                "head_full_ms": round(hf, 4),
                "speedup_head_only": round(hf / hs, 1),
                "heads_q": c.heads_q,
                "heads_kv": c.heads_kv,
                "head_dim": c.head_dim,
            }
            for label, enc2 in (encoders or {}).items():
                ms = med(lambda en=enc2: head.step(en(new), sl))  # noqa: B023
                row[f"{label}_step_ms"] = round(ms, 4)
                row[f"speedup_{label}_step_vs_full"] = round(f / ms, 1)
            for label, enc_m, step_m in (step_graphs or {}).get(w, []):
                feeds = {
                    "k_cache": np.zeros((b, c.heads_kv, w, c.head_dim), np.float32),
                    "v_cache": np.zeros((b, c.heads_kv, w, c.head_dim), np.float32),
                    "count": np.full(b, 3 * w, np.int64),
                }

                def graph_step(em=enc_m, sm=step_m, fd=feeds, fr=new):
                    emb = em.run({"features": fr})["embedding"]
                    return sm.run({"embedding": emb, **fd})

                ms = med(graph_step)
                row[f"{label}_step_ms"] = round(ms, 4)
                row[f"speedup_{label}_step_vs_full"] = round(f / ms, 1)
            rows.append(row)
    return rows


def _numpy_encoder(enc) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: enc(x)


def model_encoder(model) -> Callable[[np.ndarray], np.ndarray]:
    """An encoder model ([B, F] -> [B, D]) applied to [..., F]."""

    def run(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1])
        return model.run({"features": flat})["embedding"].reshape(*x.shape[:-1], -1)

    return run


def _recompute_last(head, win: np.ndarray):
    """No-cache baseline: embeddings [b, W, D] kept; re-project all W frames to k/v and attend
    with the newest frame's query only."""
    from csi_edge.temporal import alibi_slopes, gelu_tanh_x2, sigmoid

    c = head.cfg
    b, w, _ = win.shape
    k = head.k(win).reshape(b, w, c.heads_kv, c.head_dim)
    v = head.v(win).reshape(b, w, c.heads_kv, c.head_dim)
    q = head.q(win[:, -1]).reshape(b, c.heads_kv, c.group, c.head_dim)
    sc = np.einsum("bhgd,bwhd->bhgw", q, k)
    age = np.arange(w - 1, -1, -1, dtype=np.float32)
    sc -= alibi_slopes(c.heads_q).reshape(c.heads_kv, c.group, 1) * age
    sc -= sc.max(-1, keepdims=True)
    p = np.exp(sc)
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bhgw,bwhd->bhgd", p, v).reshape(b, -1)
    cvec = win[:, -1] + head.o(o)
    return sigmoid(head.fc2(gelu_tanh_x2(head.fc1(cvec))))


# -- whole pipeline ----------------------------------------------------------------------------
def bench_pipeline(
    bundle_path: str | Path, nodes: int, threads: int, quick: bool, variant: str | None = None
) -> dict[str, Any]:
    """Raw CSI frames of ``nodes`` nodes, one grid tick at a time: features -> time grid ->
    encoder (batched over nodes) -> temporal step -> keypoint head -> decode -> tracking."""
    from csi_edge.inference.runtime import PoseRuntime, WindowRuntime
    from csi_edge.pose import NodeTracker

    b = load_bundle(bundle_path, variant=variant, threads=threads)
    m = b.manifest
    rt = PoseRuntime(b, capacity=nodes) if "encoder" in b.models else WindowRuntime(b, nodes)
    tracker = NodeTracker(dt=1.0 / float(m.input["sample_rate_hz"]))
    rate = float(m.input["sample_rate_hz"])
    rng = np.random.default_rng(0)
    n_ticks = 40 if quick else 200
    warm = m.window + 5
    csi = rng.standard_normal((64, nodes, 128)) + 1j * rng.standard_normal((64, nodes, 128))
    csi = (csi * 10).astype(np.complex64)
    names = [f"10.0.0.{i + 10}#1" for i in range(nodes)]
    node_idx = np.arange(nodes)
    stage = {"features": [], "encoder": [], "temporal_head": [], "tracking": [], "total": []}
    pc = time.perf_counter_ns
    enc_model = getattr(rt, "encoder", None)
    feature_builder = rt.features
    for tick in range(warm + n_ticks):
        t = np.full(nodes, 1000.0 + tick / rate)
        a = pc()
        # the gateway's path: every node's frame of the tick in one batch, tracker batched
        outs = rt.push_batch(names, node_idx, t, csi[tick % 64])
        b_ = pc()
        if len(outs):
            last = outs.latest()
            tracker.update_many(last.nodes, np.clip(last.keypoints, 0.0, 1.0), last.confidence)
        c_ = pc()
        if tick >= warm:
            stage["total"].append((c_ - a) / 1e6)
            stage["tracking"].append((c_ - b_) / 1e6)
    # stage split, measured separately on the same inputs (the push above is the real total)
    raw = csi[0]
    feats = feature_builder(raw)  # [nodes, dim]: one tick of every node
    stage["features"] = list(time_calls(lambda: feature_builder(raw), quick))
    if enc_model is not None:
        x = np.ascontiguousarray(feats, np.float32)
        stage["encoder"] = list(time_calls(lambda: enc_model.run({"features": x}), quick))
        if rt.head_kind == "numpy":
            emb = enc_model.run({"features": x})["embedding"]
            rows = slice(0, nodes)
            stage["temporal_head"] = list(time_calls(lambda: rt.head.step(emb, rows), quick))
    else:
        del stage["encoder"], stage["temporal_head"]
    total = np.asarray(stage["total"])
    model_ms = sum(
        float(np.median(stage[k])) for k in ("features", "encoder", "temporal_head") if stage.get(k)
    )
    out = {
        "model": m.name,
        "variant": b.variant.name,
        "backend": b.variant.backend,
        "precision": b.variant.precision,
        "nodes": nodes,
        "rate_hz": rate,
        "budget_ms": round(1e3 / rate, 2),
        **pct(total),
        "per_frame_ms": round(float(np.median(total)) / nodes, 4),
        "stages_p50_ms": {
            k: round(float(np.median(v)), 4) for k, v in stage.items() if k != "total" and v
        },
        "head": getattr(rt, "head_kind", "window"),
        # the whole path per tick against the model's own stages (features, encoder, head)
        # measured on the same inputs in this run: 1.0 would be no overhead at all
        "model_stages_ms": round(model_ms, 4),
        "pipeline_vs_model": round(float(np.median(total)) / model_ms, 2) if model_ms else None,
    }
    return out


def keypoint_error(
    bundle_path: str | Path, variant: str, reference: str = "fp32", ticks: int = 100
) -> dict[str, float]:
    """Keypoint difference of ``variant`` against ``reference`` (the fp32 variant) on the same
    synthetic frames through the whole runtime (normalized units)."""
    from csi_edge.inference.runtime import PoseRuntime

    outs = {}
    for v in (reference, variant):
        rt = PoseRuntime(load_bundle(bundle_path, variant=v), capacity=1)
        rng = np.random.default_rng(1)
        rate = float(rt.m.input["sample_rate_hz"])
        kps = []
        for i in range(ticks):
            csi = (rng.standard_normal((1, 64)) + 1j * rng.standard_normal((1, 64))) * 10
            for o in rt.push({"n": (np.array([500.0 + i / rate]), csi.astype(np.complex64))}):
                kps.append(o.keypoints)
        outs[v] = np.stack(kps)
    d = np.abs(outs[variant] - outs[reference])
    return {
        "keypoint_mae_vs_fp32": round(float(d.mean()), 5),
        "keypoint_max_vs_fp32": round(float(d.max()), 5),
    }


# -- startup (fresh process) -------------------------------------------------------------------
_BASELINE = "import time, psutil; print(time.time() - psutil.Process().create_time())"  # fmt: skip


def bench_startup(bundles: list[str | Path], threads: int) -> dict[str, Any]:
    """Run :mod:`csi_edge.inference.first_inference` in a child process and return its report,
    with the same-run baseline: a bare interpreter's process start -> first statement."""
    cmd = [sys.executable, "-m", "csi_edge.inference.first_inference", "--threads", str(threads)]
    cmd += [str(b) for b in bundles]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
    out = json.loads(res.stdout)
    base = subprocess.run([sys.executable, "-c", _BASELINE], capture_output=True, text=True)
    if base.returncode == 0:
        out["interpreter_baseline_s"] = round(float(base.stdout), 4)
    return out


def default_paths(tmp: Path) -> tuple[list[Path], bool]:
    """The bundled models, or (none installed) random-weight bundles built in ``tmp``."""
    from csi_edge.inference.bundle import bundled_models

    found = bundled_models()
    if found:
        return found, False
    import logging

    from csi_edge.inference.synthetic import (
        make_pose_bundle,
        make_ruview_bundle,
        make_vitals_bundle,
    )

    logging.getLogger().setLevel(logging.ERROR)  # quantizer chatter
    return [
        make_pose_bundle(tmp / "synthetic-pose"),
        make_ruview_bundle(tmp / "ruview-pose-v1-random", int8=True),
        make_vitals_bundle(tmp / "synthetic-vitals", int8=True),
    ], True


def is_bundle(p: Path) -> bool:
    return p.is_dir() and (p / MANIFEST_NAME).is_file()
