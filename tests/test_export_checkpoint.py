"""Checkpoint loading: every mismatch in one error, wrapped dicts, factories, .pt2 programs."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from csi_edge.cli import cli  # noqa: E402
from csi_edge.export._torch import INSTALL_HINT, ExportError, require  # noqa: E402
from csi_edge.export.arch import get_arch  # noqa: E402
from csi_edge.export.checkpoint import load_into, read_state_dict  # noqa: E402


@pytest.fixture(autouse=True)
def _short_timing(monkeypatch):
    """Latency figures are not under test here: time each model briefly."""
    monkeypatch.setattr("csi_edge.export.parity.LATENCY_BUDGET_S", 0.01)


def test_mismatched_checkpoint_lists_every_mismatch(tmp_path):
    state = get_arch("ruview-pose-v1").build({}).state_dict()
    state.pop("enc.c2.bias")  # missing
    state["enc.c1.weight"] = torch.zeros(64, 52, 3)  # wrong shape
    state["head.fc3.weight"] = torch.zeros(3)  # unexpected
    ckpt = tmp_path / "bad.pt"
    torch.save(state, ckpt)
    res = CliRunner().invoke(
        cli, ["export", str(ckpt), "--arch", "ruview-pose-v1", "-o", str(tmp_path / "x.onnx")]
    )
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "1 missing, 1 unexpected, 1 shape mismatches" in res.output
    assert "missing from checkpoint: enc.c2.bias [128]" in res.output
    assert "unexpected in checkpoint: head.fc3.weight [3]" in res.output
    assert "enc.c1.weight: checkpoint [64, 52, 3] vs architecture [64, 56, 3]" in res.output
    assert not (tmp_path / "x.onnx").exists()


def test_wrapped_and_prefixed_state_dicts_load(tmp_path):
    model = get_arch("csi-edge-vitals").build({})
    for i, wrap in enumerate(
        (
            {"model": model.state_dict(), "epoch": 3},
            {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
        )
    ):
        torch.save(wrap, tmp_path / f"c{i}.pt")
        assert set(read_state_dict(tmp_path / f"c{i}.pt")) == set(model.state_dict())
        load_into(get_arch("csi-edge-vitals").build({}), tmp_path / f"c{i}.pt", "csi-edge-vitals")


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(ExportError, match="notes.pt: not a torch.save state dict or safetensors"):
        read_state_dict(bad)


def test_missing_extra_names_the_install_command():
    with pytest.raises(ExportError) as exc:
        require("csi_edge_no_such_module")
    assert INSTALL_HINT in str(exc.value)
    assert INSTALL_HINT == "pip install 'csi-edge[export]' torch==2.13.0"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    pkg = tmp_path / "usermodels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Tiny(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv1d(4, 6, 3, padding=1)
                    self.fc = nn.Linear(6, 2)

                def forward(self, x):
                    return self.fc(torch.relu(self.conv(x)).mean(-1))

            def build():
                return Tiny()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usermodels.tiny:build"
    for name in [m for m in sys.modules if m.startswith("usermodels")]:
        del sys.modules[name]


def test_factory_model_exports_with_dynamic_batch(tmp_path, user_module):
    import onnxruntime as ort
    from usermodels.tiny import build

    torch.manual_seed(0)
    model = build().eval()
    torch.save(model.state_dict(), tmp_path / "tiny.pt")
    out = tmp_path / "tiny.onnx"
    res = CliRunner().invoke(
        cli,
        [
            "export",
            str(tmp_path / "tiny.pt"),
            "--arch",
            user_module,
            "--input",
            "x:B,4,10",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    x = np.random.default_rng(0).standard_normal((5, 4, 10)).astype(np.float32)
    (got,) = ort.InferenceSession(str(out)).run(None, {"x": x})
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-5


def test_factory_without_input_shape_is_explained(tmp_path, user_module):
    from usermodels.tiny import build

    torch.save(build().state_dict(), tmp_path / "tiny.pt")
    res = CliRunner().invoke(
        cli,
        [
            "export",
            str(tmp_path / "tiny.pt"),
            "--arch",
            user_module,
            "-o",
            str(tmp_path / "t.onnx"),
        ],
    )
    assert res.exit_code == 1 and "--input x:B,56,20" in res.output


def test_pt2_program_exports(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(1)
    model = get_arch("csi-edge-vitals").build({"channels": 3, "samples": 32}).eval()
    x = torch.randn(2, 3, 32)
    prog = torch.export.export(
        model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},)
    )
    torch.export.save(prog, str(tmp_path / "vitals.pt2"))
    out = tmp_path / "vitals.onnx"
    res = CliRunner().invoke(
        cli, ["export", str(tmp_path / "vitals.pt2"), "-o", str(out), "--output-name", "vitals"]
    )
    assert res.exit_code == 0, res.output
    xs = np.random.default_rng(3).standard_normal((2, 3, 32)).astype(np.float32)
    sess = ort.InferenceSession(str(out))
    (got,) = sess.run(["vitals"], {sess.get_inputs()[0].name: xs})
    with torch.no_grad():
        ref = model(torch.from_numpy(xs)).numpy()
    assert np.abs(got - ref).max() <= 1e-5
