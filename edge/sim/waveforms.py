"""Chest displacement: breathing plus a smaller heartbeat, non-sinusoidal, with drifting rates.

Everything is a closed-form function of time (rates drift as a sum of slow cosines, integrated
analytically), so a simulated node can ask for any instant in any order and a batch run and a
live run of the same seed agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DriftingRate:
    """f(t) = f0 * (1 + sum_k c_k cos(2 pi nu_k t + psi_k)); phase(t) = 2 pi * integral f."""

    f0_hz: float
    c: np.ndarray
    nu: np.ndarray
    psi: np.ndarray

    @classmethod
    def random(
        cls, bpm: float, drift: float, rng: np.random.Generator, slow_s: float = 60.0
    ) -> DriftingRate:
        """``drift``: relative peak deviation (0.03 = +-3 %); periods around ``slow_s``."""
        k = 3
        nu = 1.0 / (slow_s * rng.uniform(0.5, 2.0, k))
        c = drift * rng.dirichlet(np.ones(k))
        return cls(bpm / 60.0, c, nu, rng.uniform(0, 2 * np.pi, k))

    def freq(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)[..., None]
        return self.f0_hz * (1.0 + (self.c * np.cos(2 * np.pi * self.nu * t + self.psi)).sum(-1))

    def cycles(self, t: np.ndarray) -> np.ndarray:
        """Number of cycles elapsed at ``t`` (the integral of freq)."""
        tt = np.asarray(t, np.float64)[..., None]
        wob = (
            self.c
            / (2 * np.pi * self.nu)
            * (np.sin(2 * np.pi * self.nu * tt + self.psi) - np.sin(self.psi))
        )
        return self.f0_hz * (np.asarray(t, np.float64) + wob.sum(-1))


def breath_shape(u: np.ndarray, inhale: float = 0.4) -> np.ndarray:
    """One breath over cycle fraction u in [0,1): faster inhale, slower exhale, 0..1."""
    u = np.mod(u, 1.0)
    up = 0.5 * (1 - np.cos(np.pi * u / inhale))
    down = 0.5 * (1 + np.cos(np.pi * (u - inhale) / (1 - inhale)))
    return np.where(u < inhale, up, down)


def heart_shape(u: np.ndarray) -> np.ndarray:
    """One heartbeat: a systolic bump and a smaller dicrotic one (zero mean is not needed)."""
    u = np.mod(u, 1.0)
    return np.exp(-(((u - 0.2) / 0.1) ** 2)) + 0.4 * np.exp(-(((u - 0.55) / 0.12) ** 2))


@dataclass
class Physiology:
    """A person's breathing and heartbeat (rates in BPM, displacement amplitudes in metres)."""

    breathing: DriftingRate
    heart: DriftingRate
    breath_amp_m: float = 0.005
    heart_amp_m: float = 0.0005

    @classmethod
    def random(
        cls,
        breathing_bpm: float,
        heart_bpm: float,
        rng: np.random.Generator,
        drift: float = 0.03,
        breath_amp_m: float = 0.005,
        heart_amp_m: float = 0.0005,
    ) -> Physiology:
        return cls(
            DriftingRate.random(breathing_bpm, drift, rng, slow_s=90.0),
            DriftingRate.random(heart_bpm, drift, rng, slow_s=40.0),
            breath_amp_m,
            heart_amp_m,
        )

    def displacement(self, t: np.ndarray) -> np.ndarray:
        """Chest displacement (m) towards the antennas at times ``t``."""
        b = breath_shape(self.breathing.cycles(t))
        h = heart_shape(self.heart.cycles(t))
        return self.breath_amp_m * b + self.heart_amp_m * h

    def rates_bpm(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.breathing.freq(t) * 60.0, self.heart.freq(t) * 60.0
