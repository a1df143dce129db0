"""UDP ingest of RuView ADR-018 datagrams: many nodes, one port, no truncation, batched decoding.

Why it looks the way it does:

* **Receive buffers.** Each ``recvfrom`` asks for 64 KiB, more than any UDP payload, so a
  2068-byte CSI frame (or anything else) is never truncated (RuView's own server used 2048 bytes
  and cut the largest frames). The kernel socket buffer (``SO_RCVBUF``) is enlarged to several MB
  so a burst from 16 nodes survives a slow tick of the event loop; :attr:`UdpSource.rcvbuf`
  reports what the OS granted (Linux caps it at ``net.core.rmem_max``, doubled).
* **Draining.** asyncio's datagram transport reads one datagram per event-loop wake-up. We own
  the (non-blocking) socket we hand to ``create_datagram_endpoint``, so when asyncio delivers a
  datagram the protocol drains whatever else is already queued with plain ``recvfrom`` calls, up
  to ``drain_max`` per wake-up, and timestamps each one on receipt with ``time.time()``.
* **Batched decoding.** Datagrams are collected for ``batch_s`` (10 ms, well below a node's
  ~50 ms frame period) or ``max_batch`` datagrams, whichever comes first, then decoded in one
  vectorised
  :meth:`RuViewDecoder.decode <csi_edge.codecs.ruview.RuViewDecoder.decode>` call: that is what makes
  >= 50,000 frames/s on one core possible.
* **Never blocking on a node.** One socket serves every node; nothing waits on a particular
  sender, and a bad datagram is only a counted skip inside the decoder.
* **Who may send.** With an allowlist (``allow=["192.168.10.0/24"]``), datagrams from other
  addresses are counted under ``sender-not-allowed`` (and listed in :meth:`UdpSource.stats`
  under ``unknown_senders``) before they are decoded or recorded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csi_edge.codecs.result import DecodeResult

log = logging.getLogger("csi_edge.udp")

RECV_SIZE = 65536  # larger than any UDP payload (65507): nothing is ever truncated
DEFAULT_RCVBUF = 8 << 20

#: raw_sink(datagrams, t_rx, addrs): every datagram as received, before decoding (for recording)
RawSink = Callable[[Sequence[bytes], Sequence[float], Sequence[tuple]], None]
Emit = Callable[["DecodeResult"], None]


def open_udp_socket(host: str, port: int, rcvbuf: int = DEFAULT_RCVBUF) -> socket.socket:
    """A bound, non-blocking UDP socket with the receive buffer enlarged as far as allowed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            _enlarge_rcvbuf(sock, rcvbuf)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _enlarge_rcvbuf(sock: socket.socket, want: int) -> None:
    # SO_RCVBUFFORCE (Linux, needs CAP_NET_ADMIN) goes past rmem_max; fall back silently.
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, want)
            return
        except OSError:
            pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
    except OSError as exc:  # pragma: no cover - exotic kernels
        log.warning("could not enlarge SO_RCVBUF to %d bytes: %s", want, exc)


def kernel_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on this socket (buffer full), from /proc/net/udp; None if unknown."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == str(inode):
                        return int(cols[12])
        except OSError:
            continue
    return None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpSource) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.owner.skipped_socket_errors += 1
        log.debug("UDP socket error: %s", exc)


