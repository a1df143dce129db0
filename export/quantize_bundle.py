"""``csi-edge quantize``: an fp32 model or bundle -> INT8 ONNX (and INT8 LiteRT) + parity.

Given one ``.onnx`` file it quantizes that file; when the file belongs to a bundle (a
``manifest.json`` beside it lists it), or a bundle folder is given, the bundle gains an ``int8``
variant (and ``int8-tflite`` with ``--tflite``) and the manifest records how it was made.
Pose bundles are judged the way the gateway runs them: INT8 encoder -> fp32 streaming temporal
step, frame by frame over each held-out window, keypoints of the window's last frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi_edge.export import parity
from csi_edge.export._torch import ExportError
from csi_edge.export.arch import Graph, Tensor
from csi_edge.export.quantize import (
    fit_inputs,
    load_calibration,
    model_inputs,
    quantize_dynamic_onnx,
    quantize_static_onnx,
)


@dataclass
class Target:
    onnx: Path | None  # a single file to quantize, or None: every quantizable role of the bundle
    folder: Path
    manifest: Any  # csi_edge.inference.manifest.Manifest or None
    role: str | None


def resolve(model: str | Path) -> Target:
    from csi_edge.inference.manifest import MANIFEST_NAME, ManifestError, load_manifest

    p = Path(model)
    if p.is_dir() or p.name == MANIFEST_NAME:
        folder = p if p.is_dir() else p.parent
        try:
            return Target(None, folder, load_manifest(folder), None)
        except ManifestError as exc:
            raise ExportError(str(exc)) from None
    if not p.is_file():
        raise ExportError(f"{p}: no such model file or bundle folder")
    if p.suffix != ".onnx":
        raise ExportError(f"{p}: expected an .onnx file or a bundle folder")
    man = None
    role = None
    if (p.parent / MANIFEST_NAME).is_file():
        try:
            m = load_manifest(p.parent)
        except ManifestError:
            m = None
        if m is not None:
            for v in m.variants.values():
                for r, f in v.files.items():
                    if f == p.name and v.precision == "fp32":
                        man, role = m, r
    return Target(p, p.parent, man, role)


def _graph_of(path: Path) -> Graph:
    import onnx

    ins = model_inputs(path)
    m = onnx.load(str(path), load_external_data=False)
    outs = tuple(o.name for o in m.graph.output)
    return Graph(
        "x",
        tuple(
            Tensor(n, tuple(d if isinstance(d, int) and d > 0 else "B" for d in dims))
            for n, dims in ins
        ),
        outs,
        lambda m: m,
    )


def file_runner(path: Path, per_row: bool = False, like: Path | None = None) -> parity.Runner:
    """Run an .onnx/.tflite file with the gateway's backend; names from ``like`` (an .onnx)."""
    from csi_edge.export.bundle import ort_runner

    return ort_runner(path, _graph_of(like or path), per_row=per_row)


def pose_stream(encoder: parity.Runner, step: parity.Runner, temporal: dict) -> parity.Runner:
    """Windows {"features": [N, T, F]} -> [keypoints, confidence] of each window's last frame."""
    hkv, w, dh = temporal["heads_kv"], temporal["window"], temporal["head_dim"]

    def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = np.asarray(inputs["features"], np.float32)
        n, t, f = x.shape
        emb = encoder({"features": x.reshape(n * t, f)})[0].reshape(n, t, -1)
        k = np.zeros((n, hkv, w, dh), np.float32)
        v = np.zeros_like(k)
        kp = conf = None
        for i in range(t):
            kp, conf, k, v = step(
                {
                    "embedding": emb[:, i],
                    "k_cache": k,
                    "v_cache": v,
                    "count": np.full(n, i, np.int64),
                }
            )
        return [kp, conf]

    return run


