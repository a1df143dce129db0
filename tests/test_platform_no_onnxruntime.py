"""Where onnxruntime has no wheel (32-bit ARM), the gateway runs LiteRT and says why.

onnxruntime cannot be uninstalled for one test, so a child process blocks its import
(``sys.modules["onnxruntime"] = None`` makes ``import onnxruntime`` fail as if absent)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ai_edge_litert")

CHILD = r"""
import logging, sys
sys.modules["onnxruntime"] = None
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
from csi_edge.config import GatewayConfig
from csi_edge.inference.backends import ModelFileError, onnxruntime_available, open_model
from csi_edge.inference.bundle import resolve
from csi_edge.service import load_pose_runtime, load_vitals_model
assert not onnxruntime_available()
cfg = GatewayConfig()  # default precision int8: an ONNX variant
pose, vitals = load_pose_runtime(cfg), load_vitals_model(cfg)
print("POSE", pose.bundle.variant.name, "VITALS", vitals.model.backend)
try:
    open_model(resolve("csi-edge-pose") / "encoder.int8.onnx")
except ModelFileError as e:
    print("ERROR", e)
"""


def test_gateway_falls_back_to_litert_without_onnxruntime() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "POSE int8-tflite VITALS litert" in out.stdout
    assert "onnxruntime is not installed on this platform" in out.stdout
    err = next(line for line in out.stdout.splitlines() if line.startswith("ERROR"))
    assert "encoder.int8.onnx" in err and "needs onnxruntime" in err and "int8-tflite" in err
