"""One small ``csi-edge-pose`` export shared by the export, temporal and inference tests.

Exporting through torch (dynamo ONNX + LiteRT, then INT8 quantization) is the slow part of these
tests, so it runs once per test process, whichever test module asks first: the result is cached
here rather than in a session fixture, because fixtures imported into several modules are
instantiated once per module. Tiny conv widths and window keep it quick; GQA (4 query heads
sharing 2 key/value heads) so the exported step graph covers grouped attention.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

W = 8
POSE_CFG = {"window": W, "heads_q": 4, "heads_kv": 2, "conv1": 8, "conv2": 16, "conv3": 16}


def _cli(*args: str) -> dict:
    from click.testing import CliRunner

    from csi_edge.cli import cli

    res = CliRunner().invoke(cli, [*map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@functools.cache
def pose_export() -> dict:
    """checkpoint -> ``csi-edge export --tflite`` (dynamo) -> ``csi-edge quantize --tflite
    --check``; returns the torch model, bundle folder, CLI reports and calibration file."""
    import os

    import pytest
    import torch

    from csi_edge.export.arch import get_arch

    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    tmp = Path(tempfile.mkdtemp(prefix="csi-edge-pose-export-"))
    atexit.register(shutil.rmtree, tmp, True)
    mp = pytest.MonkeyPatch()
    mp.setattr("csi_edge.export.parity.LATENCY_BUDGET_S", 0.01)  # figures are not under test here
    try:
        torch.manual_seed(3)
        model = get_arch("csi-edge-pose").build(POSE_CFG).eval()
        with torch.no_grad():  # LayerNorm starts at identity: perturb it so its weights matter
            model.enc.norm.weight.add_(0.1 * torch.randn_like(model.enc.norm.weight))
            model.enc.norm.bias.add_(0.1 * torch.randn_like(model.enc.norm.bias))
        ckpt = tmp / "model.pt"
        torch.save({"state_dict": model.state_dict()}, ckpt)  # the form training loops write
        rng = np.random.default_rng(5)
        n = 24
        cal = tmp / "cal.npz"
        np.savez(
            cal,
            features=rng.standard_normal((n, W, 104)).astype(np.float32),
            gt_keypoints=rng.uniform(0.3, 0.7, (n, 34)).astype(np.float32),
            split=(np.arange(n) >= 16).astype(np.int8),
        )
        out = tmp / "bundle"
        cfg_args = [a for k, v in POSE_CFG.items() for a in ("--config", f"{k}={v}")]
        exp = _cli("export", ckpt, "--arch", "csi-edge-pose", "-o", out, "--tflite",
                   "--exporter", "dynamo", *cfg_args)  # fmt: skip
        q = _cli("quantize", out, "--calibration", cal, "--tflite", "--check")
    finally:
        mp.undo()
    return {
        "name": "csi-edge-pose",
        "model": model,
        "dir": out,
        "export": exp,
        "quant": q,
        "cal": cal,
        "in": "features",
    }
