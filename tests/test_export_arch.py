"""csi-edge-pose in torch: streaming step == full forward; torch == the gateway's numpy head."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

from csi_edge.export.arch import ARCHS, get_arch  # noqa: E402


def _pose(window: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    model = get_arch("csi-edge-pose").build({"window": window, "heads_q": 4, "heads_kv": 2})
    with torch.no_grad():  # LayerNorm starts at identity: perturb it so its weights matter
        model.enc.norm.weight.add_(0.1 * torch.randn_like(model.enc.norm.weight))
        model.enc.norm.bias.add_(0.1 * torch.randn_like(model.enc.norm.bias))
    return model.eval()


def test_registry_names_and_ruview_parameter_count():
    assert set(ARCHS) == {"csi-edge-pose", "csi-edge-vitals", "ruview-pose-v1"}
    model = get_arch("ruview-pose-v1").build({})
    assert sum(p.numel() for p in model.parameters()) == 126_562  # models-and-vitals.md §2
    with pytest.raises(KeyError, match="known: csi-edge-pose"):
        get_arch("nope")


def test_step_graph_equals_full_forward_at_every_position_across_wraps():
    model = _pose(window=6)
    arch = get_arch("csi-edge-pose")
    enc = arch.graph("encoder").wrap(model)
    step = arch.graph("temporal_step").wrap(model)
    cfg = model.cfg
    x = torch.randn(3, 4 * cfg.window + 1, cfg.features)  # wraps the ring buffer 4 times
    with torch.no_grad():
        kp_full, conf_full = model(x)
        k = torch.zeros(3, cfg.heads_kv, cfg.window, cfg.head_dim)
        v = torch.zeros_like(k)
        for t in range(x.shape[1]):
            # streams at different positions in one batch: row i has seen t frames too
            kp, conf, k, v = step(enc(x[:, t]), k, v, torch.full((3,), t, dtype=torch.int64))
            assert (kp - kp_full[:, t]).abs().max() <= 1e-5, t
            assert (conf - conf_full[:, t]).abs().max() <= 1e-5, t


def test_torch_full_forward_matches_gateway_numpy_head():
    from csi_edge.temporal import Encoder, StreamingHead, TemporalConfig

    model = _pose(window=5, seed=1)
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    c = model.cfg
    tcfg = TemporalConfig(c.heads_q, c.heads_kv, c.head_dim, c.window, c.embed_dim)
    head = StreamingHead(weights, tcfg, capacity=1)
    x = np.random.default_rng(0).standard_normal((1, 13, c.features)).astype(np.float32)
    with torch.no_grad():
        kp_ref, conf_ref = (o.numpy()[0] for o in model(torch.from_numpy(x)))
    emb = Encoder(weights)(x[0])
    for t in range(x.shape[1]):
        kp, conf = head.step(emb[t : t + 1], 0)
        np.testing.assert_allclose(kp[0], kp_ref[t], atol=1e-5)
        np.testing.assert_allclose(conf[0], conf_ref[t], atol=1e-5)


def test_vitals_output_is_raw_head():
    model = get_arch("csi-edge-vitals").build({}).eval()
    with torch.no_grad():
        y = model(torch.zeros(2, 8, 256))
    assert y.shape == (2, 3)
