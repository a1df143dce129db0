"""Serial-console ingest (esp-csi ``CSI_DATA`` lines, ESP32-CSI-Tool lines) with pyserial.

Real serial streams at 921600-2000000 baud tear and interleave lines: a line loses its tail and
the next line runs into it, log lines land in the middle of CSI lines, the board resets and
prints boot garbage. :class:`LineSplitter` turns the byte stream into lines and recovers the
line that starts inside a torn one (counted skip ``torn-line`` for the broken fragment); the
decoder (:class:`csi_edge.codecs.text.TextLineDecoder`) skips whatever else is malformed, with a
named reason.

USB-serial adapters vanish when unplugged. :class:`SerialSource` then logs once
``serial /dev/ttyUSB0 unplugged, retrying every 1 s``, retries opening the same path (a
``/dev/serial/by-id/...`` link comes back when the board does) and logs ``reconnected``.

pyserial's reads block, so the port is read on its own thread; completed lines are handed to
the asyncio loop with ``call_soon_threadsafe`` and decoded there, in one call per read chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from csi_edge.skips import SkipCounter

if TYPE_CHECKING:
    from csi_edge.codecs.result import DecodeResult

log = logging.getLogger("csi_edge.serial")

MAX_LINE = 64 * 1024  # a CSI line is < 8 KiB; longer means a lost newline
#: Where a new CSI line can start. A torn line contains one of these after its own start.
LINE_STARTS: tuple[bytes, ...] = (b"CSI_DATA,",)

#: raw_sink(lines, t_rx): every line as split, before decoding (for ``csi-edge record``)
LineSink = Callable[[Sequence[bytes], float], None]
Emit = Callable[["DecodeResult"], None]


class LineSplitter:
    """Bytes in, complete lines out; torn, interleaved and overlong lines handled and counted.

    Line ends are ``\\n``, ``\\r\\n`` or ``\\r``. Lines are bytes (the decoder counts non-UTF-8).
    """

    def __init__(
        self,
        skipped: SkipCounter | None = None,
        *,
        starts: tuple[bytes, ...] = LINE_STARTS,
        max_line: int = MAX_LINE,
    ) -> None:
        self.skipped = skipped if skipped is not None else SkipCounter()
        self.starts = starts
        self.max_line = max_line
        self._tail = b""
        self._discarding = False  # inside an overlong line: drop until the next newline

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines in ``data`` (plus what was held back), without line ends, untorn; empty
        lines are dropped (they carry nothing)."""
        return self.untear(self.feed_raw(data))

    def feed_raw(self, data: bytes) -> list[bytes]:
        """Like :meth:`feed` but lines exactly as received (for lossless recording)."""
        buf = self._tail + data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = buf.split(b"\n")
        self._tail = parts.pop()
        # a trailing "\r" may be the first half of "\r\n": keep the tail as is ("\r" became "\n"
        # above, so an empty tail with a "\n" already split off is fine)
        out: list[bytes] = []
        for line in parts:
            if self._discarding:
                self._discarding = False
                self.skipped.skip("line-too-long", f"over {self.max_line} bytes without a newline")
                continue
            if line:
                out.append(line)
        if len(self._tail) > self.max_line:
            self._tail = b""
            self._discarding = True
        return out

    def untear(self, lines: list[bytes]) -> list[bytes]:
        """Cut ``...torn fragmentCSI_DATA,...`` to the real line; the fragment is counted."""
        out = []
        for line in lines:
            cut = max(line.rfind(s) for s in self.starts)
            if cut > 0:
                self.skipped.skip("torn-line", "a CSI line started inside another one")
                line = line[cut:]
            out.append(line)
        return out

    def reset(self) -> bytes:
        """Forget a half-received line (the port went away); returns it."""
        tail, self._tail, self._discarding = self._tail, b"", False
        if tail:
            self.skipped.skip("torn-line", "incomplete line when the port closed")
        return tail


