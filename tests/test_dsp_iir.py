"""The scipy-free high-pass (csi_edge.dsp.iir) against scipy.signal, which it replaces in the
estimator process, and the estimator process's imports (what it must not load)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from csi_edge.dsp.features import _detrend64
from csi_edge.dsp.iir import butter2_highpass, filtfilt
from csi_edge.vitals.spectral import highpass

ss = pytest.importorskip("scipy.signal")


@pytest.mark.parametrize("fs,fc", [(8.0, 0.07), (8.0, 0.5), (10.0, 0.07), (50.0, 2.0)])
def test_butter2_highpass_is_scipys(fs, fc):
    b, a = butter2_highpass(fs, fc)
    want_b, want_a = ss.sos2tf(ss.butter(2, fc, "highpass", fs=fs, output="sos"))
    np.testing.assert_allclose(b, want_b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a, want_a, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [16, 17, 100, 320, 333, 1000])
@pytest.mark.parametrize("fs,fc", [(8.0, 0.07), (8.0, 0.5), (50.0, 2.0)])
def test_filtfilt_is_scipys_sosfiltfilt(n, fs, fc):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 5)).cumsum(axis=0) + 30.0  # drift plus an offset, as CSI features
    pad = min(n - 1, 3 * int(fs / fc))
    sos = ss.butter(2, fc, "highpass", fs=fs, output="sos")
    want = ss.sosfiltfilt(sos, x, axis=0, padlen=pad)
    got = filtfilt(*butter2_highpass(fs, fc), x, padlen=pad)
    assert np.max(np.abs(got - want)) <= 1e-10 * np.max(np.abs(want))
    got1 = filtfilt(*butter2_highpass(fs, fc), x[:, 0], padlen=pad)  # 1-D in, 1-D out
    np.testing.assert_allclose(got1, got[:, 0], rtol=0, atol=1e-12)


def test_highpass_float32_and_short_input():
    x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    y = highpass(x, 8.0, 0.07)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert highpass(x[:10], 8.0, 0.07) is not None  # under 16 samples: returned as is
    with pytest.raises(ValueError, match="padlen 10 must be smaller"):
        filtfilt(*butter2_highpass(8.0, 0.07), x[:10], padlen=10)


def test_detrend_is_scipys():
    x = np.random.default_rng(1).normal(size=(256, 16)).cumsum(axis=0)
    np.testing.assert_allclose(_detrend64(x), ss.detrend(x, axis=0), rtol=0, atol=1e-10)


def test_estimator_process_imports_no_scipy_no_torch(tmp_path):
    """What the spawned estimator process loads: what unpickling its arguments brings in (as
    ``csi-edge run`` builds them), the vitals model, then a warm-up estimate. scipy (~75 MB
    RSS), torch, pandas, the sinks and the gateway must not be among them."""
    blob = tmp_path / "args.pkl"
    make = f"""
import pickle
from csi_edge.config import load_config
from csi_edge.service import load_vitals_model, vitals_model_loader
cfg = load_config(None)
model = load_vitals_model(cfg)
assert model is not None, "the bundled vitals model did not load"
args = (vitals_model_loader(cfg, model), cfg.vitals.to_vitals_config())
open({str(blob)!r}, "wb").write(pickle.dumps(args))
"""
    child = f"""
import pickle, sys
loader, config = pickle.loads(open({str(blob)!r}, "rb").read())
from csi_edge.estimators import Estimators
est = Estimators(None, loader(), config)
est.warm_up()
assert est.vitals_model is not None
print(" ".join(sorted(sys.modules)))
"""
    run = lambda code: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    run(make)
    mods = run(child).stdout.split()
    assert "csi_edge.vitals.node" in mods and "onnxruntime" in mods  # it did run an estimate
    roots = {m.split(".")[0] for m in mods}
    assert not roots & {"scipy", "torch", "pandas", "rich", "aiohttp", "paho", "click"}, roots
    heavy = ("csi_edge.sinks", "csi_edge.gateway", "csi_edge.service", "csi_edge.config")
    assert not [m for m in mods if m.startswith(heavy)]
