"""torch -> one self-contained ONNX file with a dynamic batch axis, checked against torch.

Facts this module is built around (``docs/toolchain.md``): the dynamo exporter's opset
floor is 18, it writes weights to a ``.data`` sidecar unless ``external_data=False``, and it
needs a batch-2 example to keep the batch axis dynamic. onnxruntime's quantizer can fail shape
inference on stored ``value_info``, so those entries are stripped (ORT re-infers them).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.export._torch import ExportError, require
from csi_edge.export.arch import Graph

log = logging.getLogger("csi_edge.export")

OPSET = 18  # the dynamo exporter's floor
OPSET_TORCHSCRIPT = 17
PARITY_TOL = 1e-4
EXPORTERS = ("dynamo", "torchscript")


def _torch_inputs(graph: Graph, batch: int, sizes: dict[str, int], seed: int = 0) -> tuple:
    torch = require("torch")
    arrays = graph.sample(batch, np.random.default_rng(seed), sizes)
    return tuple(torch.from_numpy(arrays[t.name]) for t in graph.inputs)


def _dynamic_shapes(graph: Graph) -> dict[str, dict[int, Any]]:
    torch = require("torch")
    batch = torch.export.Dim("batch", min=1, max=4096)
    out: dict[str, dict[int, Any]] = {}
    for t in graph.inputs:
        axes: dict[int, Any] = {0: batch} if t.shape and t.shape[0] == "B" else {}
        for ax, name in graph.dynamic.get(t.name, {}).items():
            axes[ax] = torch.export.Dim(name, min=2, max=4096)
        out[t.name] = axes
    return out


def self_contained(model: Any) -> bool:
    """True when no initializer points at external data (the file loads on its own)."""
    onnx = require("onnx")
    return not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    )


def finalize(path: str | Path) -> None:
    """Inline any external data, strip value_info, check the model and save it as one file."""
    onnx = require("onnx")
    path = Path(path)
    model = onnx.load(str(path), load_external_data=True)
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path), save_as_external_data=False)
    sidecar = path.with_name(path.name + ".data")
    if sidecar.exists():
        sidecar.unlink()
    if not self_contained(onnx.load(str(path), load_external_data=False)):
        raise ExportError(f"{path}: weights still point at external data after inlining")


def export_onnx(
    module: Any, graph: Graph, sizes: dict[str, int], path: str | Path, exporter: str = "dynamo"
) -> Path:
    """Export one graph of ``module`` to ``path`` (dynamic batch, no sidecar).

    ``dynamo`` (torch's supported exporter, opset 18) or ``torchscript`` (the older exporter,
    opset 17: measured 20-50x faster on these small graphs, deprecated upstream).
    """
    torch = require("torch")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = _torch_inputs(graph, 2, sizes)
    names = [t.name for t in graph.inputs]
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), torch.no_grad():
            if exporter == "torchscript":
                axes = {
                    t.name: {0: "batch", **graph.dynamic.get(t.name, {})}
                    for t in graph.inputs
                    if t.shape and t.shape[0] == "B"
                }
                for out in graph.outputs:
                    axes[out] = {0: "batch", **graph.dynamic.get(out, {})}
                torch.onnx.export(
                    module,
                    example,
                    str(path),
                    input_names=names,
                    output_names=list(graph.outputs),
                    opset_version=OPSET_TORCHSCRIPT,
                    dynamo=False,
                    dynamic_axes=axes,
                )
            elif exporter == "dynamo":
                require("onnxscript")
                dyn = _dynamic_shapes(graph)
                torch.onnx.export(
                    module,
                    example,
                    str(path),
                    input_names=names,
                    output_names=list(graph.outputs),
                    opset_version=OPSET,
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes={n: dyn[n] for n in names},
                    verbose=False,
                )
            else:
                raise ExportError(f"exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"torch.onnx.export ({exporter}) failed for graph {graph.role!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finalize(path)
    return path


def export_program(program: Any, path: str | Path, output_names: list[str] | None = None) -> Path:
    """Export a ``torch.export`` program (.pt2) as is: its own shapes and dynamic axes."""
    torch = require("torch")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            torch.onnx.export(
                program,
                (),
                str(path),
                output_names=output_names,
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed for {path.name}: {exc}") from exc
    finalize(path)
    return path


def _as_list(out: Any) -> list[np.ndarray]:
    torch = require("torch")
    if torch.is_tensor(out):
        out = (out,)
    return [o.detach().cpu().numpy() for o in out]


def torch_run(module: Any, inputs: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    torch = require("torch")
    with torch.no_grad():
        return _as_list(module(*(torch.from_numpy(inputs[n]) for n in names)))


def ort_session(path: str | Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_parity(
    module: Any, path: str | Path, graph: Graph, sizes: dict[str, int], batches=(1, 3)
) -> dict:
    """Max/mean abs diff ONNX vs torch on generated inputs at several batch sizes."""
    sess = ort_session(path)
    names = [t.name for t in graph.inputs]
    worst, total, count = 0.0, 0.0, 0
    per_output: dict[str, float] = {}
    for i, b in enumerate(batches):
        inputs = graph.sample(b, np.random.default_rng(100 + i), sizes)
        ref = torch_run(module, inputs, names)
        got = sess.run(list(graph.outputs), inputs)
        for name, r, g in zip(graph.outputs, ref, got, strict=False):
            if r.shape != g.shape:
                raise ExportError(f"{path}: output {name} shape {g.shape} != torch {r.shape}")
            d = np.abs(r.astype(np.float64) - g.astype(np.float64))
            per_output[name] = max(per_output.get(name, 0.0), float(d.max(initial=0.0)))
            worst = max(worst, float(d.max(initial=0.0)))
            total += float(d.sum())
            count += d.size
    return {
        "reference": "torch fp32",
        "inputs": f"generated N(0,1), batch sizes {list(batches)}",
        "max_abs_diff": worst,
        "mean_abs_diff": total / max(count, 1),
        "per_output_max_abs_diff": per_output,
        "tolerance": PARITY_TOL,
        "ok": worst <= PARITY_TOL,
    }
