"""Load a model bundle: validate the manifest, open each model file, check its I/O shapes.

``load_bundle(path)`` accepts a bundle folder, its ``manifest.json``, or a bundled model name
(``csi-edge-pose`` -> ``edge/models/csi-edge-pose/``). Every problem is a :class:`BundleError`
(a :class:`ManifestError`) naming the file and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from csi_edge.inference.backends import Model, ModelFileError, open_model
from csi_edge.inference.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    Variant,
    check_model_io,
    expected_io,
    load_manifest,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class BundleError(ManifestError):
    """A bundle cannot be used; the message names the file and the problem."""


def bundled_models() -> list[Path]:
    """Folders of the models shipped in the package (``edge/models/<name>/manifest.json``)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.parent for p in MODELS_DIR.glob(f"*/{MANIFEST_NAME}"))


def resolve(path: str | Path) -> Path:
    """A folder, a manifest path, or the name of a bundled model -> the bundle folder."""
    p = Path(path)
    if p.is_file() and (
        p.name == MANIFEST_NAME
        or (p.suffix in (".onnx", ".tflite") and (p.parent / MANIFEST_NAME).is_file())
    ):
        return p.parent
    if p.is_dir():
        return p
    if not p.exists() and (MODELS_DIR / str(path) / MANIFEST_NAME).is_file():
        return MODELS_DIR / str(path)
    raise BundleError(
        f"{path}: no such bundle (a folder with {MANIFEST_NAME}, or one of: "
        f"{', '.join(b.name for b in bundled_models()) or 'no bundled models installed'})"
    )


@dataclass
class Bundle:
    """A manifest plus the opened models of one variant (``models[role]``)."""

    manifest: Manifest
    variant: Variant
    models: dict[str, Model] = field(default_factory=dict)
    weights_path: Path | None = None

    @property
    def folder(self) -> Path:
        return self.manifest.folder or Path(".")

    def size_bytes(self) -> int:
        """Bytes of this variant's files (what ships for it)."""
        return sum(self.manifest.path(self.variant, r).stat().st_size for r in self.variant.files)


def open_role(m: Manifest, v: Variant, role: str, threads: int = 1) -> Model:
    """Open one role's model file and check its I/O shapes against the manifest."""
    path = m.path(v, role)
    want_in, want_out = expected_io(m, role)
    try:
        model = open_model(path, threads=threads, names=(list(want_in), list(want_out)))
    except ModelFileError as e:
        raise BundleError(str(e)) from None
    ins = {k: s for k, (s, _) in model.inputs.items()}
    outs = {k: s for k, (s, _) in model.outputs.items()}
    check_model_io(m, role, str(path), ins, outs)
    return model


def load_bundle(
    path: str | Path,
    variant: str | None = None,
    threads: int = 1,
    roles: tuple[str, ...] | None = None,
) -> Bundle:
    """Load and check a bundle. ``roles`` limits which models are opened (default: all but
    ``full``, which only the benchmark's recompute baseline needs)."""
    folder = resolve(path)
    m = load_manifest(folder)
    v = m.variant(variant)
    b = Bundle(m, v)
    want = roles if roles is not None else tuple(r for r in v.files if r != "full")
    for role in want:
        if role not in v.files:
            raise BundleError(f"{m.source}: variant {v.name!r} has no {role!r} file in 'files'")
        if role == "weights":
            b.weights_path = m.path(v, "weights")
            _check_weights(m, b.weights_path)
            continue
        b.models[role] = open_role(m, v, role, threads)
    return b


def _check_weights(m: Manifest, path: Path) -> None:
    """The .npz must hold the temporal head's tensors with the manifest's shapes."""
    import zipfile

    import numpy as np

    t = m.temporal or {}
    need = {
        "attn.q.weight": (t.get("heads_q", 0) * t.get("head_dim", 0), t.get("embed_dim", 0)),
        "attn.k.weight": (t.get("heads_kv", 0) * t.get("head_dim", 0), t.get("embed_dim", 0)),
        "attn.v.weight": (t.get("heads_kv", 0) * t.get("head_dim", 0), t.get("embed_dim", 0)),
        "attn.o.weight": (t.get("embed_dim", 0), t.get("heads_q", 0) * t.get("head_dim", 0)),
    }
    try:
        with np.load(path, allow_pickle=False) as z:
            shapes = {k: z[k].shape for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise BundleError(f"{path}: truncated or not an .npz weights file ({e})") from None
    for name, shape in need.items():
        if name not in shapes:
            raise BundleError(f"{path}: no tensor {name!r} (the temporal head needs it)")
        if tuple(shapes[name]) != shape:
            raise BundleError(
                f"{path}: tensor {name!r} is {list(shapes[name])}, {m.source} field 'temporal' "
                f"implies {list(shape)}"
            )
    for name in ("head.fc1.weight", "head.fc2.weight"):
        if name not in shapes:
            raise BundleError(f"{path}: no tensor {name!r} (the keypoint head needs it)")
