"""Nobody on the network corrupts the gateway's picture: forged sequences, phantom-node floods,
the sender allowlist, known nodes only, forgetting, burst rates and a log that stays quiet --
each over real UDP sockets on loopback into the real UdpSource + Ingest."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.codecs.ruview import encode_raw_frame
from csi_edge.ingest import Ingest
from csi_edge.loglimit import LogLimiter
from csi_edge.sources.udp import UdpSource

CSI = bytes(128)  # 64 pairs


def _frame(node_id: int, seq: int) -> bytes:
    return encode_raw_frame(node_id, seq % 2**32, CSI)


async def _send(dest, datagrams, *, bind: str = "127.0.0.1", pace_every: int = 50) -> None:
    """Send in order from one socket, yielding now and then so the receiver keeps up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind((bind, 0))
        for i, d in enumerate(datagrams):
            tx.sendto(d, dest)
            if i % pace_every == pace_every - 1:
                await asyncio.sleep(0.005)


async def _until(pred, timeout: float = 10.0) -> None:
    """Wait for the receiver to catch up (a deadline, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred() and loop.time() < end:
        await asyncio.sleep(0.02)


def _run(datagrams_by_sender, *, udp_kw=None, **ingest_kw) -> Ingest:
    """Start a real UdpSource + Ingest, send ``[(bind address, [datagrams])...]`` in order,
    wait until every datagram was received, stop; return the ingest."""

    async def main():
        src = UdpSource("127.0.0.1", 0, **(udp_kw or {}))
        ingest = Ingest([src], **ingest_kw)
        await ingest.start()
        task = asyncio.create_task(ingest.run())
        total = 0
        for bind, dgs in datagrams_by_sender:
            await _send(src.address, dgs, bind=bind)
            total += len(dgs)
        await _until(lambda: src.datagrams + src._data.__len__() >= total)
        ingest.stop()
        await task
        return ingest

    return asyncio.run(main())


def _loopback2_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def test_a_forged_frame_far_ahead_is_an_outlier_not_a_billion_lost_frames():
    """The finding: one forged frame with a real node's address and id and a sequence 2^30
    ahead set lost = 1,073,741,824 and reboots = 1 for the life of the process."""
    real = [_frame(5, s) for s in range(100)]
    forged = [_frame(5, 99 + 2**30)]
    after = [_frame(5, s) for s in range(100, 200)]
    ingest = _run([("127.0.0.1", real + forged + after)])
    node = ingest.summary()["nodes"]["127.0.0.1#5"]
    assert node["frames"] == 201
    assert (node["lost"], node["reboots"], node["seq_outliers"]) == (0, 0, 1)


def test_a_node_restarting_with_a_far_sequence_is_a_reboot_not_lost_frames():
    frames = [_frame(6, s) for s in range(50)] + [_frame(6, 7_000_000 + s) for s in range(50)]
    node = _run([("127.0.0.1", frames)]).summary()["nodes"]["127.0.0.1#6"]
    assert (node["frames"], node["lost"], node["reboots"], node["seq_outliers"]) == (100, 0, 1, 0)


def test_a_flood_of_random_node_ids_is_capped_per_minute_and_logged_once(caplog):
    """The finding: 256 valid-looking frames with random node ids from one address made 256
    nodes (and 1,285 retained Home Assistant topics)."""
    caplog.set_level(logging.WARNING)
    ids = random.Random(1).sample(range(256), 256)  # node ids are one byte
    flood = [_frame(i, 0) for i in ids]
    ingest = _run([("127.0.0.1", flood)], max_new_nodes_per_min=32)
    s = ingest.summary()
    assert len(s["nodes"]) == 32
    assert s["skipped"]["new-node-rate"] == 256 - 32
    assert ingest.frames == 32  # refused frames reach neither the node table nor consumers
    assert sum(s["unknown_senders"].values()) == 256 - 32
    lines = [r for r in caplog.records if "unknown sender" in r.getMessage()]
    assert len(lines) == 1


def test_the_total_node_cap_holds():
    frames = [_frame(i, s) for s in range(3) for i in range(1, 11)]
    ingest = _run([("127.0.0.1", frames)], max_nodes=4)
    s = ingest.summary()
    assert sorted(s["nodes"]) == [f"127.0.0.1#{i}" for i in range(1, 5)]
    assert s["skipped"]["node-cap"] == 6 * 3
    assert all(n["frames"] == 3 for n in s["nodes"].values())


@pytest.mark.skipif(not _loopback2_ok(), reason="needs 127.0.0.2 on loopback")
def test_the_allowlist_refuses_other_senders_before_decoding(caplog):
    caplog.set_level(logging.WARNING)
    good = [_frame(1, s) for s in range(40)]
    bad = [_frame(1, s) for s in range(40)] + [b"garbage" * 3] * 10
    ingest = _run([("127.0.0.2", good), ("127.0.0.1", bad)], udp_kw={"allow": ["127.0.0.2/32"]})
    s = ingest.summary()
    assert list(s["nodes"]) == ["127.0.0.2#1"] and s["nodes"]["127.0.0.2#1"]["frames"] == 40
    assert s["skipped"] == {"sender-not-allowed": 50}  # the garbage was never decoded
    assert s["unknown_senders"] == {"127.0.0.1": 50}
    assert sum("unknown sender 127.0.0.1" in r.getMessage() for r in caplog.records) == 1


class _Inventory:
    """A test double for csi_edge.inventory.Inventory (being built in parallel): the same two
    members admission uses."""

    configured = True

    def __init__(self, known: set[tuple[str, int]]) -> None:
        self.known = known

    def match(self, address: str, node_id: int):
        return (address, node_id) if (address, node_id) in self.known else None


def test_with_an_inventory_only_known_nodes_become_nodes():
    frames = [_frame(i, s) for s in range(5) for i in (1, 2, 3)]
    ingest = _run([("127.0.0.1", frames)], inventory=_Inventory({("127.0.0.1", 2)}))
    s = ingest.summary()
    assert list(s["nodes"]) == ["127.0.0.1#2"]
    assert s["skipped"]["unknown-node"] == 10
    assert s["unknown_senders"] == {"127.0.0.1#1": 5, "127.0.0.1#3": 5}


def test_silent_nodes_are_forgotten_and_the_hook_hears_of_it():
    async def main():
        src = UdpSource("127.0.0.1", 0)
        ingest = Ingest([src], forget_after_s=0.3, monitor_s=0.05)
        ingest.nodes.offline_after_s = 0.1
        heard: list[list[str]] = []
        ingest.on_forget.append(heard.append)
        await ingest.start()
        task = asyncio.create_task(ingest.run())
        await _send(src.address, [_frame(9, s) for s in range(10)])
        await _until(lambda: "127.0.0.1#9" in ingest.nodes)
        assert "127.0.0.1#9" in ingest.nodes
        await _until(lambda: bool(heard))
        ingest.stop()
        await task
        return ingest, heard

    ingest, heard = asyncio.run(main())
    assert heard == [["127.0.0.1#9"]]
    s = ingest.summary()
    assert s["nodes"] == {} and s["forgotten_nodes"] == 1


def test_a_burst_of_datagrams_has_no_rate_yet():
    """The finding: rate_hz was the burst rate (482,034 Hz seen) when datagrams came in bursts."""

    async def main():
        src = UdpSource("127.0.0.1", 0)
        ingest = Ingest([src])
        await ingest.start()
        task = asyncio.create_task(ingest.run())
        await _send(src.address, [_frame(4, s) for s in range(300)], pace_every=10**6)
        await _until(lambda: ingest.frames >= 300)
        ingest.stop()
        await task
        return ingest

    node = asyncio.run(main()).summary()["nodes"]["127.0.0.1#4"]
    assert node["frames"] == 300 and node["rate_hz"] is None


def test_garbage_floods_log_one_line_per_reason_not_one_per_batch(caplog):
    """The finding: the limit restarted with every batch ("skipped bad-magic (1 so far)"
    printed 96 times). 3,000 bad datagrams in ~60 batches: one line."""
    caplog.set_level(logging.WARNING)
    junk = [b"\x01\x02\x03\x04" + bytes(40)] * 3000
    ingest = _run([("127.0.0.1", junk)])
    assert ingest.summary()["skipped"] == {"bad-magic": 3000}
    assert ingest.results > 10  # many batches, so a per-batch limit would have shown
    lines = [r for r in caplog.records if "bad-magic" in r.getMessage()]
    assert len(lines) == 1


def test_the_limiter_lets_one_line_through_per_interval_with_what_it_suppressed(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    lim = LogLimiter(interval_s=10.0, clock=lambda: now[0])
    log = logging.getLogger("test.limiter")
    wrote = [lim.log(log, logging.INFO, "r", "event %d", i) for i in range(500)]
    now[0] = 9.9
    wrote.append(lim.log(log, logging.INFO, "r", "event late"))
    now[0] = 10.0
    wrote.append(lim.log(log, logging.INFO, "r", "event again", n=3))
    wrote.append(lim.log(log, logging.INFO, "other", "another reason"))
    assert sum(wrote) == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [
        "event 0",
        "event again [504 in total, 500 not logged since the last line]",
        "another reason",
    ]


class _RecordingSink:
    """A sink that keeps what it is given (the gateway's sink interface, plus ``forget``)."""

    def __init__(self) -> None:
        self.published: list[list] = []
        self.forgotten: list[str] = []

    def publish(self, reports) -> None:
        self.published.append([r.node for r in reports])

    def forget(self, keys) -> None:
        self.forgotten.extend(keys)

    def close(self) -> None:
        pass


def test_the_gateway_tells_sinks_about_forgotten_nodes_and_stops_reporting_them():
    from csi_edge.config import GatewayConfig
    from csi_edge.gateway import Gateway

    cfg = GatewayConfig()
    cfg.models.pose = cfg.models.vitals = ""
    cfg.report_interval_s = 0.1
    cfg.ingest.offline_after_s, cfg.ingest.forget_after_s = 0.1, 0.4
    sink = _RecordingSink()

    async def main():
        src = UdpSource("127.0.0.1", 0)
        gw = Gateway(cfg, [src], [sink])
        gw.ingest.monitor_s = 0.05
        await gw.ingest.start()
        task = asyncio.create_task(gw.run())
        await _send(src.address, [_frame(3, s) for s in range(20)])
        await _until(lambda: any("127.0.0.1#3" in p for p in sink.published))
        await _until(lambda: bool(sink.forgotten))
        n = len(sink.published)
        await _until(lambda: len(sink.published) > n + 1)
        gw.stop()
        await task
        return gw, n

    gw, n = asyncio.run(main())
    assert sink.forgotten == ["127.0.0.1#3"]
    assert all(p == [] for p in sink.published[n:])  # reported no more
    assert gw.summary()["forgotten"] == ["127.0.0.1#3"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=4), st.text(max_size=60))
def test_allowlist_parsing_and_matching_never_crash(entries, address):
    """Any allow entry is a network or a ConfigError naming it; any source string is matched
    or refused, never an exception."""
    from csi_edge.admission import SenderFilter
    from csi_edge.errors import ConfigError

    try:
        f = SenderFilter(entries)
    except ConfigError as e:
        assert "ingest.allow" in str(e)
        return
    assert f.allowed(address) in (True, False)
