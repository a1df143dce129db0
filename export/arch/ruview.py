"""RuView ``pose_v1``: the published layout, tensor for tensor
(``edge/models/MODEL_SPEC.md``, "RuView pose_v1").

Its published ONNX keeps most weights in a ``.data`` sidecar that was never released; this
module lets that project's users turn their safetensors checkpoint into one file that loads.
"""

from __future__ import annotations

import torch
from torch import nn


class _Enc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(56, 64, 3, dilation=1, padding=1)
        self.c2 = nn.Conv1d(64, 128, 3, dilation=2, padding=2)
        self.c3 = nn.Conv1d(128, 128, 3, dilation=4, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.c3(torch.relu(self.c2(torch.relu(self.c1(x))))))


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(128, 256)
        self.fc2 = nn.Linear(256, 34)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))


class RuViewPoseV1(nn.Module):
    """csi_window [B, 56, 20] -> keypoints [B, 34] (x0, y0, x1, y1, ...); 126,562 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = _Enc()
        self.head = _Head()

    def forward(self, csi_window: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(csi_window).mean(dim=-1))
