"""Complex channel -> ESP32-style raw CSI buffers (int8, imaginary first, raw bin order).

What the node's radio adds is modelled here: a random phase per packet (carrier offset) and a
random slope across subcarriers (timing offset), automatic gain control with occasional steps,
thermal noise, int8 rounding and clipping, guard and DC bins forced to zero, and the
LLTF / HT-LTF / STBC-HT-LTF sections that make 64-, 128- and 192-pair frames.
"""

from __future__ import annotations

import numpy as np

from csi_edge.sim.channel import RAW_SUBCARRIERS

LAYOUTS = (64, 128, 192)
_LLTF_ON = (np.abs(RAW_SUBCARRIERS) >= 1) & (np.abs(RAW_SUBCARRIERS) <= 26)
_HT_ON = (np.abs(RAW_SUBCARRIERS) >= 1) & (np.abs(RAW_SUBCARRIERS) <= 28)
TARGET_RMS = 22.0  # typical |CSI| in counts after the ESP32's AGC


def choose_layouts(layout: int | str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n_pairs per frame: a fixed 64/128/192, or ``"mixed"`` as seen in real captures."""
    if layout == "mixed":
        return rng.choice(np.array(LAYOUTS), n, p=[0.4, 0.4, 0.2])
    if int(layout) not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS} or 'mixed', got {layout!r}")
    return np.full(n, int(layout))


def agc_gain(
    t: np.ndarray, steps_per_min: float, rng: np.random.Generator, t_end: float
) -> np.ndarray:
    """Piecewise-constant gain with steps of +-1..3 dB at random instants."""
    g = np.ones(len(t))
    if steps_per_min <= 0:
        return g
    n = rng.poisson(steps_per_min * t_end / 60.0)
    for s in np.sort(rng.uniform(0, t_end, n)):
        g[t >= s] *= 10 ** (rng.choice([-1, 1]) * rng.uniform(1, 3) / 20)
    return g


def reference_rms(h: np.ndarray) -> float:
    """The channel level a slow AGC settles on: the median LLTF power of ``h`` [T, 64]."""
    return float(np.sqrt(np.median(np.mean(np.abs(h[:, _LLTF_ON]) ** 2, axis=1))))


def quantize(
    h: np.ndarray,
    n_pairs: np.ndarray,
    gain: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    ref_rms: float | None = None,
    slope: float = 0.15,
) -> list[np.ndarray]:
    """Channel [T, 64] -> list of int8 raw buffers (length 2 * n_pairs each).

    ``ref_rms`` is the AGC's reference level; by default the median over these T frames. A
    caller rendering frame by frame must pass one, or every frame is scaled to the same power
    (an instant AGC that would erase the amplitude changes motion and breathing cause).
    """
    t = len(h)
    s = RAW_SUBCARRIERS
    cfo = np.exp(
        1j * (rng.uniform(0, 2 * np.pi, t)[:, None] + rng.normal(0, slope, t)[:, None] * s[None])
    )
    # The gain follows the long-term channel power (the AGC is slow), not each frame's power.
    rms = reference_rms(h) if ref_rms is None else ref_rms
    scale = TARGET_RMS / max(float(rms), 1e-12) * gain[:, None]
    sigma = TARGET_RMS * gain[:, None] * 10 ** (-snr_db / 20) / np.sqrt(2)
    out = []
    for on, amp in ((_LLTF_ON, 1.0), (_HT_ON, 0.8), (_HT_ON, 0.8)):
        y = h * cfo * scale * amp
        y = y + sigma * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
        y[:, ~on] = 0
        pairs = np.stack([y.imag, y.real], -1)  # ESP-IDF order: imaginary first
        out.append(np.clip(np.round(pairs), -128, 127).astype(np.int8).reshape(t, 128))
    full = np.concatenate(out, axis=1)  # [T, 384]
    return [full[i, : 2 * n_pairs[i]] for i in range(t)]


def rssi_dbm(
    h: np.ndarray, gain: np.ndarray, base_dbm: float, rng: np.random.Generator
) -> np.ndarray:
    p = np.mean(np.abs(h[:, _LLTF_ON]) ** 2, axis=1)
    ref = np.median(p) if len(p) else 1.0
    r = base_dbm + 10 * np.log10(np.maximum(p / ref, 1e-6)) + rng.normal(0, 1.0, len(p))
    return np.clip(np.round(r), -100, -10).astype(np.int16)
