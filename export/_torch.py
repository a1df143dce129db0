"""The one place export/ asks for torch, so a missing install gives one clear message."""

from __future__ import annotations

import importlib
from types import ModuleType

from csi_edge.errors import CsiEdgeError

INSTALL_HINT = "pip install 'csi-edge[export]' torch==2.13.0"


class ExportError(CsiEdgeError):
    """A user-facing export/quantization error (bad checkpoint, missing extra, failed check)."""


def require(module: str = "torch") -> ModuleType:
    """Import ``module`` (torch, onnx, litert_torch, safetensors, ...) or explain how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ExportError(
            f"{module} is not installed; the export commands need the optional 'export' extra: "
            f"{INSTALL_HINT}"
        ) from exc
