"""Serial ingest through a real pseudo-terminal: torn lines, split reads, unplug and reconnect.

The port is reached through a symlink (like /dev/serial/by-id/...): unplugging closes the pty
and removes the link; plugging back in creates a new pty and points the link at it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from csi_edge.frames import FrameBatch
from csi_edge.ingest import Ingest
from csi_edge.sources.serial import LineSplitter, SerialSource

HEADER = (
    b"type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,"
    b"fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,"
    b"rx_state,len,first_word,data"
)


def csi_line(i: int, n: int = 128) -> bytes:
    """An esp-csi 25-column CSI_DATA line (classic chips), sequence ``i``."""
    vals = ",".join(str(v) for v in (np.arange(n) + i) % 50 - 25)
    return (
        f"CSI_DATA,{i},aa:bb:cc:dd:ee:ff,-45,11,1,7,0,1,1,1,0,0,0,-92,0,6,0,{1000 * i},0,100,0,"
        f'{n},0,"[{vals}]"'
    ).encode()


def new_pty(link: Path) -> tuple[int, int]:
    """A pty in raw mode; ``link`` (re)pointed at its slave side. Returns (master, slave)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tmp = link.with_suffix(".new")
    os.symlink(os.ttyname(slave), tmp)
    os.replace(tmp, link)
    return master, slave


async def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_pty_torn_lines_unplug_and_reconnect(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="csi_edge.serial")
    link = tmp_path / "usb-Espressif_ESP32-S3-if00"
    batches: list[FrameBatch] = []

    async def main():
        master, slave = new_pty(link)
        src = SerialSource(str(link), baud=921600, retry_s=0.05)
        ingest = Ingest([src], consumers=[lambda r: batches.append(r.frames)])
        task = asyncio.create_task(ingest.run())
        await wait_for(src.connected.is_set)

        # header, a good line, a torn line (tail lost, next line runs into it), a log line,
        # and a line delivered a few bytes at a time (split across many reads)
        stream = b"\r\n".join(
            [
                HEADER,
                csi_line(1),
                csi_line(2)[:70] + csi_line(3),
                b"I (812) wifi: sta connected",
                b"",
            ]
        )
        os.write(master, stream)
        slow = csi_line(4) + b"\n"
        for a in range(0, len(slow), 37):
            os.write(master, slow[a : a + 37])
            await asyncio.sleep(0.002)
        os.write(master, csi_line(5)[:-20])  # half a line, then the cable is pulled
        await wait_for(lambda: ingest.frames >= 3)
        await asyncio.sleep(0.1)

        # unplug: the device disappears (pty closed, link gone)
        os.close(master)
        os.close(slave)
        link.unlink()
        await wait_for(lambda: src.disconnects == 1)
        assert not src.connected.is_set()
        await asyncio.sleep(0.2)  # a few failed reopen attempts

        # plug back in: a new tty behind the same link
        master2, slave2 = new_pty(link)
        await wait_for(src.connected.is_set)
        os.write(master2, csi_line(6) + b"\n" + csi_line(7) + b"\n")
        await wait_for(lambda: ingest.frames >= 5)
        ingest.stop()
        await task
        os.close(master2)
        os.close(slave2)
        return ingest, src

    ingest, src = asyncio.run(asyncio.wait_for(main(), 30))
    frames = FrameBatch.concat(batches)
    assert frames.meta["seq"].tolist() == [1, 3, 4, 6, 7]
    assert set(frames.meta["n_pairs"].tolist()) == {64}
    assert np.array_equal(frames.raw(2), ((np.arange(128) + 4) % 50 - 25).astype(np.int8))
    s = ingest.summary()
    assert s["skipped"]["torn-line"] == 2  # the torn line, and the half line at the unplug
    assert s["skipped"]["log-line"] == 1
    assert s["skipped"]["header-line"] == 1
    assert s["nodes"][f"{link}#aa:bb:cc:dd:ee:ff"]["frames"] == 5  # node = port + transmitter MAC
    assert src.connects == 2 and src.disconnects == 1
    text = caplog.text
    assert f"serial {link} unplugged" in text and "retrying every 0.05 s" in text
    assert f"serial {link} reconnected" in text
    assert text.index("unplugged") < text.index("reconnected")


def test_missing_port_is_retried_until_it_appears(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="csi_edge.serial")
    link = tmp_path / "ttyUSB0"

    async def main():
        src = SerialSource(str(link), baud=115200, retry_s=0.05)
        ingest = Ingest([src])
        task = asyncio.create_task(ingest.run())
        await asyncio.sleep(0.2)
        assert not src.connected.is_set()
        master, slave = new_pty(link)
        await wait_for(src.connected.is_set)
        os.write(master, csi_line(9) + b"\n")
        await wait_for(lambda: ingest.frames >= 1)
        ingest.stop()
        await task
        os.close(master)
        os.close(slave)

    asyncio.run(asyncio.wait_for(main(), 20))
    assert f"serial {link} unavailable" in caplog.text
    assert f"serial {link} reconnected" in caplog.text


@pytest.mark.parametrize("chunk", [1, 3, 64, 10_000])
def test_line_splitter_any_chunking(chunk):
    data = b"\r\n".join([csi_line(1), b"junkCSI_DATA" + csi_line(2)[8:], b"", csi_line(3)]) + b"\r"
    sp = LineSplitter()
    out: list[bytes] = []
    for a in range(0, len(data), chunk):
        out += sp.feed(data[a : a + chunk])
    assert out == [csi_line(1), csi_line(2), csi_line(3)]
    assert sp.skipped.as_dict() == {"torn-line": 1}


def test_line_splitter_drops_overlong_lines():
    sp = LineSplitter(max_line=100)
    out = sp.feed(b"x" * 150)
    out += sp.feed(b"y" * 150 + b"\nok\n")
    assert out == [b"ok"]
    assert sp.skipped.as_dict() == {"line-too-long": 1}