def pose_frame_latency(
    encoder: parity.Runner, step: parity.Runner, temporal: dict, f: int
) -> float:
    """Per-frame gateway cost: one encoder call plus one temporal step, batch 1."""
    hkv, w, dh = temporal["heads_kv"], temporal["window"], temporal["head_dim"]
    k = np.zeros((1, hkv, w, dh), np.float32)
    feeds = {"features": np.zeros((1, f), np.float32)}

    def one(_: dict) -> list:
        e = encoder(feeds)[0]
        return step({"embedding": e, "k_cache": k, "v_cache": k, "count": np.zeros(1, np.int64)})

    return parity.latency_ms(one, {"x": np.zeros((1, 1))})


def _variant_size(folder: Path, files: dict[str, str]) -> int:
    return sum(
        (folder / f).stat().st_size for r, f in files.items() if r not in ("full", "weights")
    )


def _runners(
    folder: Path, files: dict[str, str], tflite: bool, like: dict[str, str]
) -> dict[str, parity.Runner]:
    return {
        r: file_runner(folder / f, per_row=tflite, like=folder / like[r])
        for r, f in files.items()
        if r not in ("weights", "full")
    }


def bundle_parity(
    m: Any, folder: Path, ref_files: dict, cand_files: dict, held: dict, labels: dict, tflite: bool
) -> dict:
    """Parity of a whole variant against the fp32 variant, the way the runtime uses it."""
    ref = _runners(folder, ref_files, False, ref_files)
    cand = _runners(folder, cand_files, tflite, ref_files)
    truth = {k: v for k, v in held.items() if k.startswith("gt_")}
    sizes = {
        "reference": _variant_size(folder, ref_files),
        "candidate": _variant_size(folder, cand_files),
    }
    if "encoder" in cand_files:
        if "features" not in held:
            raise ExportError("calibration file has no 'features' windows for the pose encoder")
        t = m.temporal
        rs, cs = (
            pose_stream(ref["encoder"], ref["temporal_step"], t),
            pose_stream(cand["encoder"], cand["temporal_step"], t),
        )
        inputs = {"features": held["features"]}
        rec = parity.compare(
            "pose", rs, cs, inputs, ["keypoints", "confidence"], truth, sizes, labels, time_it=False
        )
        f = held["features"].shape[-1]
        rec["latency_ms"] = {
            "reference": pose_frame_latency(ref["encoder"], ref["temporal_step"], t, f),
            "candidate": pose_frame_latency(cand["encoder"], cand["temporal_step"], t, f),
            "batch": 1,
            "threads": 1,
            "unit": "per frame (encoder + temporal step)",
        }
        rec["data"] = "held-out windows, streamed frame by frame"
        return rec
    g = ref["window"]
    names = [n for n, _ in model_inputs(folder / ref_files["window"])]
    inputs = fit_inputs(folder / ref_files["window"], {k: v for k, v in held.items() if k in names})
    return parity.compare(
        m.task,
        g,
        cand["window"],
        inputs,
        _graph_of(folder / ref_files["window"]).outputs,
        truth,
        sizes,
        labels,
    )


