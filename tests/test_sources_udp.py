"""UDP ingest over real loopback sockets: simulated nodes -> UdpSource -> Ingest -> NodeTable."""

from __future__ import annotations

import asyncio
import socket

import numpy as np

from csi_edge.codecs.ruview import encode_raw_frame
from csi_edge.frames import FrameBatch
from csi_edge.sources.simnode import SimFleet, SimNodeSpec, table_csi
from tests.conftest import running_gateway


def _loopback2_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


async def _run_fleet(specs, *, settle=0.3, **udp_kw):
    batches: list[FrameBatch] = []
    consumers = [lambda r: batches.append(r.frames)]
    async with running_gateway(consumers=consumers, settle=settle, **udp_kw) as ingest:
        src = ingest.sources[0]
        fleet = SimFleet(specs, src.address, keep_seqs=True)
        await asyncio.wait_for(fleet.run(duration=20), 30)
    return ingest, fleet, FrameBatch.concat(batches), src


def test_every_frame_from_several_nodes_arrives_attributed_to_its_node():
    contents = [table_csi(n, 16, seed=i) for i, n in enumerate((64, 128, 192, 64))]
    specs = [
        SimNodeSpec(node_id=1, rate_hz=200, max_frames=120, csi_fn=contents[0]),
        SimNodeSpec(node_id=2, rate_hz=150, max_frames=90, csi_fn=contents[1], loss=0.1),
        SimNodeSpec(node_id=3, rate_hz=100, max_frames=60, csi_fn=contents[2]),
    ]
    if _loopback2_ok():  # the default node id 1 again, from another address: a separate node
        specs.append(
            SimNodeSpec(
                node_id=1, rate_hz=200, max_frames=100, csi_fn=contents[3], bind_host="127.0.0.2"
            )
        )
    ingest, fleet, frames, src = asyncio.run(_run_fleet(specs))
    summary = ingest.summary()
    stats = [n.stats for n in fleet.nodes]
    assert src.rcvbuf >= 1 << 20  # enlarged (the kernel default is ~200 KiB)
    assert summary["skipped"] == {}
    assert ingest.frames == sum(s.sent for s in stats) == len(frames)
    keys = frames.node_keys()
    for spec, st, content in zip(specs, stats, contents[: len(specs)], strict=True):
        key = f"{spec.bind_host or '127.0.0.1'}#{spec.node_id}"
        mine = np.flatnonzero(keys == key)
        assert frames.meta["seq"][mine].tolist() == st.seqs  # all of them, in order
        for i in mine[:: max(1, len(mine) // 10)]:
            seq = int(frames.meta["seq"][i])
            assert np.array_equal(frames.raw(i), content(0.0, seq))
        node = summary["nodes"][key]
        assert node["frames"] == st.sent
        last = st.seqs[-1]
        assert node["lost"] == last + 1 - st.sent  # losses before the last frame received
        assert node["duplicates"] == 0 and node["reboots"] == 0 and node["reordered"] == 0
        assert node["subcarriers"] == {str(len(content(0.0, 0)) // 2): st.sent}
        # 60-120 frames sent within 0.6 s: too short a span for a rate that means anything
        assert node["rate_hz"] is None
    assert len(summary["nodes"]) == len(specs)


def test_reboot_is_seen_and_the_new_source_port_keeps_the_node():
    specs = [
        SimNodeSpec(
            node_id=7, rate_hz=100, reboot_every_s=0.3, reboot_downtime_s=0.4, max_frames=80
        )
    ]
    ingest, fleet, frames, _ = asyncio.run(_run_fleet(specs))
    (node,) = ingest.summary()["nodes"].values()
    st = fleet.nodes[0].stats
    assert st.reboots >= 1
    assert node["reboots"] == st.reboots
    assert node["frames"] == st.sent
    assert node["duplicates"] == 0 and node["lost"] == 0


def test_largest_frame_is_not_truncated_and_bad_datagrams_are_counted():
    async def main():
        async with running_gateway(settle=0) as ingest:
            src = ingest.sources[0]
            big = encode_raw_frame(3, 0, np.arange(2048).astype(np.int8))  # 1024 pairs: 2068 B
            assert len(big) == 2068
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                for d in (big, b"\x00" * 30, big[:100], encode_raw_frame(3, 1, bytes(128))):
                    tx.sendto(d, src.address)
            for _ in range(100):
                await asyncio.sleep(0.02)
                if src.datagrams >= 4:
                    break
        return ingest

    ingest = asyncio.run(main())
    s = ingest.summary()
    assert s["frames"] == 2
    assert s["nodes"]["127.0.0.1#3"]["subcarriers"] == {"64": 1, "1024": 1}
    assert s["skipped"] == {"bad-magic": 1, "truncated": 1}


def test_a_failing_raw_sink_costs_the_recording_not_the_frames():
    """A recorder that raises (disk full) must not stop the gateway decoding those datagrams;
    what went unrecorded is counted."""

    def broken_sink(datagrams, times, addrs):
        raise OSError(28, "No space left on device")

    specs = [SimNodeSpec(node_id=4, rate_hz=200, max_frames=50, csi_fn=table_csi(64, 8))]
    ingest, fleet, frames, _ = asyncio.run(_run_fleet(specs, raw_sink=broken_sink))
    assert len(frames) == fleet.nodes[0].stats.sent == 50
    assert ingest.summary()["skipped"] == {"not-recorded": 50}
