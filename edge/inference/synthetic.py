"""Randomly initialised bundles built with ``onnx.helper``: for tests, and for ``csi-edge bench``
on a machine without the trained bundled models.

The graphs follow edge/models/MODEL_SPEC.md exactly (same op sequence as the torch
export), only the weights are random. Building them from numpy avoids torch on the gateway.
Needs the ``onnx`` package (and ``onnxruntime.quantization`` for the INT8 variant).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from csi_edge.inference.manifest import write_manifest
from csi_edge.temporal import TemporalConfig, random_weights

OPSET = 18


def _onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    return onnx, TensorProto, helper, numpy_helper


def _save(model, path: Path) -> None:
    onnx, *_ = _onnx()
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))


class _G:
    """Tiny graph builder: nodes + initializers with unique names."""

    def __init__(self) -> None:
        _, self.TP, self.h, self.nh = _onnx()
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, arr: np.ndarray, name: str | None = None) -> str:
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(self.nh.from_array(np.asarray(arr), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(self.h.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(self, x: str, w: dict, name: str) -> str:
        y = self.op("MatMul", [x, self.const(np.ascontiguousarray(w[f"{name}.weight"].T))])
        return self.op("Add", [y, self.const(w[f"{name}.bias"])])

    def gelu_tanh(self, x: str) -> str:
        x3 = self.op("Mul", [self.op("Mul", [x, x]), x])
        inner = self.op("Add", [x, self.op("Mul", [x3, self.const(np.float32(0.044715))])])
        t = self.op(
            "Tanh", [self.op("Mul", [inner, self.const(np.float32(math.sqrt(2 / math.pi)))])]
        )
        half = self.op(
            "Mul", [self.op("Add", [t, self.const(np.float32(1.0))]), self.const(np.float32(0.5))]
        )
        return self.op("Mul", [x, half])

    def model(self, inputs, outputs, last: list[str]):
        for node, name in zip(self.nodes[-len(last) :], last, strict=True):
            node.output[0] = name
        g = self.h.make_graph(self.nodes, "g", inputs, outputs, self.inits)
        m = self.h.make_model(g, opset_imports=[self.h.make_opsetid("", OPSET)])
        m.ir_version = 9
        return m


def encoder_onnx(w: dict, features: int, embed: int, path: Path) -> None:
    """``encoder`` graph: features [B, F] -> embedding [B, D] (MODEL_SPEC: reshape to
    [B, 2, F/2], Conv1d k5, Conv1d k5 stride 2, Conv1d k3 with ReLU, flatten, Linear, LN)."""
    g = _G()
    TP, h = g.TP, g.h
    x = g.op("Reshape", ["features", g.const(np.array([-1, 2, features // 2], np.int64))])
    for i, stride in ((1, 1), (2, 2), (3, 1)):
        wt = w[f"enc.c{i}.weight"]
        k = wt.shape[-1]
        x = g.op(
            "Conv",
            [x, g.const(wt), g.const(w[f"enc.c{i}.bias"])],
            kernel_shape=[k],
            pads=[k // 2, k // 2],
            strides=[stride],
        )
        x = g.op("Relu", [x])
    x = g.op("Flatten", [x], axis=1)
    x = g.op("Gemm", [x, g.const(w["enc.fc.weight"]), g.const(w["enc.fc.bias"])], transB=1)
    g.nodes.append(
        h.make_node(
            "LayerNormalization",
            [x, g.const(w["enc.norm.weight"]), g.const(w["enc.norm.bias"])],
            ["embedding"],
            axis=-1,
            epsilon=1e-5,
        )
    )
    graph = h.make_graph(
        g.nodes,
        "encoder",
        [h.make_tensor_value_info("features", TP.FLOAT, ["B", features])],
        [h.make_tensor_value_info("embedding", TP.FLOAT, ["B", embed])],
        g.inits,
    )
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)])
    m.ir_version = 9
    _save(m, path)


def ruview_weights(seed: int = 0, channels: int = 56) -> dict[str, np.ndarray]:
    """Random weights with RuView pose_v1's names and shapes (MODEL_SPEC.md "RuView pose_v1")."""
    rng = np.random.default_rng(seed)
    shapes = {
        "enc.c1": ((64, channels, 3), 64),
        "enc.c2": ((128, 64, 3), 128),
        "enc.c3": ((128, 128, 3), 128),
        "head.fc1": ((256, 128), 256),
        "head.fc2": ((34, 256), 34),
    }
    w = {}
    for name, (shape, n) in shapes.items():
        bound = 1 / math.sqrt(int(np.prod(shape[1:])))
        w[f"{name}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        w[f"{name}.bias"] = rng.uniform(-bound, bound, n).astype(np.float32)
    return w


def conv_window_onnx(
    w: dict,
    convs: list[tuple[str, int]],
    fcs: list[str],
    in_shape: tuple[int, int],
    in_name: str,
    out_name: str,
    out_act: str | None,
    path: Path,
) -> None:
    """Conv1d stack (ReLU), mean over time, Linear stack (ReLU between), optional final act."""
    g = _G()
    TP, h = g.TP, g.h
    x = in_name
    for name, dil in convs:
        k = w[f"{name}.weight"].shape[-1]
        pad = dil * (k - 1) // 2
        x = g.op(
            "Conv",
            [x, g.const(w[f"{name}.weight"]), g.const(w[f"{name}.bias"])],
            dilations=[dil],
            pads=[pad, pad],
            kernel_shape=[k],
        )
        x = g.op("Relu", [x])
    x = g.op("ReduceMean", [x, g.const(np.array([2], np.int64))], keepdims=0)
    for i, name in enumerate(fcs):
        x = g.op("Gemm", [x, g.const(w[f"{name}.weight"]), g.const(w[f"{name}.bias"])], transB=1)
        if i < len(fcs) - 1:
            x = g.op("Relu", [x])
    if out_act:
        x = g.op(out_act, [x])
    g.nodes[-1].output[0] = out_name
    n_out = w[f"{fcs[-1]}.weight"].shape[0]
    graph = h.make_graph(
        g.nodes,
        "window",
        [h.make_tensor_value_info(in_name, TP.FLOAT, ["B", *in_shape])],
        [h.make_tensor_value_info(out_name, TP.FLOAT, ["B", n_out])],
        g.inits,
    )
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)])
    m.ir_version = 9
    _save(m, path)


