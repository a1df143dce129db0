"""Per-subcarrier normalization: fixed statistics (from a model manifest) or running ones.

:class:`RunningNorm` keeps per-node statistics with Welford's update and an optional forgetting
factor, so a node's slow drift (temperature, AGC, furniture moved) is followed without storing
history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FixedNorm:
    """Mean and standard deviation per feature, e.g. from ``manifest.input.norm``."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_dict(cls, d: dict) -> FixedNorm:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / np.maximum(self.std, 1e-6)).astype(np.float32)


class RunningNorm:
    """Running mean/variance per feature; ``halflife`` (in updates of one row) forgets old data."""

    def __init__(self, n_features: int, halflife: float | None = None) -> None:
        self.n = 0.0
        self.mean = np.zeros(n_features, np.float64)
        self._m2 = np.zeros(n_features, np.float64)
        self.decay = 1.0 if halflife is None else 0.5 ** (1.0 / halflife)

    @property
    def std(self) -> np.ndarray:
        var = self._m2 / self.n if self.n > 1 else np.ones_like(self._m2)
        return np.sqrt(np.maximum(var, 1e-12))

    def update(self, x: np.ndarray) -> None:
        """Fold rows of ``x`` [k, F] in (batched Chan/Welford merge, NaN rows ignored)."""
        x = np.atleast_2d(np.asarray(x, np.float64))
        x = x[np.isfinite(x).all(axis=1)]
        k = len(x)
        if k == 0:
            return
        if self.decay < 1.0:
            w = self.decay**k
            self.n *= w
            self._m2 *= w
        bm = x.mean(axis=0)
        bm2 = ((x - bm) ** 2).sum(axis=0)
        n = self.n + k
        delta = bm - self.mean
        self.mean = self.mean + delta * (k / n)
        self._m2 = self._m2 + bm2 + delta**2 * (self.n * k / n)
        self.n = n

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean.tolist(), "std": self.std.tolist()}
