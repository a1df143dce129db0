"""Streaming temporal head in numpy: a ring-buffer KV cache per node, O(W) per frame.

The math is fixed in ``edge/models/MODEL_SPEC.md`` (GQA with ALiBi recency bias over the last W frame
embeddings, residual, keypoint head). :class:`StreamingHead` keeps, for each of ``capacity``
streams (nodes, later tracks), a key and a value cache ``[Hkv, W, dh]`` plus a frame counter.
A new frame's key/value are written once, at slot ``n % W``; the query attends over the valid
slots with the bias ``-slope_h * age`` where ``age = (slot - s) mod W``. Nothing in the window is
moved or copied, and every intermediate lives in a buffer allocated once per batch size.

:func:`full_forward` is the reference: the same head over a whole sequence at once (what the
``full`` export graph computes), used by the equivalence tests and the recompute benchmark.

Why hand-written: no light library does a GQA ring-buffer decode step on CPU in numpy, and the
gateway must not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

_GELU_C = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class TemporalConfig:
    """Shape of the temporal head (manifest field ``temporal``)."""

    heads_q: int = 4
    heads_kv: int = 1
    head_dim: int = 16
    window: int = 64
    embed_dim: int = 64

    def __post_init__(self) -> None:
        if self.heads_q % self.heads_kv:
            raise ValueError(
                f"heads_q ({self.heads_q}) must be a multiple of heads_kv ({self.heads_kv})"
            )

    @property
    def group(self) -> int:
        return self.heads_q // self.heads_kv

    @classmethod
    def from_dict(cls, d: Mapping[str, int]) -> TemporalConfig:
        return cls(
            **{k: int(d[k]) for k in ("heads_q", "heads_kv", "head_dim", "window", "embed_dim")}
        )


def alibi_slopes(heads_q: int) -> np.ndarray:
    """slope_h = 2 ** (-8 (h+1) / Hq) (MODEL_SPEC)."""
    return np.array([2.0 ** (-8.0 * (h + 1) / heads_q) for h in range(heads_q)], np.float32)


def gelu_tanh(x: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """GELU (tanh approximation), in place on ``x``; ``tmp`` is a scratch buffer like ``x``."""
    t = np.multiply(x, x, out=tmp)
    t *= x
    t *= 0.044715
    t += x
    t *= _GELU_C
    np.tanh(t, out=t)
    t += 1.0
    t *= 0.5
    x *= t
    return x


def gelu_tanh_x2(x: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """2 x GELU(x) (tanh approximation) into ``tmp`` (or a new array), ``x`` left unchanged.

    The factor 0.5 of GELU is folded into the next layer's weights (see ``_Linear``'s
    ``in_scale``): two numpy calls fewer per frame on the hot path.
    """
    t = np.multiply(x, x, out=tmp)
    t *= _GELU_C * 0.044715
    t += _GELU_C
    t *= x
    np.tanh(t, out=t)
    t += 1.0
    t *= x
    return t


def sigmoid(x: np.ndarray) -> np.ndarray:
    """In-place logistic, via tanh so large |x| neither overflows nor warns."""
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def random_weights(
    cfg: TemporalConfig,
    features: int = 104,
    hidden: int = 128,
    seed: int = 0,
    conv: tuple[int, int, int] = (64, 128, 128),
):
    """A randomly initialised state dict (torch names) for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    hq, hkv, dh, d = cfg.heads_q, cfg.heads_kv, cfg.head_dim, cfg.embed_dim

    def lin(name: str, n_out: int, *n_in: int) -> dict[str, np.ndarray]:
        bound = 1.0 / math.sqrt(math.prod(n_in))
        return {
            f"{name}.weight": rng.uniform(-bound, bound, (n_out, *n_in)).astype(np.float32),
            f"{name}.bias": rng.uniform(-bound, bound, n_out).astype(np.float32),
        }

    c1, c2, c3 = conv
    w: dict[str, np.ndarray] = {}
    w |= lin("enc.c1", c1, 2, 5) | lin("enc.c2", c2, c1, 5) | lin("enc.c3", c3, c2, 3)
    w |= lin("enc.fc", d, c3 * ((features // 2 + 1) // 2))
    w["enc.norm.weight"] = (1 + 0.1 * rng.standard_normal(d)).astype(np.float32)
    w["enc.norm.bias"] = (0.1 * rng.standard_normal(d)).astype(np.float32)
    w |= lin("attn.q", hq * dh, d) | lin("attn.k", hkv * dh, d) | lin("attn.v", hkv * dh, d)
    w |= lin("attn.o", d, hq * dh)
    w |= lin("head.fc1", hidden, d) | lin("head.fc2", 51, hidden)
    return w


class _Linear:
    """y = x W^T + b with W stored transposed and contiguous once, for ``np.matmul(out=)``."""

    def __init__(
        self, w: Mapping[str, np.ndarray], name: str, scale: float = 1.0, in_scale: float = 1.0
    ) -> None:
        try:
            weight = np.asarray(w[f"{name}.weight"], np.float32)
        except KeyError:
            raise KeyError(f"weights have no {name}.weight") from None
        bias = w.get(f"{name}.bias")
        self.wt = np.ascontiguousarray(weight.T * np.float32(scale * in_scale))
        self.b = (
            np.zeros(weight.shape[0], np.float32)
            if bias is None
            else np.asarray(bias, np.float32) * np.float32(scale)
        )
        self.n_in, self.n_out = self.wt.shape

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        y = np.matmul(x, self.wt, out=out)
        y += self.b
        return y


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1) -> np.ndarray:
    """PyTorch Conv1d (zero padding k // 2) on [N, C_in, L] by im2col + one matmul.

    Hand-written: scipy's correlate works on one channel pair at a time, and this reference
    only has to be exact, not fast (the runtime runs the exported encoder graph).
    """
    k = w.shape[-1]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, k, axis=2)[:, :, ::stride]  # [N,C,L',k]
    n, c, length, _ = cols.shape
    cols = cols.transpose(0, 2, 1, 3).reshape(n, length, c * k)
    y = cols @ w.reshape(w.shape[0], -1).T + b  # [N, L', C_out]
    return np.ascontiguousarray(y.transpose(0, 2, 1))


class Encoder:
    """Per-frame encoder in numpy (MODEL_SPEC): features [..., 2S] -> channels [2, S] -> three
    Conv1d + ReLU (the second with stride 2) -> flatten -> Linear -> LayerNorm -> [..., D].

    The reference the exported ``encoder`` graphs are tested against; the runtime itself runs
    the exported graph (onnxruntime / LiteRT), where INT8 pays."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        try:
            self.convs = [
                (
                    np.asarray(weights[f"enc.c{i}.weight"], np.float32),
                    np.asarray(weights[f"enc.c{i}.bias"], np.float32),
                    2 if i == 2 else 1,
                )
                for i in (1, 2, 3)
            ]
        except KeyError as e:
            raise KeyError(f"weights have no {e.args[0]} (the convolutional encoder)") from None
        self.fc = _Linear(weights, "enc.fc")
        self.gamma = np.asarray(weights["enc.norm.weight"], np.float32)
        self.beta = np.asarray(weights["enc.norm.bias"], np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        lead = x.shape[:-1]
        h = x.reshape(-1, 2, x.shape[-1] // 2)
        for w, b, stride in self.convs:
            h = np.maximum(conv1d(h, w, b, stride), 0.0)
        e = self.fc(np.ascontiguousarray(h.reshape(len(h), -1)))
        mu = e.mean(-1, keepdims=True)
        e -= mu
        var = (e * e).mean(-1, keepdims=True)
        e /= np.sqrt(var + np.float32(1e-5))
        e *= self.gamma
        e += self.beta
        return e.reshape(*lead, -1)


class _Buffers:
    """Every intermediate of one batched step, allocated once per batch size."""

    def __init__(self, b: int, cfg: TemporalConfig, hidden: int, n_out: int) -> None:
        hkv, g, dh, w, d = cfg.heads_kv, cfg.group, cfg.head_dim, cfg.window, cfg.embed_dim
        f = np.float32
        self.qkv = np.empty((b, (hkv * g + 2 * hkv) * dh), f)
        self.scores = np.empty((b, hkv, g, w), f)
        self.bias = np.empty((b, hkv, g, w), f)
        self.red = np.empty((b, hkv, g, 1), f)
        self.o = np.empty((b, hkv, g, dh), f)
        self.c = np.empty((b, d), f)
        self.h = np.empty((b, hidden), f)
        self.h2 = np.empty((b, hidden), f)
        self.out = np.empty((b, n_out), f)
        self.bias_idx = np.empty(b, np.intp)


class StreamingHead:
    """GQA temporal head + keypoint head over per-stream ring-buffer KV caches.

    ``step(embeddings, rows)`` advances streams ``rows`` (an int, a slice, or an index array;
    a slice or int touches the caches in place with no gather) by one frame each and returns
    ``(keypoints [b, 34], confidence [b, 17])``. The returned arrays are views into internal
    buffers, valid until the next call with the same batch size: copy them to keep them.
    """

    def __init__(
        self, weights: Mapping[str, np.ndarray], cfg: TemporalConfig, capacity: int = 1
    ) -> None:
        self.cfg = cfg
        hq, hkv, dh, w = cfg.heads_q, cfg.heads_kv, cfg.head_dim, cfg.window
        # 1/sqrt(dh) folded into the query projection: one multiply less per step.
        self.q = _Linear(weights, "attn.q", scale=1.0 / math.sqrt(dh))
        self.k = _Linear(weights, "attn.k")
        self.v = _Linear(weights, "attn.v")
        self.o = _Linear(weights, "attn.o")
        self.fc1 = _Linear(weights, "head.fc1")
        self.fc2 = _Linear(weights, "head.fc2", in_scale=0.5)  # takes 2 x GELU (gelu_tanh_x2)
        # q, k, v fused into one matmul for the step (q scaled by 1/sqrt(dh))
        self.qkv_wt = np.ascontiguousarray(np.concatenate([self.q.wt, self.k.wt, self.v.wt], 1))
        self.qkv_b = np.concatenate([self.q.b, self.k.b, self.v.b])
        checks = {
            "attn.q": (self.q.n_in, self.q.n_out, cfg.embed_dim, hq * dh),
            "attn.k": (self.k.n_in, self.k.n_out, cfg.embed_dim, hkv * dh),
            "attn.v": (self.v.n_in, self.v.n_out, cfg.embed_dim, hkv * dh),
            "attn.o": (self.o.n_in, self.o.n_out, hq * dh, cfg.embed_dim),
            "head.fc1": (self.fc1.n_in, self.fc1.n_out, cfg.embed_dim, self.fc1.n_out),
        }
        for name, (i, o, wi, wo) in checks.items():
            if (i, o) != (wi, wo):
                raise ValueError(
                    f"weights {name}.weight is [{o}, {i}], temporal config needs [{wo}, {wi}]"
                )
        self.n_kp = self.fc2.n_out // 3
        # bias table [2 * W, Hkv, G, W]: row (full * W + slot) = -slope_h * age(slot, s), with the
        # slots not yet written (s > slot while the buffer is filling) at -inf.
        slopes = alibi_slopes(hq).reshape(hkv, cfg.group, 1)
        s = np.arange(w)
        age = (s[:, None] - s[None, :]) % w  # [slot, s]
        full = -slopes[None] * age[:, None, None, :].astype(np.float32)  # [W, Hkv, G, W]
        part = np.where((s[None, :] <= s[:, None])[:, None, None, :], full, -np.inf)
        self.bias_table = np.ascontiguousarray(np.concatenate([part, full]).astype(np.float32))
        self._ones = np.ones((w, 1), np.float32)
        self._bufs: dict[int, _Buffers] = {}
        self.capacity = 0
        self.resize(capacity)

    # -- state -----------------------------------------------------------------------------
    def resize(self, capacity: int) -> None:
        """(Re)allocate caches for ``capacity`` streams, keeping existing ones."""
        c = self.cfg
        k = np.zeros((capacity, c.heads_kv, c.window, c.head_dim), np.float32)
        v = np.zeros_like(k)
        n = np.zeros(capacity, np.int64)
        keep = min(capacity, self.capacity)
        if keep:
            k[:keep], v[:keep], n[:keep] = (
                self.k_cache[:keep],
                self.v_cache[:keep],
                self.count[:keep],
            )
        self.k_cache, self.v_cache, self.count = k, v, n
        self.capacity = capacity

    def reset(self, row: int | slice | None = None) -> None:
        """Forget a stream's history (new person, node restart); all streams when ``row`` is None."""
        sel = slice(None) if row is None else row
        self.count[sel] = 0
        # the cache contents need no clearing: slots beyond the count are masked.

    def _buffers(self, b: int) -> _Buffers:
        buf = self._bufs.get(b)
        if buf is None:
            buf = self._bufs[b] = _Buffers(b, self.cfg, self.fc1.n_out, self.fc2.n_out)
        return buf

    # -- the step --------------------------------------------------------------------------
    def step(
        self, embeddings: np.ndarray, rows: int | slice | np.ndarray = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        e = np.asarray(embeddings, np.float32)
        if e.ndim == 1:
            e = e[None]
        b = e.shape[0]
        if isinstance(rows, (int, np.integer)):
            rows = slice(int(rows), int(rows) + 1)
        c = self.cfg
        hkv, g, dh = c.heads_kv, c.group, c.head_dim
        buf = self._buffers(b)
        # q, k, v for the whole batch in one matmul: this is where batching nodes pays
        qkv = np.matmul(e, self.qkv_wt, out=buf.qkv)
        qkv += self.qkv_b
        nq, nk = hkv * g * dh, hkv * dh
        q = qkv[:, :nq].reshape(b, hkv, g, dh)
        k = qkv[:, nq : nq + nk].reshape(b, hkv, dh)
        v = qkv[:, nq + nk :].reshape(b, hkv, dh)
        if isinstance(rows, slice):
            kc, vc, n = self.k_cache[rows], self.v_cache[rows], self.count[rows]  # views
            if kc.shape[0] != b:
                raise ValueError(f"{b} embeddings for {kc.shape[0]} streams")
            self._attend(q, k, v, kc, vc, n, buf.scores, buf.bias, buf.red, buf.o, buf.bias_idx)
        else:
            # arbitrary rows (nodes whose grid points fall in different pushes): gather their
            # windows (a few KB per stream), attend batched, write back the one new slot
            idx = np.asarray(rows, np.intp)
            if len(idx) != b:
                raise ValueError(f"{b} embeddings for {len(idx)} streams")
            kc, vc, n = self.k_cache[idx], self.v_cache[idx], self.count[idx]
            slot = n % c.window
            self._attend(q, k, v, kc, vc, n, buf.scores, buf.bias, buf.red, buf.o, buf.bias_idx)
            self.k_cache[idx, :, slot] = k
            self.v_cache[idx, :, slot] = v
            self.count[idx] = n
        self.o(buf.o.reshape(b, hkv * g * dh), out=buf.c)
        buf.c += e
        gelu_tanh_x2(self.fc1(buf.c, out=buf.h), tmp=buf.h2)
        self.fc2(buf.h2, out=buf.out)
        sigmoid(buf.out)
        return buf.out[:, : 2 * self.n_kp], buf.out[:, 2 * self.n_kp :]

    def _attend(self, q, k, v, kc, vc, n, scores, bias, red, o, bias_idx) -> None:
        """Write k/v at each stream's slot, attend q over the valid slots, advance the counts."""
        w = self.cfg.window
        b = q.shape[0]
        if b == 1:
            s0 = int(n[0] % w)
            kc[0, :, s0] = k[0]  # written once, when the frame arrives
            vc[0, :, s0] = v[0]
            tbl = self.bias_table[s0 + (w if n[0] >= w - 1 else 0)]  # a view, no copy
        else:
            slot = n % w  # tiny [b] arrays; the window itself is touched at one slot only
            ar = np.arange(b)
            kc[ar, :, slot] = k
            vc[ar, :, slot] = v
            np.add(slot, np.where(n >= w - 1, w, 0), out=bias_idx)
            tbl = np.take(self.bias_table, bias_idx, axis=0, out=bias)
        sc = np.matmul(q, kc.transpose(0, 1, 3, 2), out=scores)  # [b, Hkv, G, W]
        sc += tbl
        # ufunc.reduce and a matmul with ones: half the call overhead of np.max / np.sum
        np.maximum.reduce(sc, axis=-1, keepdims=True, out=red)
        sc -= red
        np.exp(sc, out=sc)
        np.matmul(sc, self._ones, out=red)
        sc /= red
        np.matmul(sc, vc, out=o)  # [b, Hkv, G, dh]
        n += 1

    # -- reference -------------------------------------------------------------------------
    def full_forward(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whole-sequence forward: embeddings [T, D] or [B, T, D] -> keypoints, confidence
        at every position t, attending causally over the last W frames (the reference)."""
        e = np.asarray(embeddings, np.float32)
        squeeze = e.ndim == 2
        if squeeze:
            e = e[None]
        c = self.cfg
        bsz, t, _ = e.shape
        hkv, g, dh = c.heads_kv, c.group, c.head_dim
        q = self.q(e).reshape(bsz, t, hkv, g, dh).transpose(0, 2, 3, 1, 4)  # [B,Hkv,G,T,dh]
        k = self.k(e).reshape(bsz, t, hkv, dh).transpose(0, 2, 1, 3)  # [B,Hkv,T,dh]
        v = self.v(e).reshape(bsz, t, hkv, dh).transpose(0, 2, 1, 3)
        scores = np.matmul(q, k[:, :, None].swapaxes(-1, -2))  # [B,Hkv,G,T,T]
        pos = np.arange(t)
        age = (pos[:, None] - pos[None, :]).astype(np.float32)
        allowed = (age >= 0) & (age < c.window)
        slopes = alibi_slopes(c.heads_q).reshape(hkv, g, 1, 1)
        scores = np.where(allowed, scores - slopes * age, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(-1, keepdims=True)
        o = np.matmul(p, v[:, :, None])  # [B,Hkv,G,T,dh]
        o = o.transpose(0, 3, 1, 2, 4).reshape(bsz, t, c.heads_q * dh)
        cvec = e + self.o(o)
        out = sigmoid(self.fc2(gelu_tanh_x2(self.fc1(cvec))))
        kp, conf = out[..., : 2 * self.n_kp], out[..., 2 * self.n_kp :]
        return (kp[0], conf[0]) if squeeze else (kp, conf)


def load_weights(path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` state dict (torch names) into float32 arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {k: np.asarray(z[k], np.float32) for k in z.files}