def quantize_int8(src: Path, dst: Path, input_name: str, shape: tuple[int, ...], seed: int = 0):
    """Static QDQ INT8 (per-channel) with random calibration data of ``shape``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(seed)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(
                [{input_name: rng.standard_normal(shape).astype(np.float32)} for _ in range(32)]
            )

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(src),
        str(dst),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


def _provenance(note: str) -> dict:
    import datetime

    return {
        "checkpoint_sha256": "0" * 64,
        "quantization": None,
        "parity": {},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tool": f"csi_edge.inference.synthetic ({note}; random weights, not a trained model)",
    }


def make_pose_bundle(
    folder: str | Path,
    cfg: TemporalConfig | None = None,
    features: int = 104,
    seed: int = 0,
    int8: bool = True,
    conv: tuple[int, int, int] = (64, 128, 128),
) -> Path:
    """``csi-edge-pose`` shaped bundle: encoder ONNX (fp32 [+ int8]) + weights.npz.
    ``conv``: the encoder's channel widths (tests pass small ones)."""
    cfg = cfg or TemporalConfig()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    w = random_weights(cfg, features=features, seed=seed, conv=conv)
    np.savez(folder / "weights.npz", **w)
    encoder_onnx(w, features, cfg.embed_dim, folder / "encoder.fp32.onnx")
    files = {"fp32": {"encoder": "encoder.fp32.onnx", "weights": "weights.npz"}}
    if int8:
        quantize_int8(
            folder / "encoder.fp32.onnx",
            folder / "encoder.int8.onnx",
            "features",
            (16, features),
            seed,
        )
        files["int8"] = {"encoder": "encoder.int8.onnx", "weights": "weights.npz"}
    sub = features // 2
    manifest = {
        "name": "synthetic-pose",
        "version": "0.0.0",
        "task": "pose",
        "arch": "csi-edge-pose",
        "files": files,
        "precision": "fp32",
        "input": {
            "features": ["amplitude", "phase"],
            "grid": "lltf-ht20",
            "subcarriers": sub,
            "resample": "linear",
            "window": cfg.window,
            "sample_rate_hz": 20.0,
            "layout": "frame-major",
            "norm": {"mean": [0.0] * sub, "std": [1.0] * sub},
        },
        "output": {"layout": "coco17-xy", "confidence": True},
        "temporal": {
            "heads_q": cfg.heads_q,
            "heads_kv": cfg.heads_kv,
            "head_dim": cfg.head_dim,
            "window": cfg.window,
            "embed_dim": cfg.embed_dim,
        },
        "provenance": _provenance("pose"),
    }
    if sub != 52:
        manifest["input"]["grid"] = "raw-64"
        manifest["input"]["resample"] = "truncate"
    write_manifest(folder, manifest)
    return folder


