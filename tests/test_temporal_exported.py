"""The exported graphs (csi-edge's own export path, H5) equal the numpy temporal head.

One random-weight ``csi-edge-pose`` checkpoint is exported once (ONNX encoder/temporal_step/
full + weights.npz + LiteRT, shared with the round-trip tests: ``tests/export_shared.py``); then the ONNX and LiteRT ``temporal_step`` graphs, fed
their own caches back, must equal the numpy ring buffer at every step, and the runtime's
``head="graph"`` path must equal its numpy path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_shared import W

from csi_edge.inference.bundle import load_bundle
from csi_edge.inference.runtime import PoseRuntime
from csi_edge.temporal import Encoder, StreamingHead, TemporalConfig, load_weights

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported() -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    from export_shared import pose_export

    return pose_export()["dir"]


def _run_step_graph(model, emb: np.ndarray, cfg: TemporalConfig):
    b, steps, _ = emb.shape
    k = np.zeros((b, cfg.heads_kv, cfg.window, cfg.head_dim), np.float32)
    v = np.zeros_like(k)
    n = np.zeros(b, np.int64)
    for t in range(steps):
        out = model.run({"embedding": emb[:, t], "k_cache": k, "v_cache": v, "count": n})
        k, v, n = out["k_cache_out"], out["v_cache_out"], n + 1
        yield out["keypoints"], out["confidence"], k


@pytest.mark.parametrize("variant", ["fp32", "fp32-tflite"])
def test_step_graph_equals_numpy_every_step(exported: Path, variant: str) -> None:
    b = load_bundle(exported, variant=variant)
    cfg = TemporalConfig.from_dict(b.manifest.temporal)
    assert (cfg.heads_q, cfg.heads_kv, cfg.window) == (4, 2, W)  # GQA, 2 query heads per kv
    head = StreamingHead(load_weights(load_bundle(exported).weights_path), cfg, capacity=2)
    emb = np.random.default_rng(0).standard_normal((2, 4 * W + 3, 64)).astype(np.float32)
    for t, (kp, conf, k) in enumerate(_run_step_graph(b.models["temporal_step"], emb, cfg)):
        kp_np, conf_np = head.step(emb[:, t], slice(0, 2))
        assert np.abs(kp - kp_np).max() <= 1e-5, (variant, t)
        assert np.abs(conf - conf_np).max() <= 1e-5, (variant, t)
        assert np.abs(k - head.k_cache).max() <= 1e-5  # same slot, same key, written once


def test_full_graph_equals_numpy_reference(exported: Path) -> None:
    from export_shared import pose_export

    b = load_bundle(exported, roles=("full", "weights"))
    w = load_weights(b.weights_path)
    assert not any(k.startswith("enc.") for k in w)  # the encoder ships as its graph only
    torch_w = {k: v.numpy() for k, v in pose_export()["model"].state_dict().items()}
    w |= {k: v for k, v in torch_w.items() if k.startswith("enc.")}
    cfg = TemporalConfig.from_dict(b.manifest.temporal)
    x = np.random.default_rng(1).standard_normal((2, 3 * W, 104)).astype(np.float32)
    out = b.models["full"].run({"features": x})
    kp, conf = StreamingHead(w, cfg).full_forward(Encoder(w)(x))
    assert np.abs(out["keypoints"] - kp).max() <= 1e-5
    assert np.abs(out["confidence"] - conf).max() <= 1e-5


def test_runtime_graph_head_equals_numpy_head(exported: Path) -> None:
    b = load_bundle(exported)
    rng = np.random.default_rng(2)
    numpy_rt, graph_rt = PoseRuntime(b, head="numpy"), PoseRuntime(b, head="graph")
    for i in range(3 * W):
        frames = {
            n: (np.array([i / 20.0]), (rng.standard_normal((1, 64)) * 9 + 3j).astype(np.complex64))
            for n in ("a", "b")
        }
        for x, y in zip(numpy_rt.push(frames), graph_rt.push(frames), strict=True):
            assert (x.node, x.t) == (y.node, y.t)
            assert np.abs(x.keypoints - y.keypoints).max() <= 1e-5


def test_litert_variant_streams_through_its_step_graph(exported: Path) -> None:
    """The LiteRT variant defaults to its exported step graph and equals the numpy head."""
    rng = np.random.default_rng(5)
    lite_rt = PoseRuntime(load_bundle(exported, variant="fp32-tflite"))
    numpy_rt = PoseRuntime(load_bundle(exported), head="numpy")
    assert lite_rt.head_kind == "graph" and lite_rt.encoder.backend == "litert"
    for i in range(2 * W + 3):
        csi = (rng.standard_normal((1, 64)) * 9 + 3j).astype(np.complex64)
        frames = {"a": (np.array([i / 20.0]), csi), "b": (np.array([i / 20.0]), csi * 0.5)}
        for x, y in zip(numpy_rt.push(frames), lite_rt.push(frames), strict=True):
            assert np.abs(x.keypoints - y.keypoints).max() <= 1e-4
            assert np.abs(x.confidence - y.confidence).max() <= 1e-4


def test_onnxruntime_and_litert_same_outputs(exported: Path) -> None:
    onnx_b = load_bundle(exported, variant="fp32")
    lite_b = load_bundle(exported, variant="fp32-tflite")
    x = np.random.default_rng(3).standard_normal((3, 104)).astype(np.float32)
    a = onnx_b.models["encoder"].run({"features": x})["embedding"]
    b = lite_b.models["encoder"].run({"features": x})["embedding"]
    assert np.abs(a - b).max() <= 1e-4
