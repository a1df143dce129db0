"""``csi-edge export``: checkpoint -> model bundle (ONNX graphs, optional LiteRT, manifest).

One call loads the checkpoint into its architecture, exports every graph the architecture
defines as a self-contained ONNX file, checks each against torch (max abs diff <= 1e-4), writes
the numpy temporal-head weights for pose models, optionally converts to LiteRT, and writes the
bundle manifest (schema: ``edge/inference/manifest.py``) with provenance and parity figures.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata as _md
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.export import parity
from csi_edge.export._torch import ExportError, require
from csi_edge.export.arch import Arch, Graph, Tensor, get_arch
from csi_edge.export.checkpoint import load_factory, load_into, load_program, sha256_file

TOOL = "csi-edge export"


def tool_versions() -> dict[str, str]:
    out = {}
    for dist in (
        "csi-edge",
        "torch",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "litert-torch",
        "ai-edge-litert",
    ):
        with contextlib.suppress(_md.PackageNotFoundError):
            out[dist] = _md.version(dist)
    return out


@dataclass
class Loaded:
    """A checkpoint in its architecture, with what the exporter needs to know about it."""

    module: Any
    graphs: list[Graph]
    sizes: dict[str, int]
    task: str
    arch: str
    describe: dict = field(default_factory=dict)
    checkpoint: Path | None = None
    sha256: str = ""
    program: Any = None  # a torch.export program (.pt2), exported as is
    arch_obj: Arch | None = None


def parse_inputs(specs: list[str]) -> tuple[Tensor, ...]:
    """``name:B,56,20`` -> Tensor; ``B`` marks the dynamic batch axis."""
    out = []
    for spec in specs:
        name, sep, dims = spec.partition(":")
        try:
            if not sep or not name:
                raise ValueError
            shape = tuple(d if d == "B" else int(d) for d in dims.split(","))
        except ValueError:
            raise ExportError(f"--input {spec!r}: expected NAME:DIMS such as x:B,56,20") from None
        out.append(Tensor(name, shape))
    return tuple(out)


def load_model(
    checkpoint: str | Path,
    arch: str | None,
    config: dict | None = None,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    task: str | None = None,
) -> Loaded:
    """A registered architecture, a ``package.module:factory`` model, or a ``.pt2`` program."""
    torch = require("torch")
    checkpoint = Path(checkpoint)
    if checkpoint.suffix == ".pt2":
        prog = load_program(checkpoint)
        args, kwargs = prog.example_inputs or ((), {})
        names = [
            s.arg.name for s in prog.graph_signature.input_specs if s.kind.name == "USER_INPUT"
        ]
        vals = list(args) + list(kwargs.values())
        tensors = tuple(
            Tensor(n, tuple(v.shape), str(v.dtype).replace("torch.", ""))
            for n, v in zip(names, vals, strict=False)
        )
        n_out = len(prog.graph_signature.user_outputs)
        outs = tuple(outputs or [f"output_{i}" for i in range(n_out)])
        g = Graph("window", tensors, outs, lambda m: m, quantize=True)
        return Loaded(
            prog.module(),
            [g],
            {},
            task or "raw",
            "torch.export",
            {},
            checkpoint,
            sha256_file(checkpoint),
            prog,
        )
    if arch is None:
        raise ExportError("--arch is required (a registered name or package.module:factory)")
    if ":" in arch:
        module = load_factory(arch)
        if not inputs:
            raise ExportError(f"--arch {arch}: give the input shape, e.g. --input x:B,56,20")
        load_into(module, checkpoint, arch)
        tensors = parse_inputs(inputs)
        probe = Graph("window", tensors, (), lambda m: m).sample(1, np.random.default_rng(0), {})
        try:
            with torch.no_grad():
                res = module.eval()(*(torch.from_numpy(probe[t.name]) for t in tensors))
        except Exception as exc:
            raise ExportError(
                f"--arch {arch}: the model does not run on --input {' '.join(inputs)} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        n_out = 1 if torch.is_tensor(res) else len(res)
        outs = tuple(outputs or [f"output_{i}" for i in range(n_out)])
        g = Graph("window", tensors, outs, lambda m: m)
        return Loaded(module, [g], {}, task or "raw", arch, {}, checkpoint, sha256_file(checkpoint))
    try:
        a = get_arch(arch)
    except KeyError as exc:
        raise ExportError(str(exc.args[0])) from None
    try:
        module = a.build(config or {})
    except (TypeError, ValueError) as exc:
        raise ExportError(f"--arch {arch}: bad config {config}: {exc}") from None
    load_into(module, checkpoint, arch)
    return Loaded(
        module,
        list(a.graphs),
        a.sizes(module),
        a.task,
        a.name,
        a.describe(module),
        checkpoint,
        sha256_file(checkpoint),
        None,
        a,
    )


def file_names(out: Path, loaded: Loaded) -> tuple[Path, dict[str, str], str]:
    """(bundle folder, {role: onnx file name}, stem) for ``-o MODEL.onnx`` or ``-o FOLDER``."""
    primary = loaded.arch_obj.primary if loaded.arch_obj else loaded.graphs[0].role
    if out.suffix == ".onnx":
        folder, stem = out.parent, out.stem
        names = {
            g.role: (out.name if g.role == primary else f"{stem}.{g.role}.onnx")
            for g in loaded.graphs
        }
    else:
        folder, stem = out, loaded.arch
        names = {g.role: f"{g.role}.fp32.onnx" for g in loaded.graphs}
    return folder, names, stem


def ort_runner(path: Path, graph: Graph, per_row: bool = False) -> parity.Runner:
    """Run a model file through the gateway's own backend (csi_edge.inference.backends)."""
    from csi_edge.inference.backends import open_model

    model = open_model(path, threads=1, names=([t.name for t in graph.inputs], list(graph.outputs)))

    def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not per_row:
            res = model.run(inputs)
            return [res[n] for n in graph.outputs]
        n = len(next(iter(inputs.values())))
        rows = [model.run({k: v[i : i + 1] for k, v in inputs.items()}) for i in range(n)]
        return [np.concatenate([r[o] for r in rows]) for o in graph.outputs]

    return run


