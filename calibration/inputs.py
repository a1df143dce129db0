"""Model input windows from decoded frames, built by the runtime's own code.

The calibration set must look exactly like what the quantized model will see on the gateway,
so every per-frame feature comes from :class:`csi_edge.inference.runtime.FeatureBuilder` (which
uses ``csi_edge.dsp``), pose frames are put on the manifest's time grid by the runtime's
:class:`~csi_edge.inference.runtime.TimeResampler`, RuView windows are assembled frame-major and
reshaped without a transpose as :class:`~csi_edge.inference.runtime.WindowRuntime` does, and vitals
windows come from :func:`csi_edge.dsp.features.vitals_window`. This module only cuts windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csi_edge.frames import FrameBatch
from csi_edge.layout import LLTF_RAW_BINS


@dataclass
class Windows:
    """Windows of one node: inputs [n, ...], window end times, per-window frame layout."""

    x: np.ndarray
    t_end: np.ndarray
    layout: np.ndarray  # dominant n_pairs of the window's frames ("64", "128", "192")
    motion: np.ndarray  # motion statistic: mean temporal std of the window's amplitudes


def raw_bins(frames: FrameBatch, iq_order: str, n_bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Complex CSI [N, n_bins] of the first raw bins of every frame (+ a keep mask).

    Frames shorter than ``n_bins`` pairs cannot feed the model and are dropped by the caller
    (counted as a skip).
    """
    out = np.zeros((len(frames), n_bins), np.complex64)
    keep = np.zeros(len(frames), bool)
    for n_pairs, idx, csi in frames.by_length(iq_order):
        if n_pairs >= n_bins:
            out[idx] = csi[:, :n_bins]
            keep[idx] = True
    return out, keep


def _layout_label(n_pairs: np.ndarray) -> str:
    """The window's dominant frame layout (64/128/192 pairs): mixed captures still balance."""
    u, c = np.unique(n_pairs, return_counts=True)
    return str(int(u[np.argmax(c)])) if len(u) else "none"


def _motion(x: np.ndarray) -> float:
    return float(np.nanmean(np.nanstd(x, axis=0))) if len(x) > 1 else 0.0


def pose_windows(
    manifest, t: np.ndarray, csi: np.ndarray, n_pairs: np.ndarray, hop: int
) -> Windows:
    """Frame-major streaming model: features on the manifest's time grid, W grid frames each."""
    from csi_edge.inference.runtime import FeatureBuilder, TimeResampler

    feats = FeatureBuilder(manifest)(csi)
    w = manifest.window
    # the motion statistic looks at amplitude columns only (phase is noisy even when still)
    amp = manifest.subcarriers if manifest.input["features"][0] == "amplitude" else feats.shape[1]
    resample = manifest.input.get("time_resample", "linear") != "none"
    segs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if resample:
        rs = TimeResampler(manifest.input["sample_rate_hz"])
        cur_t: list[np.ndarray] = []
        cur_x: list[np.ndarray] = []
        cur_p: list[np.ndarray] = []
        for i in range(len(t)):  # frame by frame, as the gateway sees them
            tg, xg = rs.push(t[i : i + 1], feats[i : i + 1])
            if rs.gap and cur_t:
                segs.append((np.concatenate(cur_t), np.concatenate(cur_x), np.concatenate(cur_p)))
                cur_t, cur_x, cur_p = [], [], []
            if len(tg):
                cur_t.append(tg)
                cur_x.append(xg)
                cur_p.append(np.full(len(tg), n_pairs[i]))
        if cur_t:
            segs.append((np.concatenate(cur_t), np.concatenate(cur_x), np.concatenate(cur_p)))
    else:
        segs.append((t, feats, n_pairs))
    xs, ends, lays, mot = [], [], [], []
    for st, sx, sp in segs:
        for s in range(0, len(st) - w + 1, hop):
            xs.append(sx[s : s + w])
            ends.append(st[s + w - 1])
            lays.append(_layout_label(sp[s : s + w]))
            mot.append(_motion(sx[s : s + w, :amp]))
    return _pack(xs, ends, lays, mot, (w, feats.shape[1]))


def reshape_windows(
    manifest, t: np.ndarray, csi: np.ndarray, n_pairs: np.ndarray, hop: int
) -> Windows:
    """RuView pose_v1 layout: W consecutive frames, frame-major, reshaped to (S, W), no transpose."""
    from csi_edge.inference.runtime import FeatureBuilder

    feats = FeatureBuilder(manifest)(csi)
    w, s_dim = manifest.window, feats.shape[1]
    xs, ends, lays, mot = [], [], [], []
    for s in range(0, len(t) - w + 1, hop):
        xs.append(feats[s : s + w].reshape(s_dim, w))  # WindowRuntime.assemble: no transpose
        ends.append(t[s + w - 1])
        lays.append(_layout_label(n_pairs[s : s + w]))
        mot.append(_motion(feats[s : s + w]))
    return _pack(xs, ends, lays, mot, (s_dim, w))


def vitals_windows(
    manifest, t: np.ndarray, csi: np.ndarray, n_pairs: np.ndarray, hop_s: float
) -> Windows:
    """[C, T] windows from :func:`csi_edge.dsp.features.vitals_window`, one every ``hop_s``."""
    from csi_edge.dsp.features import frame_features, vitals_window

    rate = float(manifest.input["sample_rate_hz"])
    n = manifest.window
    span = (n - 1) / rate
    lltf = csi[:, LLTF_RAW_BINS]
    xs, ends, lays, mot = [], [], [], []
    if len(t) == 0:
        return _pack(xs, ends, lays, mot, (int(manifest.input["channels"]), n))
    amp = frame_features(lltf)[:, :52]
    end = t[0] + span
    while end <= t[-1] + 1e-9:
        sel = (t >= end - span - 1.0) & (t <= end)
        if sel.sum() >= n // 4:  # a window mostly made of gap is not a sample
            xs.append(
                vitals_window(
                    t[sel],
                    lltf[sel],
                    end=end,
                    n_samples=n,
                    rate_hz=rate,
                    n_channels=int(manifest.input["channels"]),
                )
            )
            ends.append(end)
            lays.append(_layout_label(n_pairs[sel]))
            mot.append(_motion(amp[sel]))
        end += hop_s
    return _pack(xs, ends, lays, mot, (int(manifest.input["channels"]), n))


def _pack(xs, ends, lays, mot, shape) -> Windows:
    if not xs:
        return Windows(
            np.zeros((0, *shape), np.float32), np.zeros(0), np.zeros(0, "U8"), np.zeros(0)
        )
    return Windows(
        np.stack(xs).astype(np.float32),
        np.asarray(ends, np.float64),
        np.asarray(lays, "U8"),
        np.asarray(mot),
    )


def windows_for(manifest, t, csi, n_pairs, hop: int | None = None) -> Windows:
    """The window builder the manifest calls for (one switch, so a new layout is one case)."""
    layout = manifest.input["layout"]
    if manifest.task == "vitals" or layout == "channels-time":
        return vitals_windows(manifest, t, csi, n_pairs, hop_s=float(hop or 4))
    if layout == "frame-major-reshape":
        return reshape_windows(manifest, t, csi, n_pairs, hop or max(1, manifest.window // 2))
    return pose_windows(manifest, t, csi, n_pairs, hop or max(1, manifest.window // 2))
