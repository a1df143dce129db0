"""The shipped bundles (``edge/models``): onnxruntime vs LiteRT, and a real capture end to end.

Parametrized over the bundles that exist; before the training script has produced them these
tests are skipped (the synthetic-bundle tests elsewhere cover the code paths).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from csi_edge.inference.bundle import bundled_models, load_bundle
from csi_edge.inference.manifest import load_manifest
from csi_edge.inference.runtime import PoseRuntime, VitalsRuntime, WindowRuntime, open_runtime

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("folder", bundled_models(), ids=lambda p: p.name)
def test_bundled_models_onnxruntime_vs_litert(folder: Path) -> None:
    """Each shipped LiteRT variant against the ONNX variant of the same precision, same inputs:
    fp32 to float rounding (max abs diff <= 1e-4 x output scale), INT8 within quantization
    tolerance (mean abs diff <= 5 % of the fp32 output's standard deviation)."""
    from csi_edge.inference.manifest import load_manifest

    m = load_manifest(folder)
    onnx_by_prec = {v.precision: v for v in m.variants.values() if v.backend == "onnxruntime"}
    lite = [v for v in m.variants.values() if v.backend == "litert"]
    pairs = [(onnx_by_prec[v.precision], v) for v in lite if v.precision in onnx_by_prec]
    if not pairs or "fp32" not in onnx_by_prec:
        pytest.skip(f"{folder.name} ships no ONNX/LiteRT pair")
    fp32 = load_bundle(folder, variant=onnx_by_prec["fp32"].name)
    rng = np.random.default_rng(4)
    checked = 0
    for onnx_v, lite_v in pairs:
        a_b, b_b = (
            load_bundle(folder, variant=onnx_v.name),
            load_bundle(folder, variant=lite_v.name),
        )
        for role, model in b_b.models.items():
            if role not in a_b.models:
                continue
            feeds = {}
            for name, (shape, dtype) in a_b.models[role].inputs.items():
                dims = [1 if d is None else d for d in shape]
                if np.issubdtype(dtype, np.integer):
                    feeds[name] = rng.integers(0, 3 * m.window, dims).astype(dtype)
                else:
                    feeds[name] = rng.standard_normal(dims).astype(np.float32)
            ref = fp32.models[role].run(feeds)
            a, b = a_b.models[role].run(feeds), model.run(feeds)
            for out in a:
                scale = max(float(ref[out].std()), 1e-3)
                diff = np.abs(a[out] - b[out])
                if lite_v.precision == "fp32":
                    assert diff.max() <= 1e-4 * max(scale, 1.0), (lite_v.name, role, out)
                else:
                    assert diff.mean() <= 0.05 * scale, (lite_v.name, role, out, diff.mean())
                checked += 1
    assert checked


def _capture_frames() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real ESP32 frames (ESP32-CSI-Tool capture, ~100 Hz) per node, raw complex CSI."""
    from csi_edge.capture import read_capture

    res = read_capture(DATA / "esp32-csi-tool" / "example_100hz_pitraffic.csv")
    fb = res.frames
    keys = fb.node_keys()
    out: dict[str, list] = {}
    for n_pairs, idx, csi in fb.by_length(res.iq_order):
        if n_pairs < 64:
            continue
        for j, i in enumerate(idx.tolist()):
            out.setdefault(keys[i], []).append((fb.meta["t_rx"][i], csi[j, :64]))
    frames = {}
    for node, rows in out.items():
        rows.sort(key=lambda r: r[0])
        frames[node] = (np.array([r[0] for r in rows]), np.stack([r[1] for r in rows]))
    return frames


@pytest.mark.parametrize("folder", bundled_models(), ids=lambda p: p.name)
def test_bundled_model_on_a_real_capture(folder: Path) -> None:
    """Every variant of a shipped bundle runs on real ESP32 frames; pose outputs are on the
    manifest's time grid and in [0, 1]; variants agree with fp32 within INT8 tolerance."""
    m = load_manifest(folder)
    frames = _capture_frames()
    assert frames
    node, (t, csi) = next(iter(frames.items()))
    results = {}
    for v in m.variants:
        rt = open_runtime(folder, variant=v, capacity=1)
        if isinstance(rt, VitalsRuntime):
            from csi_edge.dsp import vitals_window

            lltf = csi[:, np.r_[np.arange(38, 64), np.arange(0, 27)]]
            (res,) = rt.run(vitals_window(t, lltf))
            assert all(np.isfinite(list(res.values())))
            results[v] = np.array(list(res.values()))
            continue
        assert isinstance(rt, (PoseRuntime, WindowRuntime))
        outs = []
        for i in range(0, len(t), 7):  # arrive in small bursts, as from a socket
            outs += rt.push({node: (t[i : i + 7], csi[i : i + 7])})
        kp = np.stack([o.keypoints for o in outs])
        assert np.isfinite(kp).all() and kp.min() >= 0 and kp.max() <= 1
        rate = float(m.input["sample_rate_hz"])
        times = np.array([o.t for o in outs])
        assert np.allclose(times * rate, np.round(times * rate))
        assert abs(len(outs) - (t[-1] - t[0]) * rate) <= 2
        results[v] = kp
    # the reference is the fp32 ONNX variant (the default variant may be an INT8 one)
    fp32 = [v.name for v in m.variants.values() if v.precision == "fp32"]
    ref = results[next((n for n in fp32 if m.variants[n].backend == "onnxruntime"), fp32[0])]
    for v, r in results.items():
        tol = 1e-4 if m.variants[v].precision == "fp32" else 0.05 * max(1.0, float(np.std(ref)))
        assert np.abs(r - ref).mean() <= tol, (v, float(np.abs(r - ref).mean()))
