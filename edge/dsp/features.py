"""Model input features, shared by the runtime (edge/inference), the calibration-set builder and
the vitals estimator, so training and serving build inputs the same way.

* :func:`pose_features` -> float32 [N, 104] per frame (MODEL_SPEC "Per-frame input features"):
  ``log1p(|CSI|)`` of the 52 non-DC LLTF subcarriers normalized with the manifest's per-subcarrier
  mean/std, then the 52 sanitized phases. Resample frames in time to the manifest's
  ``sample_rate_hz`` first (:func:`csi_edge.dsp.timegrid.uniform_grid`).
* :func:`vitals_window` -> float32 [8, 256] (MODEL_SPEC "Vital-sign model"): the 8 subcarrier
  amplitude series with the highest breathing-band SNR on a uniform 8 Hz grid (32 s), detrended
  and normalized per channel.
* :func:`frame_features` -> float32 [N, 104] for the vitals DSP: log-amplitude minus its
  per-frame mean (cancels AGC gain steps and RSSI swings) plus sanitized phase.
"""

from __future__ import annotations

import numpy as np

from csi_edge.dsp.grid import LLTF_SUBCARRIERS, drop_dc
from csi_edge.dsp.phase import sanitize_phase
from csi_edge.dsp.timegrid import uniform_grid

POSE_FEATURES = 104
VITALS_CHANNELS = 8
VITALS_SAMPLES = 256
VITALS_RATE_HZ = 8.0
BREATH_BAND_HZ = (0.1, 0.667)  # 6-40 BPM
NOISE_BAND_HZ = (3.2, 3.9)  # above the heart band, below the 8 Hz grid's Nyquist: white noise


def _lltf_52(csi_lltf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    csi_lltf = np.atleast_2d(csi_lltf)
    if csi_lltf.shape[-1] != len(LLTF_SUBCARRIERS):
        raise ValueError(
            f"expected LLTF canonical CSI [N, 53] (subcarriers -26..+26), got {csi_lltf.shape}"
        )
    return drop_dc(csi_lltf)


def pose_features(csi_lltf: np.ndarray, norm=None) -> np.ndarray:
    """[N, 53] complex LLTF CSI -> [N, 104] float32: normalized log1p amplitude, sanitized phase.

    ``norm``: an object with ``mean``/``std`` (52 values; :class:`csi_edge.dsp.norm.FixedNorm`,
    :class:`csi_edge.dsp.norm.RunningNorm`) or a manifest ``{"mean": [...], "std": [...]}`` dict;
    None leaves the amplitude unnormalized.
    """
    x, sc = _lltf_52(csi_lltf)
    amp = np.log1p(np.abs(x)).astype(np.float32)
    if norm is not None:
        mean, std = (norm["mean"], norm["std"]) if isinstance(norm, dict) else (norm.mean, norm.std)
        amp = (amp - np.asarray(mean, np.float32)) / np.maximum(np.asarray(std, np.float32), 1e-6)
    return np.concatenate([amp, sanitize_phase(x, sc)], axis=1).astype(np.float32)


def frame_features(csi_lltf: np.ndarray) -> np.ndarray:
    """[N, 53] complex -> [N, 104] float32 vitals channels (see module docstring)."""
    x, sc = _lltf_52(csi_lltf)
    la = np.log1p(np.abs(x)).astype(np.float32)
    la -= la.mean(axis=1, keepdims=True)
    return np.concatenate([la, sanitize_phase(x, sc)], axis=1)


def band_snr(
    x: np.ndarray, rate_hz: float, band_hz=BREATH_BAND_HZ, noise_hz=NOISE_BAND_HZ
) -> np.ndarray:
    """Per-channel SNR of ``x`` [T, C]: peak power in ``band_hz`` over median power in ``noise_hz``."""
    x = x - x.mean(axis=0)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))[:, None], axis=0)) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / rate_hz)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    noise = (f >= noise_hz[0]) & (f <= noise_hz[1])
    if not band.any() or not noise.any():
        return np.zeros(x.shape[1])
    return spec[band].max(axis=0) / np.maximum(np.median(spec[noise], axis=0), 1e-12)


def _detrend64(x: np.ndarray) -> np.ndarray:
    """Each column minus its least-squares line, float64 (``scipy.signal.detrend(x, axis=0)``
    without importing scipy.signal: ~75 MB in the estimator process, see csi_edge.dsp.iir)."""
    t = np.arange(len(x), dtype=np.float64)
    t -= t.mean()
    xc = x - x.mean(axis=0)
    return xc - np.outer(t, (t @ xc) / max(float(t @ t), 1e-12))


def vitals_window_from_grid(amp_grid: np.ndarray, n_channels: int = VITALS_CHANNELS) -> np.ndarray:
    """Uniform 8 Hz amplitude grid [T, C] -> [n_channels, T]: top band-SNR channels, detrended,
    z-scored. NaN samples (gaps) are filled by interpolation first."""
    g = np.array(amp_grid, np.float64)
    for c in np.flatnonzero(~np.isfinite(g).all(axis=0)):
        col, ok = g[:, c], np.isfinite(g[:, c])
        g[:, c] = np.interp(np.arange(len(col)), np.flatnonzero(ok), col[ok]) if ok.any() else 0.0
    snr = band_snr(g, VITALS_RATE_HZ)
    top = np.sort(np.argsort(-snr, kind="stable")[:n_channels])
    w = _detrend64(g[:, top])
    w /= np.maximum(w.std(axis=0), 1e-6)
    out = np.zeros((n_channels, len(g)), np.float32)
    out[: len(top)] = w.T
    return out


def vitals_window(
    t_rx: np.ndarray,
    csi_lltf: np.ndarray,
    end: float | None = None,
    n_samples: int = VITALS_SAMPLES,
    rate_hz: float = VITALS_RATE_HZ,
    n_channels: int = VITALS_CHANNELS,
) -> np.ndarray:
    """Frames (receive times [N], LLTF CSI [N, 53]) -> the vitals model input [8, 256] float32.

    The window covers the ``n_samples`` grid points ending at ``end`` (default: the last frame).
    Amplitude is log1p(|CSI|) minus its per-frame mean, so AGC steps do not look like motion.
    """
    feats = frame_features(csi_lltf)[:, :52]
    t = np.asarray(t_rx, np.float64)
    end = float(np.nanmax(t)) if end is None else end
    hi = np.floor(end * rate_hz + 1e-9) / rate_hz
    _, g, _ = uniform_grid(
        t, feats, rate_hz, t_start=hi - (n_samples - 1) / rate_hz, t_end=hi, max_gap_s=2.0
    )
    return vitals_window_from_grid(g, n_channels)