class UdpSource:
    """Receive RuView datagrams on ``host:port`` and emit decoded batches.

    \b
    src = UdpSource("0.0.0.0", 5005)
    await src.run(emit)          # until src.close()

    ``raw_sink`` (optional) sees every datagram with its receive time and (ip, port) before
    decoding: ``csi-edge record`` writes them to a pcap from there.
    """

    kind = "udp"

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 5005,
        *,
        iq_order: str = "imag-first",
        rcvbuf: int = DEFAULT_RCVBUF,
        batch_s: float = 0.01,
        max_batch: int = 2048,
        drain_max: int = 512,
        raw_sink: RawSink | None = None,
        decode: bool = True,
        allow: Sequence[str] = (),
    ) -> None:
        from csi_edge.admission import SenderFilter
        from csi_edge.codecs.ruview import RuViewDecoder

        self.host, self.port = host, port
        self.iq_order = iq_order
        self.rcvbuf_wanted = rcvbuf
        self.batch_s = batch_s
        self.max_batch = max_batch
        self.drain_max = drain_max
        self.raw_sink = raw_sink
        self.decode_enabled = decode
        self.decoder = RuViewDecoder()
        self.senders = SenderFilter(allow)
        self.datagrams = 0
        self.bytes = 0
        self.batches = 0
        self.skipped_socket_errors = 0
        self.rcvbuf = 0
        self._drops_at_close: int | None = None
        self.sock: socket.socket | None = None
        self._bound: tuple | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._emit: Emit | None = None
        self._data: list[bytes] = []
        self._times: list[float] = []
        self._addrs: list[tuple] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return f"udp://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): useful with port 0."""
        return self._bound or (self.host, self.port)

    async def start(self, emit: Emit) -> None:
        """Bind and start receiving (returns at once; see :meth:`run`)."""
        self._loop = asyncio.get_running_loop()
        self._emit = emit
        self._closed = asyncio.Event()
        self.sock = open_udp_socket(self.host, self.port, self.rcvbuf_wanted)
        self._bound = tuple(self.sock.getsockname()[:2])
        self.port = self._bound[1]
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Protocol(self), sock=self.sock
        )
        self._transport = transport
        log.info("listening on UDP %s:%d (SO_RCVBUF %d bytes)", *self.address, self.rcvbuf)
        if self.rcvbuf_wanted and self.rcvbuf < min(self.rcvbuf_wanted, 1 << 20):
            log.warning(
                "UDP receive buffer is only %d bytes (asked for %d); bursts from many nodes may be "
                "dropped. Raise the limit: sudo sysctl -w net.core.rmem_max=%d",
                self.rcvbuf,
                self.rcvbuf_wanted,
                self.rcvbuf_wanted,
            )

    async def run(self, emit: Emit) -> None:
        """Receive until :meth:`close` is called or the task is cancelled."""
        if self._transport is None:
            await self.start(emit)
        assert self._closed is not None
        try:
            await self._closed.wait()
        finally:
            self._shutdown()

    def close(self) -> None:
        """Stop receiving; pending datagrams are decoded and emitted first."""
        if self._closed is not None:
            self._closed.set()
        else:
            self._shutdown()

    def _shutdown(self) -> None:
        if self._transport is not None:
            # what is already queued is received, decoded and emitted (bounded: senders that
            # keep sending must not hold the shutdown forever)
            for _ in range(256):
                if not self._drain():
                    break
            self.flush()
            self._drops_at_close = self.kernel_drops()
            self._transport.close()
            self._transport = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def stats(self) -> dict:
        """Counters for summaries: datagrams, bytes, decode batches, kernel drops, SO_RCVBUF."""
        return {
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "batches": self.batches,
            "socket_errors": self.skipped_socket_errors,
            "kernel_drops": self.kernel_drops(),
            "rcvbuf": self.rcvbuf,
            "unknown_senders": dict(self.senders.refused),
        }

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped because the socket buffer was full (Linux; else None)."""
        if self._transport is None or self.sock is None:
            return self._drops_at_close
        return kernel_drops(self.sock)

    # -- receive path -------------------------------------------------------------------------
    def _received(self, data: bytes, addr: tuple) -> None:
        self._data.append(data)
        self._times.append(time.time())
        self._addrs.append(addr)
        self._drain()
        if len(self._data) >= self.max_batch:
            self.flush()
        elif self._flush_handle is None and self._data and self._loop is not None:
            self._flush_handle = self._loop.call_later(self.batch_s, self.flush)

    def _drain(self) -> int:
        """Read what is already queued on the socket without going back to the event loop
        (at most ``drain_max`` datagrams); returns how many were read."""
        sock = self.sock
        if sock is None:
            return 0
        recv, now = sock.recvfrom, time.time
        data, times, addrs = self._data, self._times, self._addrs
        n = 0
        for n in range(self.drain_max):  # noqa: B007 - n is the count read
            try:
                d, a = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return n
            except OSError as exc:
                self.skipped_socket_errors += 1
                log.debug("UDP socket error: %s", exc)
                return n
            data.append(d)
            times.append(now())
            addrs.append(a)
            if len(data) >= self.max_batch:
                self.flush()
                data, times, addrs = self._data, self._times, self._addrs
        return n + 1

    def flush(self) -> None:
        """Decode the pending datagrams in one call and emit the result."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._data:
            return
        data, times, addrs = self._data, self._times, self._addrs
        self._data, self._times, self._addrs = [], [], []
        self.datagrams += len(data)
        self.bytes += sum(map(len, data))
        self.batches += 1
        # nodes are keyed by IP (the port changes at reboot); a dual-stack "::" socket reports
        # IPv4 senders as ::ffff:a.b.c.d, which is the same node as a.b.c.d
        sources = [a[0][7:] if a[0].startswith("::ffff:") else a[0] for a in addrs]
        refused: Counter = Counter()
        if self.senders.active:
            ok = self.senders.allowed
            keep = [i for i, src in enumerate(sources) if ok(src)]
            if len(keep) < len(sources):
                refused.update(src for src in sources if not ok(src))
                for src, k in refused.items():
                    self.senders.refuse(src, k)
                data = [data[i] for i in keep]
                times = [times[i] for i in keep]
                addrs = [addrs[i] for i in keep]
                sources = [sources[i] for i in keep]
        sink_failed = None
        if self.raw_sink is not None:
            try:
                self.raw_sink(data, times, addrs)
            except Exception as exc:  # noqa: BLE001 - a broken recorder must not cost the decode
                sink_failed = exc
        if not self.decode_enabled or self._emit is None:
            if sink_failed is not None:
                raise sink_failed
            return
        import numpy as np

        result = self.decoder.decode(
            data, np.asarray(times, np.float64), sources, iq_order=self.iq_order
        )
        if refused:  # counted quietly here: SenderFilter.refuse logged them (rate-limited)
            result.skipped["sender-not-allowed"] += sum(refused.values())
        if sink_failed is not None:  # decoded, but missing from the recording: say so
            result.skipped.skip("not-recorded", repr(sink_failed), len(data))
        self._emit(result)
