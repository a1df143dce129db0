"""Each built-in architecture: checkpoint -> ONNX == torch -> INT8 within its report -> LiteRT.

Runs the real CLI (click), real torch export, onnxruntime and LiteRT (ai_edge_litert).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = [pytest.mark.torch, pytest.mark.slow]
torch = pytest.importorskip("torch")

from export_shared import POSE_CFG, pose_export  # noqa: E402

from csi_edge.cli import cli  # noqa: E402
from csi_edge.export.arch import get_arch  # noqa: E402
from csi_edge.inference.backends import open_model  # noqa: E402
from csi_edge.inference.bundle import load_bundle  # noqa: E402

# the pose model goes through torch's dynamo exporter (the product path; its export is shared
# with the temporal tests, tests/export_shared.py); the CNNs through the torchscript one, so
# both exporters are covered (ruview's own test uses dynamo)
CASES = {
    "csi-edge-pose": (POSE_CFG, "features", (8, 104), "dynamo"),
    "csi-edge-vitals": ({}, "window", (8, 256), "torchscript"),
    "ruview-pose-v1": ({}, "csi_window", (56, 20), "torchscript"),
}


def _run(*args: str) -> dict:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module", params=list(CASES))
def bundle(request, tmp_path_factory):
    if request.param == "csi-edge-pose":
        return pose_export()
    mp = pytest.MonkeyPatch()
    mp.setattr("csi_edge.export.parity.LATENCY_BUDGET_S", 0.01)  # figures are not under test here
    request.addfinalizer(mp.undo)
    name = request.param
    cfg, in_name, shape, exporter = CASES[name]
    tmp = tmp_path_factory.mktemp(name)
    torch.manual_seed(3)
    model = get_arch(name).build(cfg).eval()
    ckpt = tmp / "model.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)  # the wrapped form training loops write
    rng = np.random.default_rng(5)
    n = 24
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    if name == "ruview-pose-v1":
        x = np.abs(x) * 8  # amplitudes
    cal = tmp / "cal.npz"
    extra = (
        {"gt_keypoints": rng.uniform(0.3, 0.7, (n, 34)).astype(np.float32)}
        if name != "csi-edge-vitals"
        else {}
    )
    np.savez(cal, **{in_name: x}, split=(np.arange(n) >= 16).astype(np.int8), **extra)
    out = tmp / "bundle"
    cfg_args = [a for k, v in cfg.items() for a in ("--config", f"{k}={v}")]
    exp = _run(
        "export",
        str(ckpt),
        "--arch",
        name,
        "-o",
        str(out),
        "--tflite",
        "--json",
        "--exporter",
        exporter,
        *cfg_args,
    )
    q = _run("quantize", str(out), "--calibration", str(cal), "--tflite", "--check", "--json")
    return {
        "name": name,
        "model": model,
        "dir": out,
        "export": exp,
        "quant": q,
        "cal": cal,
        "in": in_name,
    }


def _torch_out(model, graph, feeds):
    with torch.no_grad():
        out = graph.wrap(model)(*(torch.from_numpy(feeds[t.name]) for t in graph.inputs))
    return [out] if torch.is_tensor(out) else list(out)


def test_onnx_equals_torch_and_is_self_contained(bundle):
    import onnx

    arch = get_arch(bundle["name"])
    files = bundle["export"]["files"]["fp32"]
    sizes = arch.sizes(bundle["model"])
    for g in arch.graphs:
        path = bundle["dir"] / files[g.role]
        m = onnx.load(str(path), load_external_data=False)
        opset = {o.domain: o.version for o in m.opset_import}[""]
        assert opset == (18 if CASES[bundle["name"]][3] == "dynamo" else 17)
        assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in m.graph.initializer)
        assert not list(bundle["dir"].glob("*.data"))
        feeds = g.sample(3, np.random.default_rng(9), sizes)  # batch 3: the batch axis is dynamic
        got = open_model(path).run(feeds)
        for name, ref in zip(g.outputs, _torch_out(bundle["model"], g, feeds), strict=False):
            assert np.abs(got[name] - ref.numpy()).max() <= 1e-4, (g.role, name)
        assert bundle["export"]["parity"][g.role]["max_abs_diff"] <= 1e-4


def test_int8_within_reported_tolerance(bundle):
    q = bundle["quant"]
    assert q["checks"] and not q["failed"]
    report = json.loads(Path(q["parity_report"]).read_text())["graphs"]["int8"]
    assert 0 < report["max_abs_diff"] < 0.1  # it is quantized, and close
    assert report["check"]["ok"] and report["check"]["loss"] <= report["check"]["threshold"]
    man = load_bundle(bundle["dir"], variant="int8").manifest
    assert man.provenance["quantization"]["onnx"]
    int8 = man.variant("int8").files
    role = "encoder" if "encoder" in int8 else "window"
    assert int8[role].endswith(".int8.onnx")
    if role == "window":  # recompute: the report tells the truth about the held-out windows
        z = np.load(bundle["cal"])
        held = z[bundle["in"]][z["split"] == 1]
        fp = open_model(bundle["dir"] / man.variant("fp32").files["window"]).run(
            {bundle["in"]: held}
        )
        i8 = open_model(bundle["dir"] / int8["window"]).run({bundle["in"]: held})
        diff = max(np.abs(fp[k] - i8[k]).max() for k in fp)
        assert diff == pytest.approx(report["max_abs_diff"], rel=1e-5, abs=1e-7)


def test_tflite_runs_in_litert_and_matches(bundle):
    arch = get_arch(bundle["name"])
    sizes = arch.sizes(bundle["model"])
    for variant, tol in (("fp32-tflite", 1e-4), ("int8-tflite", 0.1)):
        files = load_bundle(bundle["dir"], variant=variant).variant.files
        for role, fname in files.items():
            if role == "weights":
                continue
            assert fname.endswith(".tflite")
            g = arch.graph(role)
            feeds = g.sample(1, np.random.default_rng(4), sizes)
            if role == "temporal_step":
                feeds["count"] = np.array([3], np.int64)
            if variant == "int8-tflite" and g.quantize:  # int8: in-distribution windows
                feeds = {
                    k: np.load(bundle["cal"])[bundle["in"]][:1].reshape(
                        -1, *g.sample(1, np.random.default_rng(0), sizes)[k].shape[1:]
                    )[:1]
                    for k in feeds
                }
            model = open_model(
                bundle["dir"] / fname, names=([t.name for t in g.inputs], list(g.outputs))
            )
            got = model.run(feeds)
            for name, ref in zip(g.outputs, _torch_out(bundle["model"], g, feeds), strict=False):
                assert np.abs(got[name] - ref.numpy()).max() <= tol, (variant, role, name)


@pytest.mark.parametrize("bundle", ["csi-edge-pose"], indirect=True)
def test_pose_temporal_step_onnx_streams_like_torch_full(bundle):
    files = bundle["export"]["files"]["fp32"]
    enc = open_model(bundle["dir"] / files["encoder"])
    step = open_model(bundle["dir"] / files["temporal_step"])
    model = bundle["model"]
    c = model.cfg
    x = (
        np.random.default_rng(2)
        .standard_normal((2, 3 * c.window + 3, c.features))
        .astype(np.float32)
    )
    with torch.no_grad():
        kp_ref, conf_ref = (o.numpy() for o in model(torch.from_numpy(x)))
    k = np.zeros((2, c.heads_kv, c.window, c.head_dim), np.float32)
    v = k.copy()
    for t in range(x.shape[1]):
        e = enc.run({"features": x[:, t]})["embedding"]
        out = step.run(
            {"embedding": e, "k_cache": k, "v_cache": v, "count": np.full(2, t, np.int64)}
        )
        k, v = out["k_cache_out"], out["v_cache_out"]
        assert np.abs(out["keypoints"] - kp_ref[:, t]).max() <= 1e-5, t
        assert np.abs(out["confidence"] - conf_ref[:, t]).max() <= 1e-5, t


@pytest.mark.parametrize("bundle", ["csi-edge-pose"], indirect=True)
def test_int8_encoder_has_no_fp32_island_between_convs(bundle):
    """The conv encoder's ReLU/Reshape/Flatten are quantized with the convs (onnxruntime folds
    the ReLU into the int8 conv's output range), so no fp32 ReLU with a Q/DQ pair on each side
    is left; LayerNorm stays fp32 (int8 kernels do not cover it)."""
    import onnx

    files = load_bundle(bundle["dir"], variant="int8").variant.files
    ops = [n.op_type for n in onnx.load(str(bundle["dir"] / files["encoder"])).graph.node]
    assert ops.count("Conv") == 3 and "QuantizeLinear" in ops
    assert "Relu" not in ops
    assert ops[-1] == "LayerNormalization"
