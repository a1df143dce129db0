"""Multipath channel at the 64 subcarriers of one 20 MHz section.

H(f_s, t) = sum over static paths a_p e^{-j 2 pi f_s L_p / c}  +  sum over body scatterers
b_k(t) e^{-j 2 pi f_s L_k(t) / c}. Body scatterers are the 17 skeleton joints plus the chest,
whose path shortens by twice its displacement (breathing and heartbeat). Static paths are fixed
per node (seeded), so each node sees its own frequency-selective pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csi_edge.radio import channel_to_mhz

C = 299_792_458.0
SUBCARRIER_SPACING_HZ = 312_500.0
RAW_SUBCARRIERS = np.r_[np.arange(0, 32), np.arange(-32, 0)]  #: raw bin -> subcarrier index
#: relative radar cross-section of each COCO-17 joint (head, arms, hips, legs), then the chest
PART_GAIN = np.array(
    [
        0.3,
        0.05,
        0.05,
        0.05,
        0.05,
        0.4,
        0.4,
        0.35,
        0.35,
        0.35,
        0.35,
        0.5,
        0.5,
        0.35,
        0.35,
        0.25,
        0.25,
    ]
)
CHEST_GAIN = 1.0


@dataclass
class NodeChannel:
    """One receiving node: its position, the AP's, and the static multipath it sees."""

    tx: np.ndarray
    rx: np.ndarray
    static_len: np.ndarray  # [P] metres
    static_gain: np.ndarray  # [P] complex
    body_gain: float
    freq_hz: float

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        node_index: int = 0,
        body_gain: float = 0.25,
        channel: int = 6,
    ) -> NodeChannel:
        tx = np.array([0.2, 4.5, 1.8])
        ang = 0.6 + 0.9 * node_index
        rx = np.array(
            [2.0 + 1.8 * np.cos(ang), 2.2 + 1.8 * np.sin(ang), 1.0 + 0.2 * (node_index % 3)]
        )
        los = float(np.linalg.norm(tx - rx))
        # Indoor multipath: a dozen reflections within 2-30 m of excess path, some as strong as
        # the line of sight, so the channel fades across the 16 MHz of subcarriers.
        p = 12
        lens = np.r_[los, los + rng.uniform(2.0, 30.0, p - 1)]
        amps = np.r_[1.0, rng.uniform(0.3, 1.0, p - 1) * np.sqrt(los / lens[1:])]
        gains = amps * np.exp(1j * rng.uniform(0, 2 * np.pi, p))
        return cls(tx, rx, lens, gains, body_gain, channel_to_mhz(channel) * 1e6)

    @property
    def freqs(self) -> np.ndarray:
        return self.freq_hz + RAW_SUBCARRIERS * SUBCARRIER_SPACING_HZ

    def static(self) -> np.ndarray:
        """Static channel [64] in raw bin order."""
        ph = np.exp(-2j * np.pi * np.outer(self.freqs, self.static_len) / C)
        return ph @ self.static_gain

    def environment(self, t: np.ndarray, level: float, seed: int) -> np.ndarray:
        """[T, 64] a reflector of the room itself wandering slowly (a curtain, a door ajar, a
        fan, warming walls): one extra path whose complex gain drifts without rhythm (30
        sinusoids 0.005-0.5 Hz, amplitude ~1/sqrt(f)) at ``level`` x the static channel's RMS.

        Why: real empty ESP32 rooms carry slow change that is coherent across subcarriers (one
        path moving changes them all together); a detector that combines subcarriers
        coherently finds a "rhythm" in it that white noise alone never shows."""
        if level <= 0:
            return np.zeros((len(t), 64), np.complex128)
        rng = np.random.default_rng([seed, 0xE7])
        f = np.exp(rng.uniform(np.log(0.005), np.log(0.5), 30))
        amp = 1.0 / np.sqrt(f)
        amp /= np.sqrt(np.sum(amp**2) / 2)
        ph = rng.uniform(0, 2 * np.pi, (2, 30))
        arg = 2 * np.pi * np.asarray(t)[:, None] * f
        g = (np.sin(arg + ph[0]) * amp).sum(1) + 1j * (np.sin(arg + ph[1]) * amp).sum(1)
        length = float(self.static_len[0]) + rng.uniform(1.0, 8.0)
        path = np.exp(-2j * np.pi * self.freqs * length / C)
        rms = float(np.sqrt(np.mean(np.abs(self.static()) ** 2)))
        return level * rms * g[:, None] * path[None, :]

    def csi(
        self, joints: np.ndarray | None, present: np.ndarray, chest_disp: np.ndarray
    ) -> np.ndarray:
        """Complex channel [T, 64] (raw bin order) for skeletons ``joints`` [T,17,3]."""
        h0 = self.static()
        t = len(present)
        out = np.repeat(h0[None], t, axis=0).astype(np.complex128)
        if joints is None or not present.any():
            return out
        scale = self.body_gain * np.sqrt(np.mean(np.abs(h0) ** 2))
        idx = np.flatnonzero(present)
        j = joints[idx]
        chest = 0.5 * (j[:, 5] + j[:, 6]) * 0.6 + 0.5 * (j[:, 11] + j[:, 12]) * 0.4
        pts = np.concatenate([j, chest[:, None]], axis=1)  # [T, 18, 3]
        lens = np.linalg.norm(pts - self.tx, axis=-1) + np.linalg.norm(pts - self.rx, axis=-1)
        lens[:, -1] -= 2.0 * chest_disp[idx]
        gain = np.r_[PART_GAIN, CHEST_GAIN] * scale
        # Exact phase of each path at each subcarrier; chunked by the caller to bound memory.
        ph = np.exp(-2j * np.pi * lens[:, :, None] * (self.freqs / C)[None, None, :])
        out[idx] += np.einsum("p,tps->ts", gain, ph)
        return out
