"""Streaming ring-buffer temporal head == full-window forward (MODEL_SPEC), MHA and GQA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.temporal import Encoder, StreamingHead, TemporalConfig, random_weights

CONFIGS = {
    "gqa-4q-1kv": TemporalConfig(heads_q=4, heads_kv=1, head_dim=16, window=8, embed_dim=64),
    "mha-4q-4kv": TemporalConfig(heads_q=4, heads_kv=4, head_dim=8, window=5, embed_dim=32),
    "gqa-8q-2kv": TemporalConfig(heads_q=8, heads_kv=2, head_dim=16, window=16, embed_dim=64),
    "window-1": TemporalConfig(heads_q=2, heads_kv=1, head_dim=8, window=1, embed_dim=16),
}


def _stream(cfg: TemporalConfig, steps: int, n_streams: int = 3, seed: int = 1):
    head = StreamingHead(random_weights(cfg, seed=seed), cfg, capacity=n_streams)
    e = np.random.default_rng(seed).standard_normal((n_streams, steps, cfg.embed_dim))
    return head, e.astype(np.float32)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_step_equals_full_window_forward(name: str) -> None:
    cfg = CONFIGS[name]
    steps = 6 * cfg.window + 3  # before the buffer is full, then wrapped five times
    head, e = _stream(cfg, steps)
    kp_ref, conf_ref = head.full_forward(e)
    for t in range(steps):
        kp, conf = head.step(e[:, t], slice(0, 3))
        assert np.abs(kp - kp_ref[:, t]).max() <= 1e-5, (name, t)
        assert np.abs(conf - conf_ref[:, t]).max() <= 1e-5, (name, t)
    assert head.count.tolist() == [steps] * 3


def test_full_forward_is_a_causal_window() -> None:
    """The reference itself: position t only sees frames t-W+1..t (changing others is inert)."""
    cfg = CONFIGS["gqa-4q-1kv"]
    head, e = _stream(cfg, 30, n_streams=1)
    kp, _ = head.full_forward(e[0])
    e2 = e[0].copy()
    e2[20 - cfg.window] += 5.0  # just outside position 20's window
    e2[25:] -= 3.0  # the future
    kp2, _ = head.full_forward(e2)
    assert np.array_equal(kp[20], kp2[20])
    assert not np.allclose(kp[20 - cfg.window + 1], kp2[20 - cfg.window + 1])


def test_index_rows_and_single_rows_match_the_batched_path() -> None:
    cfg = CONFIGS["gqa-8q-2kv"]
    head_a, e = _stream(cfg, 40, n_streams=3)
    head_b = StreamingHead(random_weights(cfg, seed=1), cfg, capacity=3)
    for t in range(40):
        kp_a, _ = head_a.step(e[:, t], slice(0, 3))
        kp_a = kp_a.copy()
        # out of order rows (the per-stream path) and one-at-a-time rows
        kp_b, _ = head_b.step(e[[2, 0], t], np.array([2, 0]))
        kp_b = kp_b.copy()
        kp_c, _ = head_b.step(e[1, t], 1)
        assert np.abs(kp_a[[2, 0]] - kp_b).max() <= 1e-6
        assert np.abs(kp_a[1] - kp_c[0]).max() <= 1e-6


def test_keys_values_written_once_at_slot_n_mod_w() -> None:
    cfg = CONFIGS["mha-4q-4kv"]
    head, e = _stream(cfg, 12, n_streams=1)
    for t in range(12):
        before_k = head.k_cache.copy()
        head.step(e[0, t], 0)
        slot = t % cfg.window
        changed = np.flatnonzero((head.k_cache != before_k).any(axis=(0, 1, 3)))
        assert changed.tolist() == [slot]
        k_t = e[0, t] @ head.k.wt + head.k.b
        assert np.allclose(head.k_cache[0, :, slot].reshape(-1), k_t, atol=1e-6)


def test_reset_restarts_the_context() -> None:
    cfg = CONFIGS["gqa-4q-1kv"]
    head, e = _stream(cfg, 20, n_streams=1)
    for t in range(20):
        head.step(e[0, t], 0)
    head.reset(0)
    fresh, _ = _stream(cfg, 20, n_streams=1)
    kp, _ = head.step(e[0, 5], 0)
    kp_fresh, _ = fresh.step(e[0, 5], 0)
    assert np.abs(kp - kp_fresh).max() <= 1e-6


_HOT_PATH_PEAK = """
import tracemalloc
import numpy as np
from csi_edge.temporal import StreamingHead, TemporalConfig, random_weights
cfg = TemporalConfig(heads_q=4, heads_kv=2, head_dim=32, window=256, embed_dim=64)
head = StreamingHead(random_weights(cfg), cfg, capacity=4)
e = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
for _ in range(3):  # warm-up: buffers for batch 4 and batch 1 are allocated here
    head.step(e, slice(0, 4))
    head.step(e[:1], 2)
tracemalloc.start()
for _ in range(20):
    head.step(e, slice(0, 4))
    head.step(e[:1], 2)
print(tracemalloc.get_traced_memory()[1], cfg.heads_kv * cfg.window * cfg.head_dim * 4)
"""


def test_hot_path_allocates_far_less_than_one_window() -> None:
    # In a fresh interpreter: tracemalloc counts every thread's allocations, and a thread left
    # by an earlier test (a broker client, a worker) would be counted as the head's.
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _HOT_PATH_PEAK], capture_output=True, text=True, check=True
    ).stdout.split()
    peak, window_bytes = int(out[0]), int(out[1])
    assert peak < window_bytes // 2, peak


def test_bad_weight_shapes_are_named() -> None:
    cfg = CONFIGS["gqa-4q-1kv"]
    w = random_weights(TemporalConfig(4, 2, 16, 8, 64))
    with pytest.raises(ValueError, match=r"attn\.k\.weight is \[32, 64\].*\[16, 64\]"):
        StreamingHead(w, cfg)


def test_numpy_encoder_layer_norm() -> None:
    cfg = CONFIGS["gqa-4q-1kv"]
    w = random_weights(cfg)
    w["enc.norm.weight"][:] = 1.0
    w["enc.norm.bias"][:] = 0.0
    e = Encoder(w)(np.random.default_rng(0).standard_normal((5, 104)))
    # std is sqrt(var / (var + eps)) with eps 1e-5: the pre-norm variance is small here
    assert np.allclose(e.mean(-1), 0, atol=1e-5) and np.allclose(e.std(-1), 1, atol=1e-2)
    assert e.shape == (5, 64)


@settings(max_examples=25, deadline=None)
@given(
    kv=st.integers(1, 3),
    group=st.integers(1, 3),
    dh=st.sampled_from([4, 8]),
    window=st.integers(1, 12),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_equivalence_random_configs(kv, group, dh, window, steps, seed) -> None:
    cfg = TemporalConfig(kv * group, kv, dh, window, 16)
    head, e = _stream(cfg, steps, n_streams=2, seed=seed)
    kp_ref, conf_ref = head.full_forward(e)
    for t in range(steps):
        kp, conf = head.step(e[:, t], slice(0, 2))
        assert np.abs(kp - kp_ref[:, t]).max() <= 1e-5
        assert np.abs(conf - conf_ref[:, t]).max() <= 1e-5
