"""One call signature over onnxruntime and LiteRT: ``model.run({name: array}) -> {name: array}``.

:func:`open_model` picks the backend from the file extension (``.onnx`` -> onnxruntime,
``.tflite`` -> LiteRT). Both report their I/O as ``inputs``/``outputs``: ``{name: (shape,
dtype)}`` with ``None`` for dynamic axes, so the manifest check does not care which runtime it
talks to. Errors about the file itself (missing, truncated, not a model) raise
:class:`ModelFileError` naming the file.

LiteRT specifics handled here: signature I/O names (``args_0``/``output_0`` from litert-torch
are renamed positionally to the names the caller expects), resizing the batch axis only when the
batch size changes, and int8/uint8 inputs/outputs quantized/dequantized with the tensor's own
scale and zero point, so callers always pass and get float32.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.errors import InputError

BACKEND_BY_EXT = {".onnx": "onnxruntime", ".tflite": "litert"}


class ModelFileError(InputError):
    """A model file is missing, truncated or not a model; the message names the file."""


IOSpec = dict[str, tuple[tuple[int | None, ...], np.dtype]]


class Model:
    """Common interface; see the module docstring."""

    backend: str = ""
    path: Path
    inputs: IOSpec
    outputs: IOSpec

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path.name} in={list(self.inputs)} out={list(self.outputs)}>"


def backend_for(path: str | Path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in BACKEND_BY_EXT:
        raise ModelFileError(f"{path}: unknown model type {ext!r} (expected .onnx or .tflite)")
    return BACKEND_BY_EXT[ext]


def open_model(
    path: str | Path,
    threads: int = 1,
    inter_threads: int = 1,
    names: tuple[Sequence[str], Sequence[str]] | None = None,
    spinning: bool = False,
) -> Model:
    """Open a model with the backend its extension calls for.

    ``threads``: intra-op threads (1 is usually fastest for these small models and leaves the
    other cores to the gateway). ``names``: (input names, output names) the caller uses, for
    TFLite files whose signature names are positional (``args_0``, ``output_0``).
    """
    p = Path(path)
    backend = backend_for(p)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such model file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{p}: empty file (truncated download or copy?)")
    if backend == "onnxruntime":
        return OrtModel(p, threads, inter_threads, spinning)
    return LiteRTModel(p, threads, names)


# -- onnxruntime -------------------------------------------------------------------------------
def onnxruntime_available() -> bool:
    """False where onnxruntime has no wheel (32-bit ARM): the gateway then runs LiteRT only."""
    import importlib.util

    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(bool)": np.bool_,
}


def _dims(shape: Sequence[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


class OrtModel(Model):
    backend = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1, inter_threads: int = 1, spinning=False):
        if not onnxruntime_available():
            raise ModelFileError(
                f"{path}: an ONNX model needs onnxruntime, which is not installed here "
                f"({platform.machine()}: onnxruntime publishes no wheel for it); use a LiteRT "
                'variant of the bundle (models.precision = "int8-tflite") or a .tflite file'
            )
        import onnxruntime as ort

        self.path = path
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # no inter-op scheduling overhead
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = max(1, int(inter_threads))
        so.log_severity_level = 3
        # Spinning workers burn the cores the gateway's other work needs between frames.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeError
            msg = str(e).splitlines()[0][:300]
            raise ModelFileError(f"{path}: truncated or not an ONNX file ({msg})") from None
        self.inputs = {
            i.name: (_dims(i.shape), np.dtype(_ORT_TYPES.get(i.type, np.float32)))
            for i in self.session.get_inputs()
        }
        self.outputs = {
            o.name: (_dims(o.shape), np.dtype(_ORT_TYPES.get(o.type, np.float32)))
            for o in self.session.get_outputs()
        }
        self._out_names = list(self.outputs)
        self._in_types = {k: v[1] for k, v in self.inputs.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        fixed = {}
        for k, v in feeds.items():
            want = self._in_types.get(k)
            if want is None:
                raise KeyError(f"{self.path.name}: no input {k!r} (has: {', '.join(self.inputs)})")
            fixed[k] = v if v.dtype == want else v.astype(want)
        return dict(zip(self._out_names, self.session.run(self._out_names, fixed), strict=True))


# -- LiteRT ------------------------------------------------------------------------------------
def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # frozen fallback (numpy<2 only)
        except ImportError:
            raise ModelFileError(
                "no TFLite runtime installed: pip install ai-edge-litert"
            ) from None
    return Interpreter


def _positional_key(name: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else 1 << 30, name)


class _Tensor:
    __slots__ = ("index", "shape", "dtype", "scale", "zero", "sig_shape")

    def __init__(self, d: Mapping[str, Any]) -> None:
        self.index = int(d["index"])
        self.dtype = np.dtype(d["dtype"])
        sig = d.get("shape_signature")
        sig = sig if sig is not None and len(sig) else d["shape"]
        self.sig_shape = tuple(int(x) for x in sig)
        self.shape = tuple(int(x) for x in d["shape"])
        q = d.get("quantization_parameters") or {}
        scales, zeros = q.get("scales", ()), q.get("zero_points", ())
        if self.dtype in (np.int8, np.uint8, np.int16) and len(scales) == 1:
            self.scale, self.zero = float(scales[0]), int(zeros[0])
        else:
            self.scale, self.zero = 0.0, 0


class LiteRTModel(Model):
    backend = "litert"

    def __init__(
        self, path: Path, threads: int = 1, names: tuple[Sequence[str], Sequence[str]] | None = None
    ):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise ModelFileError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
        Interpreter = _interpreter_class()
        try:
            self.interp = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
            self.interp.allocate_tensors()
        except Exception as e:
            msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            raise ModelFileError(f"{path}: truncated or not a valid TFLite model ({msg})") from None
        sigs = (
            self.interp.get_signature_list() if hasattr(self.interp, "get_signature_list") else {}
        )
        if sigs:
            runner = self.interp.get_signature_runner(next(iter(sigs)))
            ins = runner.get_input_details()
            outs = runner.get_output_details()
        else:
            ins = {d["name"]: d for d in self.interp.get_input_details()}
            outs = {d["name"]: d for d in self.interp.get_output_details()}
        in_names = sorted(ins, key=_positional_key)
        out_names = sorted(outs, key=_positional_key)
        # rename positional signature names to the caller's names
        if names is not None:
            want_in, want_out = list(names[0]), list(names[1])
            if set(want_in) != set(ins) and len(want_in) == len(in_names) and "*" not in want_in:
                ins = {w: ins[n] for w, n in zip(want_in, in_names, strict=True)}
                in_names = want_in
            if set(want_out) != set(outs) and len(want_out) == len(out_names):
                outs = {w: outs[n] for w, n in zip(want_out, out_names, strict=True)}
                out_names = want_out
        self._in = {n: _Tensor(ins[n]) for n in in_names}
        self._out = {n: _Tensor(outs[n]) for n in out_names}
        self.inputs = {
            n: (
                tuple(None if s < 0 else s for s in t.sig_shape),
                np.dtype(np.float32) if t.scale else t.dtype,
            )
            for n, t in self._in.items()
        }
        self.outputs = {
            n: (
                tuple(None if s < 0 else s for s in t.sig_shape),
                np.dtype(np.float32) if t.scale else t.dtype,
            )
            for n, t in self._out.items()
        }
        self._cur_shapes = {n: t.shape for n, t in self._in.items()}
        # batch axis fixed at 1 in the flatbuffer (shape_signature has no -1): resizing it would
        # break reshapes baked into the graph, so batches run row by row instead
        self._fixed_batch = all(t.sig_shape[:1] == (1,) for t in self._in.values())

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = next(iter(feeds.values()))
        b = first.shape[0] if first.ndim else 1
        if b > 1 and self._fixed_batch:
            # litert-torch graphs have a fixed batch of 1: run row by row and stack
            rows = [self._run({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(b)]
            return {k: np.concatenate([r[k] for r in rows]) for k in self._out}
        return self._run(feeds)

    def _run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self.interp
        resized = False
        for name, value in feeds.items():
            t = self._in.get(name)
            if t is None:
                raise KeyError(f"{self.path.name}: no input {name!r} (has: {', '.join(self._in)})")
            if value.shape != self._cur_shapes[name]:
                it.resize_tensor_input(t.index, list(value.shape), strict=False)
                self._cur_shapes[name] = value.shape
                resized = True
        if resized:
            it.allocate_tensors()
        for name, value in feeds.items():
            t = self._in[name]
            if t.scale:  # int8 input: quantize with the tensor's own parameters
                info = np.iinfo(t.dtype)
                q = np.clip(np.rint(value / t.scale) + t.zero, info.min, info.max)
                value = q.astype(t.dtype)
            elif value.dtype != t.dtype:
                value = value.astype(t.dtype)
            it.set_tensor(t.index, np.ascontiguousarray(value))
        it.invoke()
        out = {}
        for name, t in self._out.items():
            v = it.get_tensor(t.index)
            if t.scale:
                v = (v.astype(np.float32) - t.zero) * np.float32(t.scale)
            out[name] = v
        return out