def quantize(
    model: str | Path,
    calibration: str | Path,
    out: str | Path | None = None,
    method: str = "minmax",
    tflite: bool = False,
    dynamic: bool = False,
    check: bool = False,
    max_loss: float | None = None,
    checkpoint: str | Path | None = None,
    progress: Any = None,
    activations: str = "uint8",
) -> dict:
    """Quantize ``model`` (file or bundle) with ``calibration``; returns the summary."""
    step = progress or (lambda msg: None)
    tgt = resolve(model)
    cal, held, extras = load_calibration(calibration)
    if not any(k for k in held if not k.startswith("gt_")):
        held = {**cal, **{k: v for k, v in held.items() if k.startswith("gt_")}}
    records: dict[str, dict] = {}
    qinfo: dict[str, Any] = {}

    # -- which files --------------------------------------------------------------------------
    m = tgt.manifest
    fp32_files: dict[str, str] = {}
    if m is not None:
        fp32 = m.variant("fp32") if "fp32" in m.variants else m.variant()
        fp32_files = dict(fp32.files)
    jobs: list[tuple[str, Path, Path]] = []  # (role, src, dst)
    if tgt.onnx is not None:
        dst = (
            Path(out)
            if out
            else tgt.onnx.with_name(
                tgt.onnx.name.replace(".fp32", "").replace(".onnx", ".int8.onnx")
            )
        )
        jobs.append((tgt.role or "model", tgt.onnx, dst))
    else:
        for role, f in fp32_files.items():
            if role in ("encoder", "window"):
                src = tgt.folder / f
                jobs.append(
                    (role, src, tgt.folder / f.replace(".fp32", "").replace(".onnx", ".int8.onnx"))
                )
        if not jobs:
            raise ExportError(
                f"{tgt.folder}: no quantizable model (encoder or window) in the fp32 variant"
            )

    for role, src, dst in jobs:
        step(f"INT8 {'dynamic' if dynamic else 'static ' + method} {src.name} -> {dst.name}")
        if dynamic:
            qinfo[role] = quantize_dynamic_onnx(src, dst)
            ref_ms = parity.latency_ms(file_runner(src), fit_inputs(src, cal))
            dyn_ms = parity.latency_ms(file_runner(dst), fit_inputs(src, cal))
            qinfo[role]["latency_ms"] = {"fp32": ref_ms, "dynamic_int8": dyn_ms}
            if dyn_ms >= ref_ms:
                dst.unlink(missing_ok=True)
                raise ExportError(
                    f"dynamic INT8 is slower than fp32 on {src.name} here ({dyn_ms:.3f} ms vs "
                    f"{ref_ms:.3f} ms per window): use static quantization (the default)"
                )
        else:
            qinfo[role] = quantize_static_onnx(src, dst, cal, method, activations=activations)
        if m is None or role not in ("encoder", "window"):
            inputs = fit_inputs(src, held)
            aligned = all(len(v) == len(next(iter(held.values()))) for v in inputs.values())
            truth = {k: v for k, v in held.items() if k.startswith("gt_")} if aligned else {}
            task = m.task if m is not None else _guess_task(src)
            records[f"{role}.int8"] = parity.compare(
                task,
                file_runner(src),
                file_runner(dst),
                inputs,
                list(_graph_of(src).outputs),
                truth,
                {"reference": src.stat().st_size, "candidate": dst.stat().st_size},
                {"reference": f"onnx fp32 ({src.name})", "candidate": f"onnx int8 ({dst.name})"},
            )

    variants: dict[str, dict[str, str]] = {}
    if m is not None:
        int8_files = {r: f for r, f in fp32_files.items() if r != "full"}
        for role, _, dst in jobs:
            if role in int8_files:
                int8_files[role] = dst.name
        variants["int8"] = int8_files
        records["int8"] = bundle_parity(
            m,
            tgt.folder,
            fp32_files,
            int8_files,
            held,
            {"reference": "onnx fp32", "candidate": "onnx int8"},
            tflite=False,
        )
        kept = _existing_tflite_int8(m, tgt.folder) if not tflite else None
        if tflite:
            variants["int8-tflite"] = _tflite_int8(m, tgt.folder, cal, checkpoint, records, step)
            if "weights" in fp32_files:  # the numpy temporal head serves every variant
                variants["int8-tflite"]["weights"] = fp32_files["weights"]
        elif kept is not None:
            # re-quantizing the ONNX side only (no checkpoint at hand): the LiteRT INT8 files
            # already in the bundle stay, and are measured again so the report covers them
            step("keeping the bundle's int8-tflite variant (re-measured, not rebuilt)")
            variants["int8-tflite"] = kept
        if "int8-tflite" in variants:
            records["int8-tflite"] = bundle_parity(
                m,
                tgt.folder,
                fp32_files,
                variants["int8-tflite"],
                held,
                {"reference": "onnx fp32", "candidate": "litert int8"},
                tflite=True,
            )
    elif tflite:
        raise ExportError(
            f"{tgt.onnx}: INT8 TFLite is converted from the torch model: quantize the bundle "
            "folder written by csi-edge export (its manifest names the checkpoint)"
        )

    checks = {}
    if check or max_loss is not None:
        for key, rec in records.items():
            if "." in key and m is not None:
                continue
            checks[key] = parity.check(rec, max_loss)
    report = (
        tgt.folder / "parity.int8.json"
        if m is not None
        else Path(jobs[0][2]).with_suffix(".parity.json")
    )
    parity.write_many(records, report, title=f"quantize ({'dynamic' if dynamic else method})")
    manifest_path = None
    if m is not None:
        from csi_edge.export.bundle import summarize

        manifest_path = _update_manifest(
            m, tgt.folder, variants, qinfo, summarize(records, report.name), method, extras
        )
    failed = {k: c for k, c in checks.items() if not c["ok"]}
    return {
        "outputs": [str(d) for _, _, d in jobs],
        "variants": variants,
        "quantization": qinfo,
        "parity_report": str(report),
        "manifest": str(manifest_path) if manifest_path else None,
        "records": records,
        "checks": checks,
        "failed": failed,
    }


