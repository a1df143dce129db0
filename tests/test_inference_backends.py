"""onnxruntime and LiteRT behind one interface give the same outputs on the same model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from csi_edge.inference.backends import LiteRTModel, ModelFileError, OrtModel, open_model
from csi_edge.inference.synthetic import make_pose_bundle, make_ruview_bundle
from csi_edge.temporal import Encoder, TemporalConfig, load_weights

CFG = TemporalConfig(4, 1, 16, 16, 64)


@pytest.fixture(scope="module")
def pose_bundle(tmp_path_factory) -> Path:
    return make_pose_bundle(tmp_path_factory.mktemp("pose"), CFG, int8=True, conv=(8, 16, 16))


def _torch_encoder(w: dict):
    """csi-edge's own torch encoder (csi_edge.export.arch.pose) with the bundle's numpy weights."""
    import torch

    from csi_edge.export.arch.pose import Encoder, PoseConfig

    widths = {f"conv{i}": w[f"enc.c{i}.weight"].shape[0] for i in (1, 2, 3)}
    m = Encoder(PoseConfig(embed_dim=w["enc.fc.weight"].shape[0], **widths)).eval()
    m.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in w.items() if k.startswith("enc.")})
    return m


@pytest.fixture(scope="module")
def tflite_encoders(pose_bundle: Path, tmp_path_factory) -> dict[str, Path]:
    """The bundle's encoder converted with litert-torch: fp32, and full int8 (int8 I/O)."""
    pytest.importorskip("litert_torch")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize import quant_config as qc
    from torchao.quantization.pt2e import quantize_pt2e

    out = tmp_path_factory.mktemp("tflite")
    module = _torch_encoder(load_weights(pose_bundle / "weights.npz"))
    kwargs = {"features": torch.randn(1, 104)}
    litert_torch.convert(module, sample_kwargs=kwargs).export(str(out / "enc.fp32.tflite"))
    prog = torch.export.export(module, (), kwargs).module()
    quantizer = pq.PT2EQuantizer().set_global(
        pq.get_symmetric_quantization_config(is_per_channel=True)
    )
    prepared = quantize_pt2e.prepare_pt2e(prog, quantizer)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _ in range(32):
            prepared(features=torch.from_numpy(rng.standard_normal((1, 104)).astype(np.float32)))
    quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    litert_torch.convert(
        quantized, sample_kwargs=kwargs, quant_config=qc.QuantConfig(pt2e_quantizer=quantizer)
    ).export(str(out / "enc.int8.tflite"))
    return {"fp32": out / "enc.fp32.tflite", "int8": out / "enc.int8.tflite"}


@pytest.mark.torch
@pytest.mark.slow
def test_backend_chosen_by_extension(pose_bundle: Path, tflite_encoders) -> None:
    assert isinstance(open_model(pose_bundle / "encoder.fp32.onnx"), OrtModel)
    lite = open_model(tflite_encoders["fp32"], names=(["features"], ["embedding"]))
    assert isinstance(lite, LiteRTModel)
    assert list(lite.inputs) == ["features"] and list(lite.outputs) == ["embedding"]
    with pytest.raises(ModelFileError, match=r"model.pt: unknown model type '.pt'"):
        open_model(pose_bundle / "model.pt")


@pytest.mark.torch
@pytest.mark.slow
def test_onnxruntime_and_litert_same_outputs_fp32(pose_bundle: Path, tflite_encoders) -> None:
    x = np.random.default_rng(3).standard_normal((5, 104)).astype(np.float32)
    ort = open_model(pose_bundle / "encoder.fp32.onnx").run({"features": x})["embedding"]
    lite = open_model(tflite_encoders["fp32"], names=(["features"], ["embedding"]))
    got = lite.run({"features": x})["embedding"]  # batch 5 on a batch-1 graph: row by row
    ref = Encoder(load_weights(pose_bundle / "weights.npz"))(x)
    assert got.shape == (5, 64) and got.dtype == np.float32
    assert np.abs(got - ort).max() <= 1e-4
    assert np.abs(ort - ref).max() <= 1e-4


@pytest.mark.torch
@pytest.mark.slow
def test_int8_litert_io_is_quantized_for_the_caller(pose_bundle: Path, tflite_encoders) -> None:
    lite = open_model(tflite_encoders["int8"], names=(["features"], ["embedding"]))
    x = np.random.default_rng(4).standard_normal((6, 104)).astype(np.float32)
    got = lite.run({"features": x})["embedding"]
    ort8 = open_model(pose_bundle / "encoder.int8.onnx").run({"features": x})["embedding"]
    ref = Encoder(load_weights(pose_bundle / "weights.npz"))(x)
    assert got.dtype == np.float32 and lite.inputs["features"][1] == np.float32
    assert lite._in["features"].dtype == np.int8  # the int8 I/O path is the one exercised
    # both INT8 models stay within quantization error of fp32 (LayerNorm output ~ unit scale)
    for got8 in (got, ort8):
        assert np.abs(got8 - ref).mean() < 0.05
        assert np.corrcoef(got8.ravel(), ref.ravel())[0, 1] > 0.99
    assert np.abs(got - ort8).mean() < 0.05


@pytest.mark.torch
def test_truncated_tflite_is_named(tmp_path: Path, tflite_encoders) -> None:
    bad = tmp_path / "enc.tflite"
    data = tflite_encoders["fp32"].read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match=r"enc.tflite: truncated or not a valid TFLite model"):
        open_model(bad)
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ModelFileError, match=r"enc.tflite: not a TFLite flatbuffer"):
        open_model(bad)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"x.onnx: no such model file"):
        open_model(tmp_path / "x.onnx")
    (tmp_path / "e.tflite").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"e.tflite: empty file"):
        open_model(tmp_path / "e.tflite")


def test_ort_threads_and_dtype_conversion(tmp_path: Path) -> None:
    folder = make_ruview_bundle(tmp_path)
    one = open_model(folder / "pose_v1.onnx", threads=1)
    two = open_model(folder / "pose_v1.onnx", threads=2)
    x = np.random.default_rng(0).standard_normal((3, 56, 20))  # float64 in, converted
    a, b = one.run({"csi_window": x})["keypoints"], two.run({"csi_window": x})["keypoints"]
    assert a.shape == (3, 34) and np.abs(a - b).max() <= 1e-6
    with pytest.raises(KeyError, match="no input 'window'"):
        one.run({"window": x})
