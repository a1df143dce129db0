"""What each of the gateway's two processes loads (issue 13: gateway + estimator <= 150 MB): the
vitals model is opened in the estimator process only. Opening it in the gateway too cost the
gateway ~31 MB RSS (onnxruntime and a session) for a model it never runs. Checked by what is
imported and mapped, in a fresh interpreter, not by an RSS threshold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BUILD = """
import json, sys
from csi_edge.config import GatewayConfig
from csi_edge.service import build_gateway

cfg = GatewayConfig()
cfg.ingest.udp = ["127.0.0.1:0"]
cfg.models.pose = ""  # the soak's and most users' setting: the vitals model only
cfg.sinks.console = False
gw = build_gateway(cfg)
try:
    est = gw.estimators
    print(json.dumps({
        "vitals_model": None if gw.vitals_model is None else gw.vitals_model.name,
        "gateway_onnxruntime": sorted(m for m in sys.modules if m.split(".")[0] == "onnxruntime"),
        "child": est._proc.pid,
        "child_maps": open(f"/proc/{est._proc.pid}/maps").read(),
    }))
finally:
    gw.estimators.close()
"""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps (Linux)")
def test_the_vitals_model_is_opened_in_the_estimator_process_only(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", BUILD],
        capture_output=True,
        text=True,
        timeout=120,
        env={"CSI_EDGE_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["vitals_model"] == "csi-edge-vitals"  # the gateway still reports the model's vitals
    assert got["gateway_onnxruntime"] == []  # ... without importing onnxruntime itself
    # build_gateway returned once the child had opened it: its onnxruntime library is mapped
    assert "onnxruntime" in got["child_maps"]


def test_a_broken_named_vitals_model_is_still_a_config_error_at_start(tmp_path):
    """The file is opened in the estimator process now; build_gateway waits for its answer, so
    a truncated model is the same one-line error (exit 1) as when the gateway opened it."""
    from csi_edge.inference.bundle import MODELS_DIR

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    src = MODELS_DIR / "csi-edge-vitals"
    for f in src.iterdir():
        data = f.read_bytes()
        (bundle / f.name).write_bytes(data[:1000] if f.name == "window.int8.onnx" else data)
    res = subprocess.run(
        [sys.executable, "-m", "csi_edge", "run", "--udp", "127.0.0.1:0", "--pose", "none",
         "--vitals-model", str(bundle), "--duration", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"CSI_EDGE_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "models.vitals" in res.stderr and "window.int8.onnx" in res.stderr
