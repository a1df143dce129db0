"""Model bundle manifest: schema, load + validate, write, and model I/O checks.

A bundle is a folder ``<bundle>/manifest.json`` plus the model files it lists. The bundled models
live in ``edge/models/<name>/``. Every error names the file and the field, e.g.
``manifest.json: field 'input.window' missing``.

Layout of ``manifest.json`` (all fields required unless marked optional)::

    {
      "name": "csi-edge-pose", "version": "0.1.0",
      "task": "pose" | "vitals",
      "arch": "csi-edge-pose" | "ruview-pose-v1" | "csi-edge-vitals" | ...,
      "files": {                                  # variant -> {role: filename (relative)}
        "fp32":        {"encoder": "encoder.fp32.onnx", "temporal_step": "temporal_step.fp32.onnx",
                        "full": "full.fp32.onnx", "weights": "weights.npz"},
        "int8":        {"encoder": "encoder.int8.onnx", "temporal_step": "temporal_step.fp32.onnx"},
        "int8-tflite": {"encoder": "encoder.int8.tflite", "temporal_step": "temporal_step.tflite"}
      },
      "precision": "fp32" | "int8",               # the default variant's precision
      "backend": "onnxruntime" | "litert",        # optional: inferred from the file extensions
      "input": {
        "features": ["amplitude", "phase"],       # per-frame features, in this order
        "grid": "lltf-ht20" | "raw-first-56",     # subcarrier grid the model was trained on
        "subcarriers": 52,
        "resample": "linear" | "cubic" | "truncate",  # how a node's bins are mapped onto the grid
        "window": 64,                             # frames per window (W)
        "sample_rate_hz": 20.0,                   # frames are resampled in time to this rate
        "layout": "frame-major" | "frame-major-reshape" | "channels-time",
        "channels": 8,                            # optional; vitals: channels C of [C, T]
        "time_resample": "linear" | "none",       # optional; default "linear", but "none"
                                                  # for grid raw-first-56 (RuView pose_v1 took
                                                  # frames as they came)
        "norm": {"mean": [...], "std": [...]} | null   # optional; per-subcarrier, log1p(amplitude)
      },
      "output": {"layout": "coco17-xy", "confidence": true}            # pose
             or {"layout": "vitals", "names": ["breathing_bpm", ...]},  # vitals
      "temporal": {"heads_q": 4, "heads_kv": 1, "head_dim": 16, "window": 64, "embed_dim": 64},
                                                  # required when a variant has an encoder
      "provenance": {"checkpoint_sha256": "...", "quantization": {...} | null,
                     "parity": {...}, "created": "2026-...", "tool": "csi-edge export 0.1.0"}
    }

``files`` may also be a flat ``{role: filename}`` map: that is one variant, named by ``precision``.
A variant's precision is the part of its name before the first ``-`` (``int8-tflite`` -> int8);
its backend comes from the file extensions (``.onnx`` -> onnxruntime, ``.tflite`` -> litert;
``.npz`` weights belong to the numpy temporal head and do not count). Roles:

* ``encoder`` ([B, F] -> [B, D]), ``temporal_step`` (see MODEL_SPEC), ``full`` ([B, T, F] ->
  keypoints/confidence), ``weights`` (.npz state dict for the numpy temporal head);
* ``window``: a whole-window model (RuView pose_v1 [B, 56, 20]; vitals [B, C, T]).

Layouts: ``frame-major`` = one feature vector per frame (the streaming models);
``frame-major-reshape`` = frames concatenated frame-major then reshaped straight to
(subcarriers, window) WITHOUT a transpose (RuView pose_v1, MODEL_SPEC.md "RuView pose_v1");
``channels-time`` = [C, T] with each row one channel's time series (vitals).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_edge.errors import InputError

MANIFEST_NAME = "manifest.json"
TASKS = ("pose", "vitals")
PRECISIONS = ("fp32", "int8")
BACKENDS = ("onnxruntime", "litert")
FEATURES = ("amplitude", "phase")
GRIDS = ("lltf-ht20", "raw-first-56", "raw-64")
RESAMPLE = ("linear", "cubic", "truncate")
TIME_RESAMPLE = ("linear", "none")
LAYOUTS = ("frame-major", "frame-major-reshape", "channels-time")
OUTPUT_LAYOUTS = ("coco17-xy", "vitals")
ROLES = ("encoder", "temporal_step", "full", "weights", "window")
EXT_BACKEND = {".onnx": "onnxruntime", ".tflite": "litert"}

#: Number of bins each grid carries (None: any count).
GRID_BINS = {"lltf-ht20": 52, "raw-first-56": 56, "raw-64": 64}


class ManifestError(InputError):
    """A manifest or model file does not say what the runtime needs; the message names both."""


@dataclass(frozen=True)
class Variant:
    """One set of model files of a bundle (e.g. ``int8-tflite``)."""

    name: str
    precision: str
    backend: str  # "onnxruntime" | "litert" | "numpy" (weights only)
    files: dict[str, str]


@dataclass
class Manifest:
    """A validated manifest; ``raw`` keeps the JSON dict as read (unknown fields survive)."""

    name: str
    version: str
    task: str
    arch: str
    precision: str
    variants: dict[str, Variant]
    input: dict[str, Any]
    output: dict[str, Any]
    temporal: dict[str, int] | None
    provenance: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = MANIFEST_NAME
    folder: Path | None = None

    # -- derived quantities --------------------------------------------------------------------
    @property
    def window(self) -> int:
        return int(self.input["window"])

    @property
    def subcarriers(self) -> int:
        return int(self.input["subcarriers"])

    @property
    def feature_dim(self) -> int:
        """F: floats per frame for frame-major models (features x subcarriers)."""
        return len(self.input["features"]) * self.subcarriers

    def variant(self, name: str | None = None) -> Variant:
        """The named variant, or the default one (first variant with the manifest's precision)."""
        if name is None:
            for v in self.variants.values():
                if v.precision == self.precision:
                    return v
            return next(iter(self.variants.values()))
        if name not in self.variants:
            raise ManifestError(
                f"{self.source}: no variant {name!r} in field 'files' "
                f"(has: {', '.join(self.variants)})"
            )
        return self.variants[name]

    def path(self, variant: Variant, role: str) -> Path:
        base = self.folder if self.folder is not None else Path(".")
        return base / variant.files[role]

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.raw)
        out.update(
            name=self.name,
            version=self.version,
            task=self.task,
            arch=self.arch,
            precision=self.precision,
            files={v.name: dict(v.files) for v in self.variants.values()},
            input=self.input,
            output=self.output,
            provenance=self.provenance,
        )
        if self.temporal is not None:
            out["temporal"] = self.temporal
        return out