def torch_runner(module: Any, graph: Graph) -> parity.Runner:
    from csi_edge.export.onnx_export import torch_run

    names = [t.name for t in graph.inputs]
    return lambda inputs: torch_run(module, inputs, names)


def _eval(module: Any) -> Any:
    """eval() mode where the module supports it (a .pt2 program's module is already inference)."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


def _npz_weights(module: Any, path: Path) -> None:
    """The numpy temporal head's weights (``attn.*``, ``head.*``). The encoder's stay out: the
    runtime always runs the exported encoder graph, and for the conv encoder they would be
    90 % of the file."""
    state = {
        k: v.detach().cpu().numpy().astype(np.float32)
        for k, v in module.state_dict().items()
        if not k.startswith("enc.")
    }
    np.savez(path, **state)


def export_bundle(
    loaded: Loaded,
    out: str | Path,
    tflite: bool = False,
    name: str | None = None,
    version: str = "0.1.0",
    input_overrides: dict | None = None,
    progress: Any = None,
    exporter: str = "dynamo",
) -> dict:
    """Export ``loaded`` to ``out``; returns a summary (files, parity, manifest path)."""
    from csi_edge.export.onnx_export import PARITY_TOL, export_onnx, export_program, onnx_parity

    out = Path(out)
    folder, names, stem = file_names(out, loaded)
    folder.mkdir(parents=True, exist_ok=True)
    step = progress or (lambda msg: None)
    files: dict[str, str] = {}
    records: dict[str, dict] = {}
    for g in loaded.graphs:
        path = folder / names[g.role]
        step(f"ONNX {g.role} -> {path.name}")
        if loaded.program is not None:
            export_program(loaded.program, path, list(g.outputs))
        else:
            export_onnx(_eval(g.wrap(loaded.module)), g, loaded.sizes, path, exporter)
        module = _eval(g.wrap(loaded.module))
        par = onnx_parity(
            module, path, g, loaded.sizes, batches=(1, 3) if g.inputs[0].shape[0] == "B" else (1,)
        )
        inputs = g.sample(
            4 if g.inputs[0].shape[0] == "B" else 1, np.random.default_rng(7), loaded.sizes
        )
        rec = parity.compare(
            loaded.task,
            torch_runner(module, g),
            ort_runner(path, g),
            inputs,
            list(g.outputs),
            sizes={"reference": loaded.checkpoint.stat().st_size, "candidate": path.stat().st_size},
            labels={"reference": "torch fp32", "candidate": f"onnx fp32 ({g.role})"},
            data="generated inputs",
        )
        rec["generated_inputs"] = par
        records[g.role] = rec
        if not par["ok"]:
            raise ExportError(
                f"{path}: ONNX output differs from torch by {par['max_abs_diff']:.3g} "
                f"(> {PARITY_TOL}) on graph {g.role!r}: {par['per_output_max_abs_diff']}"
            )
        files[g.role] = path.name
    variants = {"fp32": dict(files)}
    if loaded.arch == "csi-edge-pose":
        wpath = folder / (f"{stem}.weights.npz" if out.suffix == ".onnx" else "weights.npz")
        _npz_weights(loaded.module, wpath)
        variants["fp32"]["weights"] = wpath.name
    if tflite:
        variants["fp32-tflite"] = export_tflite_variant(
            loaded, folder, stem, out.suffix == ".onnx", records, step
        )
        if "weights" in variants["fp32"]:  # the numpy temporal head serves every variant
            variants["fp32-tflite"]["weights"] = variants["fp32"]["weights"]
    report = folder / (f"{stem}.parity.json" if out.suffix == ".onnx" else "parity.fp32.json")
    parity.write_many(records, report, title=f"export {loaded.arch}")
    manifest = None
    if loaded.arch_obj is not None:
        manifest = write_bundle_manifest(
            folder,
            loaded,
            variants,
            "fp32",
            name=name,
            version=version,
            quantization=None,
            parity_summary=summarize(records, report.name),
            input_overrides=input_overrides,
        )
    return {
        "folder": str(folder),
        "files": variants,
        "manifest": str(manifest) if manifest else None,
        "parity_report": str(report),
        "parity": {role: {"max_abs_diff": r["max_abs_diff"]} for role, r in records.items()},
        "records": records,
    }


def tflite_roles(loaded: Loaded) -> list[Graph]:
    """Graphs worth a LiteRT file: the streaming pair for pose, the window model otherwise."""
    if loaded.arch == "csi-edge-pose":
        return [g for g in loaded.graphs if g.role in ("encoder", "temporal_step")]
    return [g for g in loaded.graphs if g.role == "window"]


def export_tflite_variant(
    loaded: Loaded,
    folder: Path,
    stem: str,
    named: bool,
    records: dict,
    step: Any,
    representative: dict[str, np.ndarray] | None = None,
    reuse: dict[str, str] | None = None,
) -> dict[str, str]:
    """Convert the LiteRT graphs (int8 for quantizable graphs when ``representative`` is given).

    ``reuse``: fp32 LiteRT files already in the bundle (same checkpoint), kept, not reconverted.
    """
    from csi_edge.export.tflite_export import convert_tflite

    if loaded.program is not None:
        raise ExportError("--tflite needs the torch module: give a checkpoint and --arch, not .pt2")
    files: dict[str, str] = {}
    for g in tflite_roles(loaded):
        int8 = representative is not None and g.quantize
        tag = "int8" if int8 else "fp32"
        if not int8 and reuse and g.role in reuse and (folder / reuse[g.role]).is_file():
            files[g.role] = reuse[g.role]
            continue
        fname = f"{stem}.{g.role}.{tag}.tflite" if named else f"{g.role}.{tag}.tflite"
        path = folder / fname
        step(f"LiteRT {g.role} ({tag}) -> {fname}")
        module = _eval(g.wrap(loaded.module))
        rep = None
        if int8:
            from csi_edge.export.quantize import fit_arrays

            arrays = fit_arrays(
                [t.name for t in g.inputs], [t.shape for t in g.inputs], representative
            )
            n = len(next(iter(arrays.values())))
            pick = np.unique(
                np.linspace(0, n - 1, min(n, 256)).astype(int)
            )  # spread over all windows
            rep = ({k: v[i : i + 1] for k, v in arrays.items()} for i in pick)
        convert_tflite(module, g, loaded.sizes, path, rep)
        inputs = g.sample(4, np.random.default_rng(11), loaded.sizes)
        if int8:
            inputs = {k: v[pick[:: max(1, len(pick) // 32)]] for k, v in arrays.items()}
        rec = parity.compare(
            loaded.task,
            torch_runner(module, g),
            ort_runner(path, g, per_row=True),
            inputs,
            list(g.outputs),
            sizes={"reference": loaded.checkpoint.stat().st_size, "candidate": path.stat().st_size},
            labels={"reference": "torch fp32", "candidate": f"litert {tag} ({g.role})"},
            data="calibration windows" if int8 else "generated inputs",
        )
        if not int8 and rec["max_abs_diff"] > 1e-4:
            raise ExportError(
                f"{path}: LiteRT output differs from torch by {rec['max_abs_diff']:.3g} (> 1e-4)"
            )
        records[f"{g.role}.tflite.{tag}"] = rec
        files[g.role] = fname
    return files


def summarize(records: dict[str, dict], report_name: str) -> dict:
    """The manifest's ``provenance.parity``: the headline figures plus the report's file name."""
    out: dict[str, Any] = {"report": report_name}
    for role, r in records.items():
        entry = {"max_abs_diff": r["max_abs_diff"], "mean_abs_diff": r["mean_abs_diff"]}
        if "generated_inputs" in r:
            entry["max_abs_diff_vs_torch"] = r["generated_inputs"]["max_abs_diff"]
        for side in ("reference", "candidate"):
            if r["metrics"].get(side):
                entry[side] = r["metrics"][side]
        if "latency_ms" in r:
            entry["latency_ms"] = r["latency_ms"]["candidate"]
        if "check" in r:
            entry["check"] = r["check"]
        out[role] = entry
    return out


def write_bundle_manifest(
    folder: Path,
    loaded: Loaded,
    variants: dict[str, dict[str, str]],
    precision: str,
    name: str | None,
    version: str,
    quantization: dict | None,
    parity_summary: dict,
    input_overrides: dict | None = None,
    existing: dict | None = None,
    exporter: str = "dynamo",
) -> Path:
    """Validate and write ``manifest.json`` with H4's schema (``csi_edge.inference.manifest``)."""
    from csi_edge.inference.manifest import write_manifest

    d = loaded.describe
    data = dict(existing or {})
    data.update(
        name=name or data.get("name") or loaded.arch,
        version=version,
        task=loaded.task,
        arch=loaded.arch,
        files=variants,
        precision=precision,
        input={**d.get("input", {}), **(data.get("input") or {}), **(input_overrides or {})},
        output=d.get("output", {}),
    )
    if "temporal" in d:
        data["temporal"] = d["temporal"]
    prov = dict(data.get("provenance") or {})
    prov.update(
        checkpoint_sha256=loaded.sha256,
        checkpoint=str(loaded.checkpoint) if loaded.checkpoint else None,
        quantization=quantization if quantization is not None else prov.get("quantization"),
        parity={**(prov.get("parity") or {}), **parity_summary},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        tool=f"{TOOL} {tool_versions().get('csi-edge', '')}".strip(),
        tool_versions=tool_versions(),
        opset=18 if exporter == "dynamo" else 17,
        exporter=exporter,
    )
    cfg = getattr(loaded.module, "cfg", None)
    if cfg is not None and hasattr(cfg, "as_dict"):
        prov["arch_config"] = cfg.as_dict()
    data["provenance"] = prov
    try:
        return write_manifest(folder, data)
    except ValueError as exc:
        raise ExportError(f"manifest not written: {exc}") from exc
