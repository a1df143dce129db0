"""``csi-edge-pose``: per-frame encoder, GQA temporal head with ALiBi, keypoint head.

The math is fixed in ``edge/models/MODEL_SPEC.md`` and mirrored by the numpy streaming step in
``edge/temporal.py``; tests cross-check the two. Three graphs are exported from one set of
weights: ``encoder`` (per frame, the part worth INT8), ``temporal_step`` (one frame against a
ring-buffer KV cache, for streaming) and ``full`` (a whole window, the reference).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

NEG = (
    -1e9
)  # masked score: exp(NEG - max) is exactly 0 in fp32, and unlike -inf survives int8/TFLite


@dataclass(frozen=True)
class PoseConfig:
    features: int = 104  # 2 x 52: amplitude | phase of the 52 LLTF subcarriers
    conv1: int = 64  # encoder Conv1d widths over the subcarrier axis (MODEL_SPEC)
    conv2: int = 128
    conv3: int = 128
    hidden: int = 128  # keypoint head
    embed_dim: int = 64
    heads_q: int = 4
    heads_kv: int = 1
    head_dim: int = 16
    window: int = 64
    keypoints: int = 17

    def as_dict(self) -> dict:
        return asdict(self)


def alibi_slopes(heads_q: int) -> torch.Tensor:
    """slope_h = 2 ** (-8 (h+1) / Hq), the ALiBi recency penalty per query head."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads_q) for h in range(heads_q)])


