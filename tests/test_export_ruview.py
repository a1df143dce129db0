"""RuView pose_v1: a safetensors checkpoint with the published names -> one ONNX file that loads
alone and computes exactly the published architecture (checked against plain numpy)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from csi_edge.cli import cli  # noqa: E402

# published tensor names and shapes (models-and-vitals.md §2)
PUBLISHED = {
    "enc.c1.weight": (64, 56, 3),
    "enc.c1.bias": (64,),
    "enc.c2.weight": (128, 64, 3),
    "enc.c2.bias": (128,),
    "enc.c3.weight": (128, 128, 3),
    "enc.c3.bias": (128,),
    "head.fc1.weight": (256, 128),
    "head.fc1.bias": (256,),
    "head.fc2.weight": (34, 256),
    "head.fc2.bias": (34,),
}


@pytest.fixture(autouse=True)
def _short_timing(monkeypatch):
    """Latency figures are not under test here: time each model briefly."""
    monkeypatch.setattr("csi_edge.export.parity.LATENCY_BUDGET_S", 0.01)


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """'same' dilated Conv1d, k=3, pad=dilation: x [B, Cin, T] -> [B, Cout, T]."""
    t = x.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (dilation, dilation)))
    taps = [xp[:, :, k * dilation : k * dilation + t] for k in range(3)]  # [B, Cin, T] each
    return sum(np.einsum("oi,bit->bot", w[:, :, k], taps[k]) for k in range(3)) + b[None, :, None]


def numpy_forward(p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    p = {k: v.astype(np.float64) for k, v in p.items()}
    h = np.maximum(_conv1d(x, p["enc.c1.weight"], p["enc.c1.bias"], 1), 0)
    h = np.maximum(_conv1d(h, p["enc.c2.weight"], p["enc.c2.bias"], 2), 0)
    h = np.maximum(_conv1d(h, p["enc.c3.weight"], p["enc.c3.bias"], 4), 0)
    h = h.mean(axis=-1)
    h = np.maximum(h @ p["head.fc1.weight"].T + p["head.fc1.bias"], 0)
    return 1 / (1 + np.exp(-(h @ p["head.fc2.weight"].T + p["head.fc2.bias"])))


def test_ruview_safetensors_to_single_file_onnx(tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(20240611)
    weights = {
        k: (rng.standard_normal(s) * (0.5 / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 1))).astype(
            np.float32
        )
        for k, s in PUBLISHED.items()
    }
    ckpt = tmp_path / "pose_v1.safetensors"
    safetensors_numpy.save_file(weights, str(ckpt))
    out = tmp_path / "export" / "pose_v1.onnx"
    res = CliRunner().invoke(cli, ["export", str(ckpt), "--arch", "ruview-pose-v1", "-o", str(out)])
    assert res.exit_code == 0, res.output

    alone = tmp_path / "alone"  # the file on its own, nothing beside it
    alone.mkdir()
    shutil.copy(out, alone / "pose_v1.onnx")
    sess = ort.InferenceSession(str(alone / "pose_v1.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1:]) for i in sess.get_inputs()] == [("csi_window", [56, 20])]
    assert [o.name for o in sess.get_outputs()] == ["keypoints"]
    assert isinstance(sess.get_inputs()[0].shape[0], str)  # dynamic batch axis
    x = np.abs(rng.standard_normal((5, 56, 20))).astype(np.float32) * 10
    x[:, 28:40] = 0  # RuView's input has always-zero bins
    (got,) = sess.run(["keypoints"], {"csi_window": x})
    np.testing.assert_allclose(got, numpy_forward(weights, x), atol=1e-5, rtol=0)
