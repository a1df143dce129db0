"""Load a checkpoint into a torch module, or explain exactly why it does not fit.

Accepted: a state dict saved with ``torch.save`` (also wrapped as ``{"state_dict": ...}`` or
``{"model": ...}``, as Lightning and most training loops write it), a ``.safetensors`` file, a
user model given as ``package.module:factory`` plus its checkpoint, or a ``torch.export``
program (``.pt2``) that carries its own weights.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_edge.export._torch import ExportError, require

WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "weights")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Tensors by name from a torch.save file or a safetensors file."""
    torch = require("torch")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        st = require("safetensors.torch")
        try:
            return dict(st.load_file(str(path)))
        except Exception as exc:
            raise ExportError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(
            f"{path}: not a torch.save state dict or safetensors file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ExportError(
            f"{path}: expected a dict of tensors (or one under {'/'.join(WRAPPER_KEYS)}), "
            f"got {type(obj).__name__}"
        )
    # checkpoints saved from DataParallel / torch.compile prefix every name
    for prefix in ("module.", "_orig_mod."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


@dataclass
class Mismatch:
    """Every way a checkpoint disagrees with a module, so one error can list them all."""

    missing: list[tuple[str, tuple]] = field(default_factory=list)
    unexpected: list[tuple[str, tuple]] = field(default_factory=list)
    shape: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape)

    def lines(self) -> list[str]:
        out = [f"  missing from checkpoint: {n} {list(s)}" for n, s in self.missing]
        out += [f"  unexpected in checkpoint: {n} {list(s)}" for n, s in self.unexpected]
        out += [
            f"  shape mismatch: {n}: checkpoint {list(a)} vs architecture {list(b)}"
            for n, a, b in self.shape
        ]
        return out


def compare(state: dict[str, Any], module: Any) -> Mismatch:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    mm = Mismatch()
    mm.missing = [(k, s) for k, s in expected.items() if k not in got]
    mm.unexpected = [(k, s) for k, s in got.items() if k not in expected]
    mm.shape = [(k, got[k], s) for k, s in expected.items() if k in got and got[k] != s]
    return mm


def load_into(module: Any, path: str | Path, what: str) -> Any:
    """Load ``path`` into ``module`` (eval mode) or raise one error listing every mismatch."""
    state = read_state_dict(path)
    mm = compare(state, module)
    if mm:
        raise ExportError(
            f"{path}: checkpoint does not match {what} "
            f"({len(mm.missing)} missing, {len(mm.unexpected)} unexpected, "
            f"{len(mm.shape)} shape mismatches):\n" + "\n".join(mm.lines())
        )
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval()


def load_factory(spec: str) -> Any:
    """Call ``package.module:factory`` and return the torch module it builds."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ExportError(
            f"--arch {spec!r}: expected a registered name or 'package.module:factory'"
        )
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ExportError(f"--arch {spec!r}: cannot import {mod_name} ({exc})") from exc
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise ExportError(f"--arch {spec!r}: {mod_name} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as exc:
        raise ExportError(f"--arch {spec!r}: {attr}() failed: {type(exc).__name__}: {exc}") from exc
    torch = require("torch")
    if not isinstance(model, torch.nn.Module):
        raise ExportError(
            f"--arch {spec!r}: factory returned {type(model).__name__}, not nn.Module"
        )
    return model


def load_program(path: str | Path) -> Any:
    """A ``torch.export`` program (.pt2) as a callable module with its own weights."""
    torch = require("torch")
    try:
        return torch.export.load(str(path))
    except Exception as exc:
        raise ExportError(f"{path}: not a torch.export program ({exc})") from exc