# -- validation helpers ------------------------------------------------------------------------
class _Check:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, msg: str) -> ManifestError:
        return ManifestError(f"{self.source}: field '{path}' {msg}")

    def get(self, d: Mapping, path: str, kind: type | tuple, optional: bool = False, default=None):
        key = path.rsplit(".", 1)[-1]
        if key not in d or d[key] is None:
            if optional:
                return default
            raise self.fail(path, "missing")
        val = d[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if bool in (type(val),) and bool not in kinds:
            raise self.fail(path, f"must be {_kname(kinds)}, got {val!r}")
        if not isinstance(val, kinds):
            raise self.fail(path, f"must be {_kname(kinds)}, got {type(val).__name__} {val!r}")
        return val

    def choice(self, d: Mapping, path: str, choices: Sequence[str], optional=False, default=None):
        val = self.get(d, path, str, optional, default)
        if val is not None and val not in choices:
            raise self.fail(path, f"must be one of {', '.join(choices)}; got {val!r}")
        return val

    def pos_int(self, d: Mapping, path: str, optional=False, default=None) -> int | None:
        val = self.get(d, path, int, optional, default)
        if val is not None and val <= 0:
            raise self.fail(path, f"must be a positive integer, got {val}")
        return val


def _kname(kinds: tuple) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "an object",
        list: "a list",
        bool: "true/false",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _variant_backend(c: _Check, vname: str, files: dict[str, str]) -> str:
    backends = set()
    for role, fname in files.items():
        ext = Path(fname).suffix.lower()
        if role == "weights":
            if ext != ".npz":
                raise c.fail(f"files.{vname}.weights", f"must be an .npz file, got {fname!r}")
            continue
        if ext not in EXT_BACKEND:
            raise c.fail(
                f"files.{vname}.{role}", f"must name a .onnx or .tflite file, got {fname!r}"
            )
        backends.add(EXT_BACKEND[ext])
    if len(backends) > 1:
        # Mixing is allowed (e.g. int8 TFLite encoder + fp32 ONNX step); the encoder decides.
        enc = files.get("encoder") or files.get("window") or files.get("full")
        return EXT_BACKEND[Path(enc).suffix.lower()] if enc else sorted(backends)[0]
    return backends.pop() if backends else "numpy"


def validate(data: Any, source: str = MANIFEST_NAME, folder: Path | None = None) -> Manifest:
    """Check a manifest dict against the schema above; raise :class:`ManifestError` naming the
    first bad field. With ``folder`` given, every listed file must exist there."""
    c = _Check(source)
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: must hold a JSON object, got {type(data).__name__}")
    name = c.get(data, "name", str)
    version = c.get(data, "version", str)
    task = c.choice(data, "task", TASKS)
    arch = c.get(data, "arch", str)
    precision = c.choice(data, "precision", PRECISIONS)
    backend = c.choice(data, "backend", BACKENDS, optional=True)

    files = c.get(data, "files", dict)
    if not files:
        raise c.fail("files", "is empty: list at least one model file")
    if all(isinstance(v, str) for v in files.values()):
        files = {precision: files}
    variants: dict[str, Variant] = {}
    for vname, vfiles in files.items():
        if not isinstance(vfiles, dict) or not vfiles:
            raise c.fail(f"files.{vname}", "must be a non-empty object {role: filename}")
        for role, fname in vfiles.items():
            if role not in ROLES:
                raise c.fail(f"files.{vname}.{role}", f"is not a known role ({', '.join(ROLES)})")
            if not isinstance(fname, str) or not fname:
                raise c.fail(f"files.{vname}.{role}", "must be a file name")
            if Path(fname).is_absolute() or ".." in Path(fname).parts:
                raise c.fail(f"files.{vname}.{role}", f"must be relative to the bundle: {fname!r}")
        vprec = vname.split("-", 1)[0]
        if vprec not in PRECISIONS:
            raise c.fail(
                f"files.{vname}", f"variant name must start with {' or '.join(PRECISIONS)}"
            )
        vback = _variant_backend(c, vname, dict(vfiles))
        for role, fname in vfiles.items():
            if folder is not None and not (folder / fname).is_file():
                raise c.fail(f"files.{vname}.{role}", f"names {fname!r}, which is not in {folder}")
        if backend is not None and len(files) == 1 and vback not in (backend, "numpy"):
            raise c.fail("backend", f"says {backend} but the files are for {vback}")
        variants[vname] = Variant(vname, vprec, vback, dict(vfiles))
        roles = set(vfiles)
        if task == "pose" and not (roles & {"window", "full", "encoder"}):
            raise c.fail(f"files.{vname}", "needs an 'encoder', 'full' or 'window' model")
        if "encoder" in roles and not roles & {"temporal_step", "weights"}:
            raise c.fail(
                f"files.{vname}",
                "has an 'encoder' but no 'temporal_step' or 'weights' for the head",
            )
        if task == "vitals" and "window" not in roles:
            raise c.fail(f"files.{vname}", "needs a 'window' model for task vitals")

    inp = c.get(data, "input", dict)
    feats = c.get(inp, "input.features", list)
    if not feats or any(f not in FEATURES for f in feats) or len(set(feats)) != len(feats):
        raise c.fail("input.features", f"must list distinct entries of {FEATURES}, got {feats!r}")
    grid = c.choice(inp, "input.grid", GRIDS)
    sub = c.pos_int(inp, "input.subcarriers")
    if GRID_BINS.get(grid) not in (None, sub) and c.get(inp, "input.resample", str) != "truncate":
        raise c.fail("input.subcarriers", f"is {sub} but grid {grid} has {GRID_BINS[grid]} bins")
    c.choice(inp, "input.resample", RESAMPLE)
    window = c.pos_int(inp, "input.window")
    rate = c.get(inp, "input.sample_rate_hz", (int, float))
    if not (math.isfinite(rate) and rate > 0):
        raise c.fail("input.sample_rate_hz", f"must be a positive number, got {rate}")
    layout = c.choice(inp, "input.layout", LAYOUTS)
    c.choice(inp, "input.time_resample", TIME_RESAMPLE, optional=True)
    if layout == "channels-time":
        c.pos_int(inp, "input.channels")
    norm = c.get(inp, "input.norm", dict, optional=True)
    if norm is not None:
        for k in ("mean", "std"):
            arr = c.get(norm, f"input.norm.{k}", list)
            if len(arr) != sub:
                raise c.fail(f"input.norm.{k}", f"has {len(arr)} values, expected {sub}")
            if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in arr):
                raise c.fail(f"input.norm.{k}", "must hold finite numbers")
        if any(x <= 0 for x in norm["std"]):
            raise c.fail("input.norm.std", "must be > 0 everywhere")

    out = c.get(data, "output", dict)
    olayout = c.choice(out, "output.layout", OUTPUT_LAYOUTS)
    if olayout == "coco17-xy":
        c.get(out, "output.confidence", bool)
    else:
        names = c.get(out, "output.names", list)
        if not names or not all(isinstance(n, str) for n in names):
            raise c.fail("output.names", "must be a non-empty list of strings")

    temporal = None
    needs_head = any(
        {"encoder", "temporal_step", "weights"} & set(v.files) for v in variants.values()
    )
    if needs_head or "temporal" in data:
        t = c.get(data, "temporal", dict)
        temporal = {
            k: c.pos_int(t, f"temporal.{k}")
            for k in ("heads_q", "heads_kv", "head_dim", "window", "embed_dim")
        }
        if temporal["heads_q"] % temporal["heads_kv"]:
            raise c.fail(
                "temporal.heads_kv",
                f"({temporal['heads_kv']}) must divide temporal.heads_q ({temporal['heads_q']})",
            )
        if temporal["window"] != window:
            raise c.fail("temporal.window", f"is {temporal['window']} but input.window is {window}")

    prov = c.get(data, "provenance", dict)
    c.get(prov, "provenance.checkpoint_sha256", str)
    c.get(prov, "provenance.quantization", dict, optional=True)
    c.get(prov, "provenance.parity", dict)
    c.get(prov, "provenance.created", str)
    c.get(prov, "provenance.tool", str)

    return Manifest(
        name,
        version,
        task,
        arch,
        precision,
        variants,
        dict(inp),
        dict(out),
        temporal,
        dict(prov),
        raw=dict(data),
        source=source,
        folder=folder,
    )


