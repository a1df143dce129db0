"""``csi-edge quantize``: methods, single files, --check, dynamic only when faster."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from csi_edge.cli import cli  # noqa: E402
from csi_edge.export.arch import get_arch  # noqa: E402
from csi_edge.inference.manifest import load_manifest  # noqa: E402


@pytest.fixture(scope="module")
def vitals(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr("csi_edge.export.parity.LATENCY_BUDGET_S", 0.01)
    tmp = tmp_path_factory.mktemp("q")
    torch.manual_seed(0)
    ckpt = tmp / "v.pt"
    torch.save(get_arch("csi-edge-vitals").build({}).state_dict(), ckpt)
    res = CliRunner().invoke(
        cli, ["export", str(ckpt), "--arch", "csi-edge-vitals", "-o", str(tmp / "b")]
    )
    assert res.exit_code == 0, res.output
    rng = np.random.default_rng(1)
    n = 20
    cal = tmp / "cal.npz"
    np.savez(
        cal,
        window=rng.standard_normal((n, 8, 256)).astype(np.float32),
        split=(np.arange(n) >= 14).astype(np.int8),
        gt_bpm=rng.uniform(10, 20, n).astype(np.float32),
    )
    yield tmp, cal
    mp.undo()


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_methods_are_recorded(vitals, method):
    tmp, cal = vitals
    bundle = tmp / f"b-{method}"
    shutil.copytree(tmp / "b", bundle)
    res = CliRunner().invoke(
        cli, ["quantize", str(bundle), "-c", str(cal), "--method", method, "--json"]
    )
    assert res.exit_code == 0, res.output
    m = load_manifest(bundle)
    q = m.provenance["quantization"]["onnx"]["window"]
    assert q["method"] == method and q["format"] == "QDQ" and q["per_channel"]
    assert "int8" in m.variants and (bundle / m.variant("int8").files["window"]).is_file()
    # ground truth in the calibration file -> the report scores BPM against it
    rep = json.loads((bundle / "parity.int8.json").read_text())["graphs"]["int8"]
    assert rep["ground_truth"] and "bpm_mae" in rep["metrics"]["candidate"]


def test_single_file_and_check_failure(vitals, tmp_path):
    tmp, cal = vitals
    alone = tmp_path / "model.onnx"
    shutil.copy(tmp / "b" / "window.fp32.onnx", alone)  # no manifest beside it
    res = CliRunner().invoke(cli, ["quantize", str(alone), "-c", str(cal), "--check", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["outputs"] == [str(tmp_path / "model.int8.onnx")] and not out["failed"]
    assert (tmp_path / "model.int8.parity.json").is_file() and (
        tmp_path / "model.int8.parity.txt"
    ).is_file()
    # an impossible threshold: the command fails and says why
    res = CliRunner().invoke(
        cli, ["quantize", str(alone), "-c", str(cal), "--check", "--max-loss", "-5"]
    )
    assert res.exit_code == 5  # CheckFailed (csi_edge.errors)
    assert "accuracy check failed" in res.output and "bpm loss" in res.output


def test_dynamic_is_measured_before_it_is_offered(vitals, tmp_path):
    tmp, cal = vitals
    alone = tmp_path / "model.onnx"
    shutil.copy(tmp / "b" / "window.fp32.onnx", alone)
    res = CliRunner().invoke(cli, ["quantize", str(alone), "-c", str(cal), "--dynamic", "--json"])
    if res.exit_code == 0:  # faster here: kept, with the figures that justified it
        lat = json.loads(res.stdout)["quantization"]["model"]["latency_ms"]
        assert lat["dynamic_int8"] < lat["fp32"]
    else:  # slower (the usual case on convs): refused, figures in the message, no file left
        assert "dynamic INT8 is slower than fp32" in res.output and " ms" in res.output
        assert not (tmp_path / "model.int8.onnx").exists()


def test_wrong_calibration_shape_is_a_clear_error(vitals, tmp_path):
    tmp, _ = vitals
    bad = tmp_path / "bad.npz"
    np.savez(bad, window=np.zeros((4, 8, 100), np.float32))
    res = CliRunner().invoke(cli, ["quantize", str(tmp / "b"), "-c", str(bad)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "8, 100]" in res.output and "expects" in res.output and "8, 256]" in res.output


def _int8_weight_range(path) -> int:
    """Largest |value| over the model's int8 weight initializers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    return max(int(np.abs(a.astype(np.int16)).max()) for a in arrays if a.dtype == np.int8)


@pytest.mark.parametrize("activations,limit", [("uint8", 64), ("int8", 128)])
def test_u8s8_weights_use_seven_bits_so_avx2_cannot_saturate(vitals, tmp_path, activations, limit):
    """U8S8 on x86 AVX2 without VNNI sums u8 x s8 pairs in int16 and saturates on full-range
    weights; 7-bit weights (reduce_range) cannot. S8S8 keeps the full 8 bits."""
    tmp, cal = vitals
    bundle = tmp_path / "b"
    shutil.copytree(tmp / "b", bundle)
    res = CliRunner().invoke(
        cli, ["quantize", str(bundle), "-c", str(cal), "--activations", activations, "--json"]
    )
    assert res.exit_code == 0, res.output
    m = load_manifest(bundle)
    q = m.provenance["quantization"]["onnx"]["window"]
    assert q["reduce_range"] is (activations == "uint8")
    top = _int8_weight_range(bundle / m.variant("int8").files["window"])
    assert top <= limit and (activations == "uint8" or top > 64), top
