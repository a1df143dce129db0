"""The Ingest service: several sources on one loop, consumer fan-out, failures contained."""

from __future__ import annotations

import asyncio
import logging
import socket

import numpy as np
import pytest

from csi_edge.codecs.ruview import encode_raw_frame
from csi_edge.ingest import Ingest
from csi_edge.sources.udp import UdpSource


async def _send_and_wait(srcs, frames_per_src: int, ingest: Ingest) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i, src in enumerate(srcs):
            for k in range(frames_per_src):
                tx.sendto(encode_raw_frame(i + 1, k, np.zeros(128, np.int8)), src.address)
    for _ in range(200):
        if ingest.frames >= frames_per_src * len(srcs):
            return
        await asyncio.sleep(0.01)


def test_two_udp_ports_one_loop_and_a_failing_consumer_does_not_stop_ingest(caplog):
    caplog.set_level(logging.ERROR, logger="csi_edge.ingest")
    seen: list[int] = []

    def broken(result):
        raise RuntimeError("sink is down")

    async def main():
        a, b = UdpSource("127.0.0.1", 0), UdpSource("127.0.0.1", 0)
        ingest = Ingest([a, b], consumers=[broken, lambda r: seen.append(len(r.frames))])
        await ingest.start()
        task = asyncio.create_task(ingest.run())
        await _send_and_wait([a, b], 25, ingest)
        ingest.stop()
        await task
        return ingest

    ingest = asyncio.run(main())
    s = ingest.summary()
    assert s["frames"] == sum(seen) == 50  # the second consumer got everything
    assert set(s["nodes"]) == {"127.0.0.1#1", "127.0.0.1#2"}
    assert sum(s["consumer_errors"].values()) == ingest.results
    assert len(s["sources"]) == 2 and all(v["datagrams"] == 25 for v in s["sources"].values())
    logged = [r for r in caplog.records if r.name == "csi_edge.ingest"]
    assert len(logged) == 1 and "sink is down" in caplog.text  # logged once, then counted


def test_a_crashing_source_is_reported_and_the_others_closed():
    class Exploding:
        name = "exploding"

        async def run(self, emit):
            await asyncio.sleep(0.05)
            raise OSError("device gone for good")

        def close(self):
            pass

    udp = UdpSource("127.0.0.1", 0)

    async def main():
        await Ingest([udp, Exploding()]).run(duration=10)

    with pytest.raises(OSError, match="gone for good"):
        asyncio.run(main())
    assert udp.sock is not None and udp.sock.fileno() == -1  # closed on the way out


def test_duration_ends_the_run_and_the_port_is_released():
    async def main():
        src = UdpSource("127.0.0.1", 0)
        await Ingest([src]).run(duration=0.2)
        return src.address[1]

    port = asyncio.run(main())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))  # free again