MODEL_SUFFIXES = (".onnx", ".tflite")


def load_manifest(path: str | Path) -> Manifest:
    """Load ``manifest.json`` (or a bundle folder containing it) and validate it."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    elif p.suffix in MODEL_SUFFIXES and p.is_file():
        # a model file given for its bundle: `csi-edge export -o model.onnx` writes the
        # manifest beside it
        if not (p.parent / MANIFEST_NAME).is_file():
            raise ManifestError(
                f"{p}: a model file without a {MANIFEST_NAME} beside it; give the bundle folder "
                f"(csi-edge export writes model + manifest into one folder)"
            )
        p = p.parent / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest (a bundle is a folder with {MANIFEST_NAME})")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{p}: not valid JSON ({e})") from None
    return validate(data, source=str(p), folder=p.parent)


def write_manifest(folder: str | Path, manifest: Manifest | Mapping[str, Any]) -> Path:
    """Validate and write ``folder/manifest.json`` (files listed must already be in ``folder``)."""
    folder = Path(folder)
    data = manifest.to_dict() if isinstance(manifest, Manifest) else dict(manifest)
    target = folder / MANIFEST_NAME
    validate(data, source=str(target), folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def time_resample(m: Manifest) -> str:
    """The manifest's ``input.time_resample`` with its grid-dependent default."""
    default = "none" if m.input["grid"] == "raw-first-56" else "linear"
    return m.input.get("time_resample") or default