class SerialSource:
    """Read CSI lines from a serial port; reconnect after unplug.

    \b
    src = SerialSource("/dev/ttyUSB0", baud=921600)
    await src.run(emit)          # until src.close()
    """

    kind = "serial"

    def __init__(
        self,
        port: str,
        baud: int = 921600,
        *,
        iq_order: str = "imag-first",
        retry_s: float = 1.0,
        read_timeout: float = 0.05,
        raw_sink: LineSink | None = None,
        decode: bool = True,
    ) -> None:
        self.port = port
        self.baud = baud
        self.iq_order = iq_order
        self.retry_s = retry_s
        self.read_timeout = read_timeout
        self.raw_sink = raw_sink
        self.decode_enabled = decode
        self.skipped = SkipCounter()  # splitter skips so far (loop side, for stats)
        self.splitter = LineSplitter()  # used by the reader thread only
        self.lines = 0
        self.bytes = 0
        self.connects = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emit: Emit | None = None
        self._done: asyncio.Future | None = None
        self._decoder = None

    @property
    def name(self) -> str:
        return f"serial://{self.port}"

    def stats(self) -> dict:
        return {
            "lines": self.lines,
            "bytes": self.bytes,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "baud": self.baud,
        }

    async def start(self, emit: Emit) -> None:
        if self._thread is not None:
            return
        from csi_edge.codecs.text import TextLineDecoder

        self._decoder = TextLineDecoder(self.port)
        self._loop = asyncio.get_running_loop()
        self._emit = emit
        self._done = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._reader, name=f"serial {self.port}", daemon=True
        )
        self._thread.start()

    async def run(self, emit: Emit) -> None:
        await self.start(emit)
        assert self._done is not None
        try:
            await asyncio.shield(self._done)
        finally:
            self._stop.set()

    def close(self) -> None:
        self._stop.set()

    # -- reader thread --------------------------------------------------------------------------
    def _reader(self) -> None:
        import serial  # pyserial

        announced_down = False
        try:
            while not self._stop.is_set():
                try:
                    ser = serial.Serial(self.port, self.baud, timeout=self.read_timeout)
                except (serial.SerialException, OSError, ValueError) as exc:
                    if not announced_down:
                        log.warning(
                            "serial %s unavailable (%s), retrying every %g s",
                            self.port,
                            _short(exc),
                            self.retry_s,
                        )
                        announced_down = True
                    self._stop.wait(self.retry_s)
                    continue
                self.connects += 1
                if announced_down or self.connects > 1:
                    log.warning("serial %s reconnected", self.port)
                else:
                    log.info("serial %s open at %d baud", self.port, self.baud)
                announced_down = False
                self.connected.set()
                try:
                    self._read_until_gone(ser)
                except (serial.SerialException, OSError) as exc:
                    self.disconnects += 1
                    self.connected.clear()
                    self.splitter.reset()
                    self._hand_over([], time.time())
                    log.warning(
                        "serial %s unplugged (%s), retrying every %g s",
                        self.port,
                        _short(exc),
                        self.retry_s,
                    )
                    announced_down = True
                    self._stop.wait(self.retry_s)
                finally:
                    with contextlib.suppress(serial.SerialException, OSError):
                        ser.close()
        finally:
            self.connected.clear()
            if self._loop is not None and self._done is not None:
                self._loop.call_soon_threadsafe(_resolve, self._done)

    def _read_until_gone(self, ser) -> None:
        while not self._stop.is_set():
            data = ser.read(max(1, ser.in_waiting))
            if not data:
                continue
            t = time.time()
            self.bytes += len(data)
            raw = self.splitter.feed_raw(data)
            if raw:
                self._hand_over(self.splitter.untear(raw), t, raw)

    def _hand_over(self, lines: list[bytes], t: float, raw: list[bytes] | None = None) -> None:
        """Pass lines (untorn, and as received for the raw sink) and the splitter's skip counts
        (owned by this thread) to the loop."""
        skips = self.splitter.skipped.as_dict()
        if skips:
            self.splitter.skipped.clear()
        if (not lines and not skips) or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are shutting down
            self._loop.call_soon_threadsafe(self._deliver, lines, t, skips, raw)

    # -- on the loop ----------------------------------------------------------------------------
    def _deliver(
        self, lines: list[bytes], t: float, skips: dict[str, int], raw: list[bytes] | None
    ) -> None:
        from csi_edge.codecs.result import DecodeResult

        self.lines += len(lines)
        self.skipped.update(skips)
        if self.raw_sink is not None and raw:
            self.raw_sink(raw, t)
        if self._emit is None:
            return
        if self.decode_enabled and lines and self._decoder is not None:
            result = self._decoder.decode_lines(lines, t)
        else:
            result = DecodeResult()
        result.skipped.update(skips)  # torn / overlong lines, counted by the splitter
        if len(result.frames) or result.packet_counts or result.skipped:
            self._emit(result)


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
