"""Simulated nodes: content like an ESP32's buffer, schedule, loss, sequence wrap over real UDP."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from csi_edge.codecs.ruview import RuViewDecoder, encode_raw_frame
from csi_edge.layout import lltf_canonical
from csi_edge.sources.simnode import SimFleet, SimNode, SimNodeSpec, synthetic_csi, table_csi
from tests.conftest import running_gateway


def test_synthetic_content_has_esp32_layouts_and_null_bins():
    fn = synthetic_csi((64, 128, 192), seed=1)
    bufs = [fn(0.05 * k, k) for k in range(6)]
    assert [len(b) for b in bufs] == [128, 256, 384, 128, 256, 384]
    assert all(b.dtype == np.int8 for b in bufs)
    pairs = bufs[0].reshape(-1, 2)
    assert not pairs[[0, *range(27, 38)]].any()  # DC and guard bins: zero, as on a real S3
    assert np.abs(pairs[1:27]).max() > 10  # the used subcarriers carry signal
    res = RuViewDecoder().decode([encode_raw_frame(1, k, b) for k, b in enumerate(bufs)], 0.0, "n")
    lltf = lltf_canonical(res.frames)  # [6, 53] on subcarriers -26..26
    assert (lltf[:, 26] == 0).all()  # DC in the canonical grid
    assert (np.abs(lltf[:, [0, 1, 25, 27, 51, 52]]) > 0).all()


def test_content_is_imaginary_first():
    fn = synthetic_csi(64, seed=2)
    raw = fn(0.0, 0).reshape(-1, 2).astype(float)
    res = RuViewDecoder().decode([encode_raw_frame(1, 0, fn(0.0, 0))], 0.0, "n")
    csi = res.frames.csi(0)  # imag-first by default
    np.testing.assert_array_equal(csi.imag, raw[:, 0])
    np.testing.assert_array_equal(csi.real, raw[:, 1])


def test_spec_validation():
    with pytest.raises(ValueError, match="jitter"):
        SimNode(SimNodeSpec(jitter=1.5), ("127.0.0.1", 9))
    with pytest.raises(ValueError, match="rate_hz"):
        SimNode(SimNodeSpec(rate_hz=0), ("127.0.0.1", 9))


def test_sequence_wrap_and_loss_over_udp():
    async def main():
        specs = [
            SimNodeSpec(
                node_id=9, rate_hz=300, start_seq=2**32 - 40, max_frames=80, csi_fn=table_csi(64)
            ),
            SimNodeSpec(node_id=10, rate_hz=300, loss=0.3, max_frames=80, csi_fn=table_csi(64)),
        ]
        async with running_gateway() as ingest:
            fleet = SimFleet(specs, ingest.sources[0].address, keep_seqs=True, seed=4)
            await asyncio.wait_for(fleet.run(duration=20), 30)
        return ingest.summary(), fleet

    s, fleet = asyncio.run(main())
    wrap, lossy = s["nodes"]["127.0.0.1#9"], s["nodes"]["127.0.0.1#10"]
    assert fleet.nodes[0].stats.seqs[39:41] == [2**32 - 1, 0]  # the counter wrapped on the wire
    assert (wrap["frames"], wrap["lost"], wrap["reboots"], wrap["duplicates"]) == (80, 0, 0, 0)
    st = fleet.nodes[1].stats
    assert st.lost > 5 and lossy["frames"] == st.sent
    assert lossy["lost"] == st.seqs[-1] + 1 - st.sent