# -- model I/O and data checks -----------------------------------------------------------------
def expected_io(m: Manifest, role: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Expected input/output shapes of a role's model; ``None`` = any size (the batch axis)."""
    B = None
    W, F = m.window, m.feature_dim
    if role == "encoder":
        return {"features": (B, F)}, {"embedding": (B, m.temporal["embed_dim"])}
    if role == "temporal_step":
        t = m.temporal
        cache = (B, t["heads_kv"], W, t["head_dim"])
        return (
            {"embedding": (B, t["embed_dim"]), "k_cache": cache, "v_cache": cache, "count": (B,)},
            {
                "keypoints": (B, 34),
                "confidence": (B, 17),
                "k_cache_out": cache,
                "v_cache_out": cache,
            },
        )
    if role == "full":
        return {"features": (B, None, F)}, {"keypoints": (B, None, 34), "confidence": (B, None, 17)}
    if role == "window":
        if m.input["layout"] == "channels-time":
            shape = (B, int(m.input["channels"]), W)
        else:
            shape = (B, m.subcarriers, W)
        outs = {"vitals": (B, len(m.output["names"]))} if m.task == "vitals" else {}
        return {"*": shape}, outs
    return {}, {}


def check_model_io(
    m: Manifest,
    role: str,
    filename: str,
    inputs: Mapping[str, Sequence[int | None]],
    outputs: Mapping[str, Sequence[int | None]],
) -> None:
    """Compare a loaded model's I/O shapes (``None``/<=0 = dynamic) with what the manifest says."""
    want_in, want_out = expected_io(m, role)
    for kind, want, have in (("input", want_in, inputs), ("output", want_out, outputs)):
        if "*" in want:  # single unnamed input: take the model's only one
            if len(have) != 1:
                raise ManifestError(
                    f"{filename}: expected 1 {kind}, the model has {len(have)} ({', '.join(have)})"
                )
            want = {next(iter(have)): want["*"]}
        for name, shape in want.items():
            if name not in have:
                raise ManifestError(
                    f"{filename}: model has no {kind} {name!r} (has: {', '.join(have)}); "
                    f"{m.source} role {role!r} needs it"
                )
            got = tuple(have[name])
            if len(got) != len(shape) or any(
                w is not None and g is not None and g > 0 and g != w
                for w, g in zip(shape, got, strict=True)
            ):
                raise ManifestError(
                    f"{filename}: {kind} {name!r} has shape {_fmt(got)} but {m.source} "
                    f"implies {_fmt(shape)} for role {role!r}"
                )


def _fmt(shape: Sequence[int | None]) -> str:
    return (
        "["
        + ", ".join("B" if s is None or (isinstance(s, int) and s <= 0) else str(s) for s in shape)
        + "]"
    )


def check_source(m: Manifest, node: str, n_bins: int, grid: str | None = None) -> None:
    """Raise when a node's frames cannot be mapped onto the model's input grid.

    ``n_bins``: subcarrier pairs per frame the node delivers (64/128/192 raw ESP32 bins).
    """
    g = m.input["grid"]
    if grid is not None and grid != g and m.input["resample"] == "truncate":
        raise ManifestError(
            f"{m.source}: model expects {m.subcarriers} subcarriers on grid {g} (resample "
            f"'truncate'), node {node} delivers grid {grid}"
        )
    need = 64 if g in ("lltf-ht20", "raw-64") else m.subcarriers
    if n_bins < need:
        raise ManifestError(
            f"{m.source}: model expects {m.subcarriers} subcarriers on grid {g}, node {node} "
            f"delivers {n_bins} bins per frame (needs at least {need})"
        )
