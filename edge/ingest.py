"""The ingest service: every source on one asyncio loop, per-node state, and the consumer fan-out.

::

    sources (UDP, serial, replay) --DecodeResult--> Ingest._emit --+--> NodeTable.update(frames)
                                                                  +--> packet / skip counters
                                                                  +--> consumers (DSP, vitals,
                                                                       models, sinks, console)

Everything runs on the loop's thread: sources call ``emit`` there (the serial source hands its
lines over from its reader thread with ``call_soon_threadsafe``), so consumers need no locks.
A consumer is a plain callable ``consumer(result: DecodeResult) -> None``; it must be quick (it
runs inline with the receive path) and hand heavy work to its own task or thread. A consumer that
raises is logged (rate-limited) and counted, and ingest goes on: one bad sink must not stop
the nodes' data.

Usage::

    ingest = Ingest([UdpSource("0.0.0.0", 5005)], consumers=[print_summary])
    await ingest.run(duration=60)        # or ingest.stop() from elsewhere
    ingest.summary()                     # {"frames", "nodes", "packets", "skipped", "sources"}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from csi_edge.codecs.result import DecodeResult
from csi_edge.nodes import NodeTable
from csi_edge.skips import SkipCounter

log = logging.getLogger("csi_edge.ingest")

Consumer = Callable[[DecodeResult], None]
ERROR_LOG_EVERY_S = 10.0  # a failing consumer is logged once, then at most this often


class Source(Protocol):
    """What :class:`Ingest` needs from a source (UdpSource, SerialSource, ReplaySource)."""

    name: str

    async def run(self, emit: Consumer) -> None: ...

    def close(self) -> None: ...


class Ingest:
    """Runs sources, keeps the :class:`NodeTable`, counts packets and skips, feeds consumers."""

    def __init__(
        self,
        sources: Iterable[Source] = (),
        *,
        nodes: NodeTable | None = None,
        consumers: Iterable[Consumer] = (),
    ) -> None:
        self.sources: list[Source] = list(sources)
        self.nodes = nodes if nodes is not None else NodeTable(clock=time.time)
        self.consumers: list[Consumer] = list(consumers)
        self.frames = 0
        self.results = 0
        self.packets: Counter = Counter()
        self.skipped = SkipCounter()
        self.consumer_errors: Counter = Counter()
        self._err_logged: dict[str, float] = {}
        self._stop: asyncio.Event | None = None
        self.started_at: float | None = None
        self._started: set[int] = set()

    def add_source(self, source: Source) -> None:
        self.sources.append(source)

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    # -- the hot path ---------------------------------------------------------------------------
    def emit(self, result: DecodeResult) -> None:
        """Account one decoded batch and pass it to every consumer (sources call this)."""
        self.results += 1
        self.frames += len(result.frames)
        if len(result.frames):
            self.nodes.update(result.frames)
        if result.packet_counts:
            self.packets.update(result.packet_counts)
        if result.skipped:
            self.skipped.update(result.skipped)
        for consumer in self.consumers:
            try:
                consumer(result)
            except Exception as exc:  # noqa: BLE001 - one bad consumer must not stop ingest
                name = getattr(consumer, "__qualname__", repr(consumer))
                self.consumer_errors[name] += 1
                now = time.monotonic()
                if self.consumer_errors[name] == 1:
                    self._err_logged[name] = now
                    log.exception("consumer %s failed; ingest goes on", name)
                elif now - self._err_logged.get(name, 0.0) >= ERROR_LOG_EVERY_S:
                    self._err_logged[name] = now
                    log.error(
                        "consumer %s failed again (%d times so far): %r",
                        name,
                        self.consumer_errors[name],
                        exc,
                    )

    # -- running --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind/open every source that can start early (UDP: so the bound port is known)."""
        if self.started_at is None:
            self.started_at = time.time()
        for src in self.sources:
            start = getattr(src, "start", None)
            if start is not None and id(src) not in self._started:
                await start(self.emit)
                self._started.add(id(src))

    async def run(self, duration: float | None = None) -> None:
        """Run every source until ``duration`` passes, :meth:`stop` is called, or all sources end
        (a replay at its end of file). Sources are closed and flushed on the way out; a source
        that crashes re-raises here after the others are closed."""
        await self.start()
        if self._stop is None:
            self._stop = asyncio.Event()
        tasks = [asyncio.create_task(src.run(self.emit), name=src.name) for src in self.sources]
        stopper = asyncio.create_task(self._stop.wait())
        deadline = None if duration is None else time.monotonic() + duration
        pending: set[asyncio.Task] = {stopper, *tasks}
        try:
            while True:
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done or stopper in done:
                    break
                for t in done:
                    t.result()  # re-raise a source's crash
                if pending == {stopper}:
                    break  # every source ended (e.g. a replay reached its end)
        finally:
            for src in self.sources:
                src.close()
            live = [t for t in tasks if not t.done()]
            if live:
                # closed sources flush what they hold and return; cancel stragglers
                _, late = await asyncio.wait(live, timeout=2.0)
                for t in late:
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)

    def stop(self) -> None:
        """Ask :meth:`run` to end (thread-unsafe: call on the loop; use call_soon_threadsafe)."""
        if self._stop is None:
            self._stop = asyncio.Event()
        self._stop.set()

    # -- reading --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """``{"frames", "nodes", "packets", "skipped", "sources", "elapsed_s"}`` (JSON-ready)."""
        out: dict[str, Any] = {
            "frames": self.frames,
            "nodes": self.nodes.summary(),
            "packets": {k: int(v) for k, v in sorted(self.packets.items()) if v},
            "skipped": self.skipped.as_dict(),
            "sources": {s.name: _source_stats(s) for s in self.sources},
        }
        if self.consumer_errors:
            out["consumer_errors"] = dict(self.consumer_errors)
        if self.started_at is not None:
            out["elapsed_s"] = round(time.time() - self.started_at, 3)
        return out


def _source_stats(src: Source) -> dict:
    stats = getattr(src, "stats", None)
    return stats() if callable(stats) else {}


def totals_line(summary: dict[str, Any]) -> str:
    """One line of totals (frames, nodes, packets, skips) from :meth:`Ingest.summary`."""
    packets = ", ".join(f"{k} {v}" for k, v in summary["packets"].items()) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    elapsed = summary.get("elapsed_s")
    head = f"{elapsed:.0f} s: " if elapsed is not None else ""
    return (
        f"{head}{summary['frames']} frames from {len(summary['nodes'])} node(s); "
        f"packets: {packets}; skipped: {skipped}"
    )