class Encoder(nn.Module):
    """Per-frame CNN over the subcarrier axis: [.., 2S] -> [.., 2, S] (amplitude, phase
    channels) -> Conv1d k5 -> Conv1d k5 stride 2 -> Conv1d k3 (ReLU each) -> flatten ->
    Linear -> LayerNorm. Flattening (not pooling) keeps where on the band a feature sits."""

    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        if cfg.features % 2:
            raise ValueError("features must be 2 x subcarriers (amplitude | phase)")
        self.sub = cfg.features // 2
        self.c1 = nn.Conv1d(2, cfg.conv1, 5, padding=2)
        self.c2 = nn.Conv1d(cfg.conv1, cfg.conv2, 5, stride=2, padding=2)
        self.c3 = nn.Conv1d(cfg.conv2, cfg.conv3, 3, padding=1)
        self.fc = nn.Linear(cfg.conv3 * ((self.sub + 1) // 2), cfg.embed_dim)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        h = features.reshape(-1, 2, self.sub)
        h = F.relu(self.c3(F.relu(self.c2(F.relu(self.c1(h))))))
        e = self.fc(h.flatten(1))
        return self.norm(e.reshape(*lead, e.shape[-1]))


class Attention(nn.Module):
    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        if cfg.heads_q % cfg.heads_kv:
            raise ValueError("heads_q must be a multiple of heads_kv")
        self.cfg = cfg
        self.q = nn.Linear(cfg.embed_dim, cfg.heads_q * cfg.head_dim)
        self.k = nn.Linear(cfg.embed_dim, cfg.heads_kv * cfg.head_dim)
        self.v = nn.Linear(cfg.embed_dim, cfg.heads_kv * cfg.head_dim)
        self.o = nn.Linear(cfg.heads_q * cfg.head_dim, cfg.embed_dim)
        # grouped slopes [Hkv, G]: query head h = g_kv * G + j uses kv head h // G
        g = cfg.heads_q // cfg.heads_kv
        self.register_buffer(
            "slopes", alibi_slopes(cfg.heads_q).reshape(cfg.heads_kv, g), persistent=False
        )


class Head(nn.Module):
    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.keypoints * 3)
        self.n = cfg.keypoints

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.fc2(F.gelu(self.fc1(c), approximate="tanh"))
        return torch.sigmoid(out[..., : 2 * self.n]), torch.sigmoid(out[..., 2 * self.n :])


class CsiEdgePose(nn.Module):
    """The whole model; ``forward`` is the ``full`` graph: features [B, T, F] -> keypoints, conf."""

    def __init__(self, cfg: PoseConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or PoseConfig()
        self.enc = Encoder(cfg)
        self.attn = Attention(cfg)
        self.head = Head(cfg)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        b, t, _ = features.shape
        hkv, g, dh = cfg.heads_kv, cfg.heads_q // cfg.heads_kv, cfg.head_dim
        e = self.enc(features)  # [B, T, D]
        q = self.attn.q(e).reshape(b, t, hkv, g, dh).permute(0, 2, 3, 1, 4)  # [B,Hkv,G,T,dh]
        k = self.attn.k(e).reshape(b, t, hkv, dh).permute(0, 2, 1, 3)  # [B,Hkv,T,dh]
        v = self.attn.v(e).reshape(b, t, hkv, dh).permute(0, 2, 1, 3)
        scores = torch.matmul(q, k.unsqueeze(2).transpose(-1, -2)) / math.sqrt(dh)  # [B,Hkv,G,T,T]
        pos = torch.arange(t, device=features.device)
        age = (pos[:, None] - pos[None, :]).to(features.dtype)  # t - j
        allowed = (age >= 0) & (age < cfg.window)
        bias = -self.attn.slopes[:, :, None, None] * age  # [Hkv,G,T,T]
        scores = torch.where(allowed, scores + bias, torch.full_like(scores, NEG))
        o = torch.matmul(torch.softmax(scores, dim=-1), v.unsqueeze(2))  # [B,Hkv,G,T,dh]
        o = o.permute(0, 3, 1, 2, 4).reshape(b, t, cfg.heads_q * dh)
        return self.head(e + self.attn.o(o))


class PoseEncoderGraph(nn.Module):
    """``encoder`` graph: features [B, F] -> embedding [B, D]."""

    def __init__(self, model: CsiEdgePose) -> None:
        super().__init__()
        self.enc = model.enc

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.enc(features)


class PoseStepGraph(nn.Module):
    """``temporal_step`` graph: one frame against the ring-buffer KV cache (MODEL_SPEC)."""

    def __init__(self, model: CsiEdgePose) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.attn = model.attn
        self.head = model.head

    def forward(
        self,
        embedding: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        count: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        b = embedding.shape[0]
        w, hkv, g, dh = cfg.window, cfg.heads_kv, cfg.heads_q // cfg.heads_kv, cfg.head_dim
        slots = torch.arange(w, device=embedding.device)
        slot = torch.remainder(count, w)  # [B]
        # one-hot blend instead of a scatter: converts to TFLite and to int8 graphs unchanged
        onehot = (slots[None, :] == slot[:, None]).to(embedding.dtype)[:, None, :, None]
        k_t = self.attn.k(embedding).reshape(b, hkv, 1, dh)
        v_t = self.attn.v(embedding).reshape(b, hkv, 1, dh)
        k_out = k_cache * (1.0 - onehot) + k_t * onehot
        v_out = v_cache * (1.0 - onehot) + v_t * onehot
        q = self.attn.q(embedding).reshape(b, hkv, g, dh)
        scores = torch.matmul(q, k_out.transpose(-1, -2)) / math.sqrt(dh)  # [B,Hkv,G,W]
        age = torch.remainder(slot[:, None] - slots[None, :], w).to(embedding.dtype)  # [B,W]
        valid = slots[None, :] <= count[:, None]  # slots filled so far: min(count+1, W)
        bias = -self.attn.slopes[None, :, :, None] * age[:, None, None, :]
        scores = torch.where(valid[:, None, None, :], scores + bias, torch.full_like(scores, NEG))
        o = torch.matmul(torch.softmax(scores, dim=-1), v_out).reshape(b, cfg.heads_q * dh)
        kp, conf = self.head(embedding + self.attn.o(o))
        return kp, conf, k_out, v_out
