"""Amplitude and sanitized phase of complex CSI.

ESP32 CSI carries a random per-packet phase: a common offset (carrier frequency offset, PLL) plus
a slope across subcarriers (symbol timing offset). Both are linear in the subcarrier index, so
unwrapping across subcarriers and removing the least-squares line leaves the part of the phase
that the channel (people, multipath) shapes.
"""

from __future__ import annotations

import numpy as np


def amplitude(csi: np.ndarray) -> np.ndarray:
    """|CSI| as float32, any shape."""
    return np.abs(csi).astype(np.float32, copy=False)


def sanitize_phase(csi: np.ndarray, subcarriers: np.ndarray | None = None) -> np.ndarray:
    """Unwrapped phase across the last axis with its linear fit removed (float32, same shape).

    ``subcarriers`` gives each bin's subcarrier index (default 0..S-1); it matters when bins are
    missing (the DC bin of the LLTF grid), so the line is fitted against true frequency.
    """
    csi = np.asarray(csi)
    s = csi.shape[-1]
    if s == 0:
        return np.zeros(csi.shape, np.float32)
    x = (
        np.arange(s, dtype=np.float64)
        if subcarriers is None
        else np.asarray(subcarriers, np.float64)
    )
    ph = np.unwrap(np.angle(csi).astype(np.float64), axis=-1)
    xc = x - x.mean()
    denom = float(xc @ xc) or 1.0
    # Closed-form least squares per row: cheaper than lstsq on every frame.
    slope = (ph @ xc) / denom
    intercept = ph.mean(axis=-1)
    out = ph - intercept[..., None] - slope[..., None] * xc
    return out.astype(np.float32)
