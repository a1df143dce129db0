"""``csi-edge-vitals``: a dilated 1D CNN over 32 s of amplitude series (MODEL_SPEC)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VitalsConfig:
    channels: int = 8
    samples: int = 256
    sample_rate_hz: float = 8.0
    width: int = 32

    def as_dict(self) -> dict:
        return asdict(self)


class CsiEdgeVitals(nn.Module):
    """window [B, C, T] -> vitals [B, 3]: (breathing BPM - 20) / 10, presence logit, motion logit.

    The graph outputs the raw head; the runtime (``csi_edge.inference.runtime.VitalsRuntime``) maps
    column 0 to BPM as out * 10 + 20, so the scale lives in one place.
    """

    def __init__(self, cfg: VitalsConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or VitalsConfig()
        w = cfg.width
        self.c1 = nn.Conv1d(cfg.channels, w, 7, padding=3)
        self.c2 = nn.Conv1d(w, w, 7, dilation=2, padding=6)
        self.c3 = nn.Conv1d(w, w, 7, dilation=4, padding=12)
        self.fc1 = nn.Linear(w, w)
        self.fc2 = nn.Linear(w, 3)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c3(torch.relu(self.c2(torch.relu(self.c1(window))))))
        return self.fc2(torch.relu(self.fc1(x.mean(dim=-1))))
