"""Static INT8 (QDQ) quantization with onnxruntime, calibrated on real windows.

Follows onnxruntime's recipe: ``quant_pre_process`` (shape inference + graph optimization;
symbolic shape inference fails on attention graphs, so it retries with
``skip_symbolic_shape=True``), then ``quantize_static`` in QDQ format with per-channel weights
and MinMax / Entropy / Percentile activation calibration. Graphs with attention or layer
norm quantize only their weight-bearing MatMul/Gemm/Conv nodes (plus, without attention, the
ReLU/Reshape/Flatten between them): masked attention scores reach -1e9, which no int8 scale
shares with a softmax, and Q/DQ pairs around LayerNorm/GELU cost more than they save.

Dynamic quantization is only offered when it measures faster than fp32 on this machine (it
is slower on conv layers: ``docs/toolchain.md``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.export._torch import ExportError, require

log = logging.getLogger("csi_edge.quantize")

METHODS = ("minmax", "entropy", "percentile")
WEIGHT_OPS = ("Conv", "MatMul", "Gemm")
PASS_OPS = ("Relu", "Reshape", "Flatten")  # int8 in, int8 out: no requantization needed


def model_inputs(path: str | Path) -> list[tuple[str, list]]:
    onnx = require("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ExportError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    inits = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        out.append((inp.name, dims))
    return out


def fit_inputs(path: str | Path, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Calibration arrays shaped for the inputs of the ONNX graph at ``path``."""
    ins = model_inputs(path)
    return fit_arrays([n for n, _ in ins], [d for _, d in ins], arrays, str(path))


def fit_arrays(
    names: list[str], dims: list, arrays: dict[str, np.ndarray], what: str = "the model"
) -> dict[str, np.ndarray]:
    """Arrays shaped for a graph's inputs (``dims``: ints fixed, strings dynamic).

    A window set [N, T, F] feeds a per-frame graph with input [B, F] by flattening N and T:
    the encoder sees every frame of every window.
    """
    out = {}
    for name, shape in zip(names, dims, strict=False):
        if name not in arrays:
            raise ExportError(
                f"calibration set has no array {name!r} for input {name!r} of {what} "
                f"(it has: {', '.join(sorted(arrays)) or 'nothing'})"
            )
        a = np.asarray(arrays[name], np.float32)
        while a.ndim > len(shape) and a.ndim >= 3:
            a = a.reshape(-1, *a.shape[2:])
        for i, d in enumerate(shape):
            if i == 0 or not isinstance(d, int) or d <= 0:
                continue
            if a.ndim != len(shape) or a.shape[i] != d:
                raise ExportError(
                    f"calibration array {name!r} has shape {list(a.shape)}, but {what} expects "
                    f"{list(shape)} (build it with: csi-edge calibration build ... --model MANIFEST)"
                )
        out[name] = a
    return out


