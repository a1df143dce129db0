"""Replay a capture (pcap, ``.csi.jsonl``, serial logs, csi-edge recordings) as if it were live.

``speed=1`` replays at the pace the frames were received, ``speed=10`` ten times faster,
``speed=None`` as fast as the consumers take it. The output is the same stream of
:class:`~csi_edge.codecs.result.DecodeResult` a live source emits, in slices of at most
``max_batch`` frames, so everything downstream (node table, DSP, models) cannot tell a replay
from the nodes themselves. When paced, receive times are re-stamped to "now" by default (so live
views do not show yesterday's nodes as offline); ``restamp=False`` keeps the capture's times.

With ``resend=(host, port)`` the frames are instead sent as ADR-018 datagrams to a gateway
elsewhere (one UDP socket per source in the capture, so the gateway still tells them apart by
port; frames are re-encoded with :func:`~csi_edge.codecs.ruview.encode_raw_frame`, sibling packets
are not re-sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.frames import FrameBatch, Packet

log = logging.getLogger("csi_edge.replay")

Emit = Callable[[DecodeResult], None]


def slice_result(res: DecodeResult, max_batch: int) -> Iterator[DecodeResult]:
    """Split a result into pieces of at most ``max_batch`` frames (packets follow their time)."""
    n = len(res.frames)
    if n <= max_batch:
        yield res
        return
    packets = _PacketCursor(res.packets, res.frames.meta["t_rx"])
    for a in range(0, n, max_batch):
        yield packets.part(res, a, min(a + max_batch, n))


class _PacketCursor:
    """Hands a result's packets to the frame slices cut from it (frame times ``t``), each packet
    to the first slice whose last frame is not older than it; the last slice takes every packet
    still held. A packet without a receive time (NaN) goes with the first slice."""

    def __init__(self, packets: list[Packet], t: np.ndarray) -> None:
        # NaN times sort first (the key's False < True)
        self.packets = sorted(packets, key=lambda p: (not math.isnan(p.t_rx), p.t_rx))
        self.t = t
        self.i = 0

    def part(self, res: DecodeResult, a: int, b: int) -> DecodeResult:
        """Frames ``a:b`` of ``res`` with the packets due by then (and, in the first slice,
        the result's skip counts)."""
        part = DecodeResult(frames=res.frames[a:b])
        if a == 0:
            part.skipped.update(res.skipped)
        t_end = float(self.t[b - 1]) if b < len(self.t) else math.inf
        packets = self.packets
        while self.i < len(packets) and (
            packets[self.i].t_rx <= t_end or math.isnan(packets[self.i].t_rx)
        ):
            part.add_packet(packets[self.i])
            self.i += 1
        return part


class ReplaySource:
    """Emit a capture's frames paced by their receive times (or as fast as possible)."""

    kind = "replay"

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str | None = None,
        iq_order: str = "imag-first",
        speed: float | None = 1.0,
        restamp: bool | None = None,
        max_batch: int = 4096,
        tick_s: float = 0.01,
        resend: tuple[str, int] | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        self.path = Path(path)
        self.fmt = fmt
        self.iq_order = iq_order
        self.speed = speed
        self.restamp = (speed is not None) if restamp is None else restamp
        self.max_batch = max_batch
        self.tick_s = tick_s
        self.resend = resend
        self.frames = 0
        self.sent = 0
        self.send_errors = 0
        self._closed = False
        self._socks: dict[str, socket.socket] = {}
        self._seq: dict[tuple[str, int], int] = {}

    @property
    def name(self) -> str:
        return f"replay://{self.path}"

    def stats(self) -> dict:
        out = {"frames": self.frames, "speed": self.speed}
        if self.resend:
            out |= {"sent": self.sent, "send_errors": self.send_errors}
        return out

    def close(self) -> None:
        self._closed = True

    async def run(self, emit: Emit) -> None:
        """Replay to the end of the capture (or until :meth:`close`)."""
        from csi_edge.capture import iter_capture

        chunks = iter_capture(self.path, fmt=self.fmt, iq_order=self.iq_order)
        t0_capture: float | None = None
        t0_wall = time.time()
        try:
            while not self._closed:
                # reading a chunk can take a while on a big file: keep the loop responsive
                res = await asyncio.to_thread(next, chunks, None)
                if res is None:
                    break
                for part in slice_result(res, self.max_batch):
                    if self._closed:
                        break
                    if t0_capture is None and len(part.frames):
                        t0_capture = float(np.nanmin(part.frames.meta["t_rx"]))
                    if self.speed is None:
                        self._out(part, emit, t0_capture, t0_wall)
                        await asyncio.sleep(0)
                    else:
                        await self._paced(part, emit, t0_capture, t0_wall)
        finally:
            with contextlib.suppress(ValueError):  # still running in a worker: it ends alone
                chunks.close()  # releases the file (and its memory map) when stopped early
            for s in self._socks.values():
                s.close()
            self._socks.clear()

    async def _paced(self, res: DecodeResult, emit: Emit, t0c: float | None, t0w: float) -> None:
        """Emit ``res`` in time slices as the replay clock passes each frame's time."""
        if not len(res.frames) or t0c is None:
            self._out(res, emit, t0c, t0w)
            return
        t = res.frames.meta["t_rx"]
        t = np.where(np.isnan(t), t0c, t)
        due_wall = t0w + (t - t0c) / self.speed  # type: ignore[operator]
        order_ok = bool((np.diff(due_wall) >= 0).all())
        i, n = 0, len(t)
        packets = _PacketCursor(res.packets, t)
        while i < n and not self._closed:
            now = time.time()
            if order_ok:
                j = int(np.searchsorted(due_wall, now, side="right"))
            else:
                j = i + int(np.argmax(due_wall[i:] > now)) if (due_wall[i:] > now).any() else n
            j = max(j, i)
            if j > i:
                self._out(packets.part(res, i, j), emit, t0c, t0w)
                i = j
            if i < n:
                await asyncio.sleep(min(max(float(due_wall[i]) - time.time(), 0.0), self.tick_s))

    def _out(self, res: DecodeResult, emit: Emit, t0c: float | None, t0w: float) -> None:
        if self.restamp and t0c is not None:
            scale = self.speed or 1.0
            res.frames.meta["t_rx"] = t0w + (res.frames.meta["t_rx"] - t0c) / scale
            for p in res.packets:
                p.t_rx = t0w + (p.t_rx - t0c) / scale
        self.frames += len(res.frames)
        if self.resend is not None:
            self._resend(res.frames)
        else:
            emit(res)

    def _resend(self, frames: FrameBatch) -> None:
        from csi_edge.codecs.ruview import encode_raw_frame

        meta = frames.meta
        for i in range(len(frames)):
            src = frames.sources[int(meta["src"][i])] if frames.sources else "?"
            node = int(meta["node_id"][i])
            seq = int(meta["seq"][i])
            if seq < 0:  # text formats have no sequence: number frames per node
                seq = self._seq.get((src, node), 0)
                self._seq[(src, node)] = seq + 1
            sock = self._socks.get(src)
            if sock is None:
                family = socket.AF_INET6 if ":" in self.resend[0] else socket.AF_INET  # type: ignore[index]
                sock = self._socks[src] = socket.socket(family, socket.SOCK_DGRAM)
            pkt = encode_raw_frame(
                max(node, 0) & 0xFF,
                seq,
                frames.raw(i),
                freq_mhz=int(meta["freq_mhz"][i]),
                rssi=int(np.clip(meta["rssi"][i], -128, 127)),
                noise=int(np.clip(meta["noise"][i], -128, 127)),
            )
            try:
                sock.sendto(pkt, self.resend)  # type: ignore[arg-type]
                self.sent += 1
            except OSError as exc:
                self.send_errors += 1
                log.debug("resend failed: %s", exc)
