"""torch -> LiteRT (.tflite) through litert-torch: fp32, or full-int8 from a representative set.

litert-torch needs no TensorFlow (``docs/toolchain.md``). INT8 uses PT2E static
quantization (symmetric per-channel weights, activation ranges observed on the representative
windows); the converted model takes int8 inputs (scale/zero point in the input details, applied
by the gateway's backend ``csi_edge.inference.backends.LiteRTModel``). LiteRT graphs have a fixed
batch of 1: the runtime feeds one window per call, which is what a gateway does anyway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.export._torch import ExportError, require
from csi_edge.export.arch import Graph


def _quiet() -> Any:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("litert_torch")


def convert_tflite(
    module: Any,
    graph: Graph,
    sizes: dict[str, int],
    path: str | Path,
    representative: Iterable[dict[str, np.ndarray]] | None = None,
) -> Path:
    """Write ``module`` as a .tflite; with ``representative`` windows, full-int8 (PT2E static)."""
    torch = require("torch")
    litert_torch = _quiet()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = graph.sample(1, np.random.default_rng(0), sizes)
    kwargs = {t.name: torch.from_numpy(sample[t.name]) for t in graph.inputs}
    try:
        if representative is None:
            edge = litert_torch.convert(module.eval(), sample_kwargs=kwargs)
        else:
            from litert_torch.quantize import pt2e_quantizer as pq
            from litert_torch.quantize import quant_config as qc
            from torchao.quantization.pt2e import quantize_pt2e

            prog = torch.export.export(module.eval(), (), kwargs).module()
            quantizer = pq.PT2EQuantizer().set_global(
                pq.get_symmetric_quantization_config(is_per_channel=True)
            )
            # (litert-torch 0.10 cannot leave one module fp32: set_module_name(name, None)
            # asserts, so mixed-range output heads stay int8 here, unlike the ONNX path)
            prepared = quantize_pt2e.prepare_pt2e(prog, quantizer)
            seen = 0
            with torch.no_grad():
                for window in representative:
                    prepared(**{k: torch.from_numpy(np.asarray(window[k])) for k in kwargs})
                    seen += 1
            if not seen:
                raise ExportError("INT8 TFLite needs at least one representative window")
            quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
            edge = litert_torch.convert(
                quantized,
                sample_kwargs=kwargs,
                quant_config=qc.QuantConfig(pt2e_quantizer=quantizer),
            )
        edge.export(str(path))
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(
            f"litert-torch conversion of graph {graph.role!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return path
