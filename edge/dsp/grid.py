"""Subcarrier grids: raw ESP-IDF bin order, null/guard bins, resampling to a model's grid.

The canonical grid is HT20 LLTF subcarriers -26..+26 (53 bins, DC at index 26). A 20 MHz
section of an ESP-IDF buffer lists subcarriers 0..31 then -32..-1, so subcarrier ``s`` sits at
raw bin ``s`` for ``s >= 0`` and ``64 + s`` for ``s < 0``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from csi_edge.layout import LLTF_SUBCARRIERS  # the canonical grid, DC included (index 26)

RESAMPLE_METHODS = ("linear", "cubic", "truncate")


def raw_bin_index(subcarriers: np.ndarray, n_bins: int = 64) -> np.ndarray:
    """Raw buffer bin of each subcarrier index (0..31 then -32..-1 order)."""
    sc = np.asarray(subcarriers)
    return np.where(sc >= 0, sc, n_bins + sc)


def drop_dc(
    x: np.ndarray, subcarriers: np.ndarray = LLTF_SUBCARRIERS
) -> tuple[np.ndarray, np.ndarray]:
    """Remove the DC bin (always zero on ESP32) from the last axis; returns (x, subcarriers)."""
    keep = np.asarray(subcarriers) != 0
    return x[..., keep], np.asarray(subcarriers)[keep]


def null_bins(csi: np.ndarray, min_fraction: float = 0.95) -> np.ndarray:
    """Mask of bins that are zero in at least ``min_fraction`` of frames (guard, DC, unused)."""
    csi = np.atleast_2d(csi)
    if len(csi) == 0:
        return np.zeros(csi.shape[-1], bool)
    return (np.abs(csi) == 0).mean(axis=0) >= min_fraction


def truncate_raw(raw_csi: np.ndarray, n: int = 56) -> np.ndarray:
    """The first ``n`` RAW bins of each frame, zero-padded if shorter (RuView pose_v1 parity).

    That model was trained on the first 56 bins of each 64-bin frame in raw ESP-IDF order, with
    guard bins and no reordering; a runtime that wants its accuracy must feed the same thing.
    """
    raw_csi = np.atleast_2d(raw_csi)
    out = np.zeros(raw_csi.shape[:-1] + (n,), raw_csi.dtype)
    k = min(n, raw_csi.shape[-1])
    out[..., :k] = raw_csi[..., :k]
    return out


@lru_cache(maxsize=32)
def _linear_matrix(src: tuple[float, ...], dst: tuple[float, ...]) -> np.ndarray:
    """[len(dst), len(src)] weights of linear interpolation (endpoints held)."""
    s, d = np.asarray(src), np.asarray(dst)
    eye = np.eye(len(s))
    return np.stack([np.interp(d, s, eye[i]) for i in range(len(s))], axis=1).astype(np.float32)


def resample_subcarriers(
    x: np.ndarray, src: np.ndarray, dst: np.ndarray | int, method: str = "linear"
) -> np.ndarray:
    """Map values on subcarrier positions ``src`` (last axis) to positions ``dst``.

    ``dst`` may be an int: that many positions spread evenly over ``src``'s span (endpoint
    aligned, the usual 52 -> 56 or 114 -> 56 mapping). ``method``: ``linear`` (a cached weight
    matrix, one matmul), ``cubic`` (scipy's CubicSpline, not-a-knot), or ``truncate`` (the
    first ``len(dst)`` bins, no interpolation). For RuView pose_v1 parity use
    :func:`truncate_raw` on raw-order frames instead: that model never saw canonical order.
    """
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"resample method must be one of {RESAMPLE_METHODS}, got {method!r}")
    src = np.asarray(src, np.float64)
    if isinstance(dst, (int, np.integer)):
        dst = np.linspace(src[0], src[-1], int(dst))
    dst = np.asarray(dst, np.float64)
    if method == "truncate":
        return truncate_raw(x, len(dst))
    if method == "linear":
        w = _linear_matrix(tuple(src.tolist()), tuple(dst.tolist()))
        return (x @ w.T.astype(x.real.dtype if np.iscomplexobj(x) else x.dtype)).astype(
            x.dtype, copy=False
        )
    from scipy.interpolate import CubicSpline

    return CubicSpline(src, x, axis=-1)(dst).astype(x.dtype, copy=False)
