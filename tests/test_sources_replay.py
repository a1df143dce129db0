"""Replay of captures: same results as decoding the file, paced re-stamping, and re-sending."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from csi_edge.capture import read_capture
from csi_edge.codecs.pcap import write_pcap
from csi_edge.codecs.result import DecodeResult
from csi_edge.codecs.ruview import encode_edge_vitals, encode_raw_frame
from csi_edge.frames import FrameBatch
from csi_edge.ingest import Ingest
from csi_edge.sources.replay import ReplaySource, slice_result
from csi_edge.sources.udp import UdpSource


@pytest.fixture
def capture(tmp_path):
    """A pcap of 2 nodes on 2 addresses, 60 frames each at 20 Hz, plus vitals packets."""
    rng = np.random.default_rng(0)
    datagrams, times, sources = [], [], []
    t0 = 1_700_000_000.0
    for k in range(60):
        for node, ip in ((1, "192.168.1.20"), (2, "192.168.1.21")):
            pairs = 64 if k % 4 else 128
            datagrams.append(encode_raw_frame(node, 1000 + k, rng.integers(-100, 100, 2 * pairs)))
            times.append(t0 + k * 0.05 + node * 0.001)
            sources.append(ip)
        if k % 20 == 0:
            datagrams.append(encode_edge_vitals(1, presence=True))
            times.append(t0 + k * 0.05 + 0.002)
            sources.append("192.168.1.20")
    path = tmp_path / "two.pcap"
    write_pcap(path, datagrams, times, sources)
    return path


def _collect(src: ReplaySource) -> list[DecodeResult]:
    out: list[DecodeResult] = []

    async def main():
        await Ingest([src], consumers=[out.append]).run(duration=30)

    asyncio.run(main())
    return out


def test_fast_replay_equals_decoding_the_file(capture):
    ref = read_capture(capture)
    results = _collect(ReplaySource(capture, speed=None, max_batch=25))
    got = DecodeResult.concat(results)
    assert len(results) > 1  # sliced into live-sized pieces
    assert np.array_equal(got.frames.meta, ref.frames.meta)  # times kept as recorded
    assert np.array_equal(got.frames.iq, ref.frames.iq)
    assert got.frames.sources == ref.frames.sources
    assert got.packet_counts == ref.packet_counts == {"edge_vitals": 3}


def test_paced_replay_restamps_to_now_and_keeps_spacing(capture):
    ref = read_capture(capture)
    results = _collect(ReplaySource(capture, speed=20.0))  # 3 s of capture in ~0.15 s
    got = DecodeResult.concat(results)
    assert len(results) > 1  # emitted progressively, not in one piece
    assert np.array_equal(got.frames.iq, ref.frames.iq)
    t_ref, t_got = ref.frames.meta["t_rx"], got.frames.meta["t_rx"]
    assert t_got[0] > 1.7e9 + 1e7  # "now", not the capture's 2023 time
    np.testing.assert_allclose(np.diff(t_got), np.diff(t_ref) / 20.0, atol=1e-6)
    assert sum(len(r.packets) for r in results) == 3


def test_ingest_node_table_sees_replayed_nodes(capture):
    src = ReplaySource(capture, speed=None)

    async def main():
        ingest = Ingest([src])
        await ingest.run(duration=30)  # ends by itself at the end of the capture
        return ingest.summary()

    s = asyncio.run(main())
    assert set(s["nodes"]) == {"192.168.1.20#1", "192.168.1.21#2"}
    for node in s["nodes"].values():
        assert node["frames"] == 60 and node["lost"] == 0
        assert node["subcarriers"] == {"64": 45, "128": 15}
        assert node["rate_hz"] == pytest.approx(20.0, rel=0.01)


def test_resend_to_a_gateway_over_udp(capture):
    ref = read_capture(capture)
    received: list[FrameBatch] = []

    async def main():
        gateway = UdpSource("127.0.0.1", 0)
        ingest = Ingest([gateway], consumers=[lambda r: received.append(r.frames)])
        await ingest.start()
        gw = asyncio.create_task(ingest.run())
        replay = ReplaySource(capture, speed=None, resend=gateway.address)
        await Ingest([replay]).run(duration=30)
        for _ in range(100):
            if gateway.datagrams >= len(ref.frames):
                break
            await asyncio.sleep(0.02)
        ingest.stop()
        await gw
        return replay

    replay = asyncio.run(main())
    got = FrameBatch.concat(received)
    assert replay.sent == len(ref.frames) == len(got)
    order = np.lexsort((got.meta["seq"], got.meta["node_id"]))
    ref_order = np.lexsort((ref.frames.meta["seq"], ref.frames.meta["node_id"]))
    for a, b in zip(order[::7], ref_order[::7], strict=True):
        assert got.raw(int(a)).tobytes() == ref.frames.raw(int(b)).tobytes()
        assert got.meta["seq"][a] == ref.frames.meta["seq"][b]


def test_slice_result_keeps_every_frame_packet_and_skip(capture):
    ref = read_capture(capture)
    ref.skipped.skip("bad-magic", n=2)
    parts = list(slice_result(ref, 16))
    assert len(parts) == 8 and all(len(p.frames) <= 16 for p in parts)
    back = DecodeResult.concat(parts)
    assert np.array_equal(back.frames.meta, ref.frames.meta)
    assert np.array_equal(back.frames.iq, ref.frames.iq)
    assert back.packet_counts == ref.packet_counts and back.skipped == {"bad-magic": 2}
    for p in parts:  # packets travel with the frames received around them
        if p.packets:
            assert p.packets[0].t_rx <= p.frames.meta["t_rx"][-1]


def test_packets_without_a_receive_time_are_not_dropped(capture):
    """A pcapng simple packet block has no timestamp, so its packets have t_rx NaN; NaN compares
    false with every slice's end time, and such a packet (and those sorted after it) must still
    come out, sliced or paced."""
    ref = read_capture(capture)
    ref.packets[1].t_rx = float("nan")
    n = len(ref.packets)
    assert n >= 3
    assert sum(len(p.packets) for p in slice_result(ref, 16)) == n
    out: list[DecodeResult] = []
    src = ReplaySource(capture, speed=1000.0, restamp=False)
    asyncio.run(src._paced(ref, out.append, float(ref.frames.meta["t_rx"][0]), time.time()))
    assert len(out) > 1 and sum(len(p.packets) for p in out) == n


def test_bad_speed_is_refused(capture):
    with pytest.raises(ValueError, match="speed"):
        ReplaySource(capture, speed=0)