class _Reader:
    """onnxruntime CalibrationDataReader over in-memory arrays, in small batches."""

    def __init__(self, arrays: dict[str, np.ndarray], batch: int = 16) -> None:
        self.arrays = arrays
        self.batch = batch
        self.rewind()

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        n = len(next(iter(self.arrays.values())))
        for s in range(0, n, self.batch):
            yield {k: v[s : s + self.batch] for k, v in self.arrays.items()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._gen()


def preprocess(src: Path, dst: Path) -> dict:
    """onnxruntime's recommended pre-processing, with the symbolic-shape fallback."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    for skip in (False, True):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=skip)
            return {"pre_process": True, "skip_symbolic_shape": skip}
        except Exception as exc:  # symbolic shape inference on attention graphs
            log.info("quant_pre_process(skip_symbolic_shape=%s) failed: %s", skip, exc)
    dst.write_bytes(src.read_bytes())
    return {"pre_process": False, "skip_symbolic_shape": None}


def _weight_nodes(path: Path) -> tuple[list[str], bool]:
    """Nodes to quantize, and whether to quantize only them (not every op).

    Only them when the graph has ops int8 kernels do not cover (Softmax, LayerNorm): quantizing
    those just adds Q/DQ pairs (measured: the old MLP pose encoder ran 25 % slower with them).
    The list is the Conv/MatMul/Gemm nodes with an initializer weight, plus, in graphs without
    attention, the layout and ReLU ops between them (Reshape, Flatten, Relu): onnxruntime folds
    those into its QLinearConv chain instead of leaving a fp32 island with a Q/DQ pair on each
    side (measured on the conv pose encoder: INT8 2.6x faster than fp32 with them, 2.2x without).
    """
    onnx = require("onnx")
    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names = [
        n.name
        for n in model.graph.node
        if n.op_type in WEIGHT_OPS and any(i in inits or i in consts for i in n.input[1:2])
    ]
    ops = {n.op_type for n in model.graph.node}
    attends = bool(ops & {"Softmax", "LayerNormalization"})
    if attends and "Softmax" not in ops:
        names += [n.name for n in model.graph.node if n.op_type in PASS_OPS]
    return names, attends


def _output_heads(path: Path) -> list[str]:
    """Weight nodes that write a graph output directly (regression heads, raw logits).

    Their output tensor holds quantities of very different ranges side by side (a BPM term and
    two logits), so one per-tensor int8 scale costs the small ones most of their precision;
    keeping these last layers in fp32 costs a few hundred weights.
    """
    onnx = require("onnx")
    model = onnx.load(str(path))
    outs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS and set(n.output) & outs]


def quantize_static_onnx(
    src: str | Path,
    dst: str | Path,
    calibration: dict[str, np.ndarray],
    method: str = "minmax",
    per_channel: bool = True,
    activations: str = "uint8",
    reduce_range: bool | None = None,
) -> dict:
    """Write a static INT8 QDQ model; returns the provenance record for the manifest.

    Activations default to uint8 with int8 weights (U8S8), onnxruntime's recommended x86 form:
    on the pose encoder it ran 1.26x faster than S8S8; on the conv models the two tie.

    ``reduce_range`` (default: on for U8S8) stores weights in 7 bits. x86 CPUs with AVX2 but
    without VNNI (many AMD EPYC/Ryzen, older Intel) multiply u8 x s8 pairs with ``vpmaddubsw``,
    whose int16 sum saturates on full-range weights: on such a CPU the bundled pose encoder's
    INT8 output drifted 0.072 (mean abs, vs fp32) instead of 0.012 on LiteRT, the vitals model's
    0.49 BPM-units. With 7-bit weights the sum cannot saturate, on every CPU; the cost is one bit
    of weight precision (0.0195 on the same encoder). ARM and VNNI CPUs are unaffected either way.
    """
    require("onnx")
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if activations not in ("uint8", "int8"):
        raise ExportError(f"activations {activations!r}: expected uint8 or int8")
    if method not in METHODS:
        raise ExportError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if reduce_range is None:
        reduce_range = activations == "uint8"
    src, dst = Path(src), Path(dst)
    data = fit_inputs(src, calibration)
    n = len(next(iter(data.values())))
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        pre_info = preprocess(src, pre)
        nodes, attends = _weight_nodes(pre)
        heads = _output_heads(pre)
        cal_method = {
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[method]
        try:
            quantize_static(
                str(pre),
                str(dst),
                _Reader(data),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=cal_method,
                nodes_to_quantize=[n for n in nodes if n not in heads] if attends else None,
                nodes_to_exclude=heads,
            )
        except Exception as exc:
            raise ExportError(
                f"quantize_static failed on {src}: {type(exc).__name__}: {exc}"
            ) from exc
    return {
        "mode": "static",
        "format": "QDQ",
        "method": method,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "activations": activations,
        "weights": "int8",
        "calibration_windows": int(n),
        "scope": "weight-bearing MatMul/Gemm/Conv only" if attends else "all",
        "fp32_nodes": heads,
        **pre_info,
    }


def quantize_dynamic_onnx(src: str | Path, dst: str | Path) -> dict:
    """Dynamic INT8 (weights only, activations at run time): for MatMul-heavy graphs."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    return {"mode": "dynamic", "weights": "int8", "per_channel": True}


def load_calibration(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """(calibration arrays, held-out arrays, extras) from a ``csi-edge calibration build`` file.

    Arrays are split by the file's ``split`` vector (0 calibration, 1 held out); ground truth
    (``gt_*``) and labels travel with the held-out part.
    """
    path = Path(path)
    try:
        z = np.load(str(path), allow_pickle=False)
    except Exception as exc:
        raise ExportError(f"{path}: not a calibration .npz ({exc})") from exc
    keys = list(z.files)
    first = next((z[k] for k in keys if k not in ("split", "report_json") and z[k].ndim), None)
    if "split" in keys:
        split = z["split"]
    else:  # no split recorded: hold out the last quarter
        n = 0 if first is None else len(first)
        split = (np.arange(n) >= n - n // 4).astype(np.int8)
    cal: dict[str, np.ndarray] = {}
    held: dict[str, np.ndarray] = {}
    extras: dict[str, Any] = {}
    for k in keys:
        if k in ("split", "report_json"):
            continue
        a = z[k]
        if a.ndim >= 1 and len(a) == len(split):
            if not k.startswith("gt_"):
                cal[k] = a[split == 0]
            held[k] = a[split == 1]
        else:
            extras[k] = a
    if "report_json" in keys:
        extras["report_json"] = str(z["report_json"])
    if not cal:
        raise ExportError(f"{path}: no input windows in the calibration file")
    return cal, held, extras
