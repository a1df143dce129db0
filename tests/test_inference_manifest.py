"""Bundle manifests: validation errors name the file and the field; model files are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from csi_edge.inference.bundle import BundleError, load_bundle
from csi_edge.inference.manifest import (
    ManifestError,
    check_model_io,
    check_source,
    load_manifest,
    validate,
    write_manifest,
)
from csi_edge.inference.synthetic import make_pose_bundle, make_ruview_bundle
from csi_edge.temporal import TemporalConfig


@pytest.fixture(scope="module")
def pose_bundle(tmp_path_factory) -> Path:
    return make_pose_bundle(
        tmp_path_factory.mktemp("pose"), TemporalConfig(4, 1, 16, 16, 64), int8=False
    )


def _raw(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_roundtrip_and_defaults(pose_bundle: Path, tmp_path: Path) -> None:
    m = load_manifest(pose_bundle)
    assert m.window == 16 and m.feature_dim == 104
    v = m.variant()
    assert (v.name, v.precision, v.backend) == ("fp32", "fp32", "onnxruntime")
    for f in pose_bundle.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    write_manifest(tmp_path, m)
    assert _raw(tmp_path) == _raw(pose_bundle)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["input"].pop("window"), "field 'input.window' missing"),
        (lambda d: d.pop("provenance"), "field 'provenance' missing"),
        (lambda d: d.update(task="dance"), "field 'task' must be one of pose, vitals; got 'dance'"),
        (lambda d: d["input"].update(window="64"), "field 'input.window' must be an integer"),
        (lambda d: d["input"].update(window=0), "field 'input.window' must be a positive integer"),
        (
            lambda d: d["input"]["norm"]["std"].pop(),
            "field 'input.norm.std' has 51 values, expected 52",
        ),
        (lambda d: d["temporal"].update(heads_kv=3), "field 'temporal.heads_kv' (3) must divide"),
        (
            lambda d: d["temporal"].update(window=8),
            "field 'temporal.window' is 8 but input.window is 16",
        ),
        (
            lambda d: d["files"]["fp32"].update(encoder="enc.pt"),
            "must name a .onnx or .tflite file",
        ),
        (
            lambda d: d["files"]["fp32"].update(encoder="gone.onnx"),
            "names 'gone.onnx', which is not in",
        ),
        (
            lambda d: d["files"].update(bf16={"encoder": "x.onnx"}),
            "variant name must start with fp32 or int8",
        ),
        (
            lambda d: d["input"].update(features=["amplitude", "doppler"]),
            "field 'input.features' must list",
        ),
        (lambda d: d["output"].pop("confidence"), "field 'output.confidence' missing"),
    ],
)
def test_bad_manifest_names_file_and_field(
    pose_bundle: Path, tmp_path: Path, edit, message
) -> None:
    d = _raw(pose_bundle)
    edit(d)
    for f in pose_bundle.iterdir():
        if f.name != "manifest.json":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError) as err:
        load_manifest(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "manifest.json") + ": ")
    assert message in str(err.value)


def test_not_json_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{ nope")
    with pytest.raises(ManifestError, match=r"manifest.json: not valid JSON"):
        load_manifest(tmp_path)


def test_flat_files_form_is_one_variant() -> None:
    d = {
        "name": "x", "version": "1", "task": "vitals", "arch": "a", "precision": "int8",
        "files": {"window": "v.tflite"},
        "input": {"features": ["amplitude"], "grid": "lltf-ht20", "subcarriers": 52,
                  "resample": "linear", "window": 256, "sample_rate_hz": 8,
                  "layout": "channels-time", "channels": 8},
        "output": {"layout": "vitals", "names": ["breathing_bpm"]},
        "provenance": {"checkpoint_sha256": "0", "parity": {}, "created": "now", "tool": "t"},
    }  # fmt: skip
    m = validate(d)
    assert list(m.variants) == ["int8"] and m.variant().backend == "litert"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("encoder.fp32.onnx", b"", "empty file"),
        ("encoder.fp32.onnx", None, "truncated or not an ONNX file"),  # None: cut in half
        ("encoder.fp32.onnx", b"\x00garbage" * 40, "truncated or not an ONNX file"),
        ("weights.npz", b"PK\x03\x04broken", "truncated or not an .npz weights file"),
    ],
)
def test_corrupt_or_truncated_model_file(pose_bundle, tmp_path, name, content, message) -> None:
    for f in pose_bundle.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    target = tmp_path / name
    if content is None:
        content = target.read_bytes()[: target.stat().st_size // 2]
    target.write_bytes(content)
    with pytest.raises(BundleError) as err:
        load_bundle(tmp_path)
    assert str(err.value).startswith(str(target)) and message in str(err.value)


def test_model_io_mismatch_names_file_and_shapes(pose_bundle, tmp_path) -> None:
    for f in pose_bundle.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    d = _raw(tmp_path)
    d["input"]["features"] = ["amplitude"]  # F = 52, the encoder takes 104
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError) as err:
        load_bundle(tmp_path)
    msg = str(err.value)
    assert "encoder.fp32.onnx: input 'features' has shape [B, 104]" in msg
    assert "implies [B, 52]" in msg


def test_check_model_io_missing_output() -> None:
    m = validate(_raw_pose_dict())
    with pytest.raises(ManifestError, match=r"step.onnx: model has no output 'confidence'"):
        check_model_io(
            m, "temporal_step", "step.onnx",
            {"embedding": (None, 64), "k_cache": (None, 1, 16, 16), "v_cache": (None, 1, 16, 16),
             "count": (None,)},
            {"keypoints": (None, 34), "k_cache_out": (None, 1, 16, 16),
             "v_cache_out": (None, 1, 16, 16)},
        )  # fmt: skip


def _raw_pose_dict() -> dict:
    return {
        "name": "p", "version": "1", "task": "pose", "arch": "csi-edge-pose", "precision": "fp32",
        "files": {"fp32": {"encoder": "e.onnx", "temporal_step": "s.onnx"}},
        "input": {"features": ["amplitude", "phase"], "grid": "lltf-ht20", "subcarriers": 52,
                  "resample": "linear", "window": 16, "sample_rate_hz": 20.0,
                  "layout": "frame-major"},
        "output": {"layout": "coco17-xy", "confidence": True},
        "temporal": {"heads_q": 4, "heads_kv": 1, "head_dim": 16, "window": 16, "embed_dim": 64},
        "provenance": {"checkpoint_sha256": "0", "quantization": None, "parity": {},
                       "created": "now", "tool": "t"},
    }  # fmt: skip


def test_source_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    m = load_manifest(make_ruview_bundle(tmp_path))
    check_source(m, "10.0.0.7#1", 64)
    with pytest.raises(ManifestError) as err:
        check_source(m, "10.0.0.7#1", 32)
    assert (
        "model expects 56 subcarriers on grid raw-first-56, node 10.0.0.7#1 delivers 32 bins"
        in str(err.value)
    )
    m2 = validate(_raw_pose_dict())
    with pytest.raises(ManifestError, match="lltf-ht20, node n delivers 52 bins"):
        check_source(m2, "n", 52)


def test_unknown_bundle_name() -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle("no-such-model-anywhere")


def test_bundle_weights_shape_vs_manifest(pose_bundle, tmp_path) -> None:
    for f in pose_bundle.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    w = dict(np.load(tmp_path / "weights.npz"))
    w["attn.k.weight"] = np.zeros((32, 64), np.float32)
    np.savez(tmp_path / "weights.npz", **w)
    with pytest.raises(BundleError, match=r"weights.npz: tensor 'attn.k.weight' is \[32, 64\]"):
        load_bundle(tmp_path)


def test_a_model_file_stands_for_its_bundle(tmp_path):
    """`csi-edge export -o model.onnx` writes the manifest beside the model, so commands given
    the model file (`calibration build --model m.onnx`, `run --pose m.onnx`) find its bundle."""
    from csi_edge.inference.bundle import resolve
    from csi_edge.inference.manifest import ManifestError, load_manifest
    from csi_edge.inference.synthetic import make_ruview_bundle

    folder = make_ruview_bundle(tmp_path / "rv")
    model = next(folder.glob("*.onnx"))
    assert load_manifest(model).name == load_manifest(folder).name
    assert resolve(model) == folder
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(model.read_bytes())
    with pytest.raises(ManifestError, match="without a manifest.json beside it"):
        load_manifest(lone)