def make_ruview_bundle(folder: str | Path, seed: int = 0, int8: bool = False) -> Path:
    """RuView ``pose_v1`` shaped bundle: ``csi_window`` [B, 56, 20] -> ``keypoints`` [B, 34]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    w = ruview_weights(seed)
    conv_window_onnx(
        w,
        [("enc.c1", 1), ("enc.c2", 2), ("enc.c3", 4)],
        ["head.fc1", "head.fc2"],
        (56, 20),
        "csi_window",
        "keypoints",
        "Sigmoid",
        folder / "pose_v1.onnx",
    )
    files = {"fp32": {"window": "pose_v1.onnx"}}
    if int8:
        quantize_int8(
            folder / "pose_v1.onnx", folder / "pose_v1.int8.onnx", "csi_window", (8, 56, 20), seed
        )
        files["int8"] = {"window": "pose_v1.int8.onnx"}
    write_manifest(
        folder,
        {
            "name": "ruview-pose-v1-random",
            "version": "0.0.0",
            "task": "pose",
            "arch": "ruview-pose-v1",
            "files": files,
            "precision": "fp32",
            "input": {
                "features": ["amplitude"],
                "grid": "raw-first-56",
                "subcarriers": 56,
                "resample": "truncate",
                "window": 20,
                "sample_rate_hz": 20.0,
                "layout": "frame-major-reshape",
                "time_resample": "none",
                "norm": None,
            },
            "output": {"layout": "coco17-xy", "confidence": False},
            "provenance": _provenance("ruview pose_v1 layout"),
        },
    )
    return folder


def make_vitals_bundle(folder: str | Path, seed: int = 0, int8: bool = False) -> Path:
    """``csi-edge-vitals`` shaped bundle: ``window`` [B, 8, 256] -> ``vitals`` [B, 3]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = {}
    for name, shape in {
        "c1": (32, 8, 7),
        "c2": (32, 32, 7),
        "c3": (32, 32, 7),
        "fc1": (32, 32),
        "fc2": (3, 32),
    }.items():
        bound = 1 / math.sqrt(int(np.prod(shape[1:])))
        w[f"{name}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        w[f"{name}.bias"] = rng.uniform(-bound, bound, shape[0]).astype(np.float32)
    conv_window_onnx(
        w,
        [("c1", 1), ("c2", 2), ("c3", 4)],
        ["fc1", "fc2"],
        (8, 256),
        "window",
        "vitals",
        None,
        folder / "vitals.fp32.onnx",
    )
    files = {"fp32": {"window": "vitals.fp32.onnx"}}
    if int8:
        quantize_int8(
            folder / "vitals.fp32.onnx", folder / "vitals.int8.onnx", "window", (8, 8, 256), seed
        )
        files["int8"] = {"window": "vitals.int8.onnx"}
    write_manifest(
        folder,
        {
            "name": "synthetic-vitals",
            "version": "0.0.0",
            "task": "vitals",
            "arch": "csi-edge-vitals",
            "files": files,
            "precision": "fp32",
            "input": {
                "features": ["amplitude"],
                "grid": "lltf-ht20",
                "subcarriers": 52,
                "resample": "linear",
                "window": 256,
                "sample_rate_hz": 8.0,
                "layout": "channels-time",
                "channels": 8,
            },
            "output": {
                "layout": "vitals",
                "names": ["breathing_bpm", "presence_logit", "motion_logit"],
            },
            "provenance": _provenance("vitals"),
        },
    )
    return folder