def _guess_task(path: Path) -> str:
    outs = _graph_of(path).outputs
    return "pose" if "keypoints" in outs else "vitals" if "vitals" in outs else "raw"


def _tflite_int8(
    m: Any, folder: Path, cal: dict, checkpoint: Any, records: dict, step: Any
) -> dict:
    """Rebuild the torch model from the checkpoint the manifest names and convert to int8."""
    from csi_edge.export.bundle import export_tflite_variant, load_model
    from csi_edge.export.checkpoint import sha256_file

    prov = m.provenance
    ck = Path(checkpoint) if checkpoint else Path(prov.get("checkpoint") or "")
    if not ck.is_file():
        raise ExportError(
            f"{m.source}: INT8 TFLite converts from the torch checkpoint; {ck or 'none'} is not "
            "there: pass --checkpoint PATH"
        )
    if sha256_file(ck) != prov.get("checkpoint_sha256"):
        raise ExportError(f"{ck}: sha256 differs from {m.source} provenance.checkpoint_sha256")
    config = {k: v for k, v in (m.raw.get("provenance", {}).get("arch_config") or {}).items()}
    loaded = load_model(ck, m.arch, config)
    fp32_tflite = m.variants["fp32-tflite"].files if "fp32-tflite" in m.variants else None
    return export_tflite_variant(
        loaded, folder, "", False, records, step, representative=cal, reuse=fp32_tflite
    )


def _existing_tflite_int8(m: Any, folder: Path) -> dict[str, str] | None:
    """The bundle's current ``int8-tflite`` files when all are present, else None."""
    v = m.variants.get("int8-tflite")
    if v is None or not all((folder / f).is_file() for f in v.files.values()):
        return None
    return dict(v.files)


def _update_manifest(
    m: Any, folder: Path, variants: dict, qinfo: dict, summary: dict, method: str, extras: dict
) -> Path:
    from csi_edge.inference.manifest import write_manifest

    data = m.to_dict()
    files = data["files"]
    if all(isinstance(v, str) for v in files.values()):
        files = {data["precision"]: files}
    files.update(variants)
    data["files"] = files
    prov = dict(data["provenance"])
    cal_report = extras.get("report_json")
    prov["quantization"] = {
        "onnx": qinfo,
        "tflite": "PT2E static, symmetric per-channel int8 (litert-torch)"
        if "int8-tflite" in variants
        else None,
        "calibration": cal_report and _short(cal_report),
    }
    prov["parity"] = {**(prov.get("parity") or {}), **summary}
    data["provenance"] = prov
    try:
        return write_manifest(folder, data)
    except ValueError as exc:
        raise ExportError(f"manifest not updated: {exc}") from exc


def _short(report_json: str) -> dict:
    import json

    try:
        r = json.loads(report_json)
    except ValueError:
        return {}
    return {
        k: r[k] for k in ("windows", "by_node", "by_activity", "by_layout", "sources") if k in r
    }
