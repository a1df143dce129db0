"""The ingest service: every source on one asyncio loop, per-node state, and the consumer fan-out.

::

    sources (UDP, serial, replay) --DecodeResult--> Ingest._emit --+--> NodeTable.update(frames)
                                                                  +--> packet / skip counters
                                                                  +--> consumers (DSP, vitals,
                                                                       models, sinks, console)

Admission (:mod:`csi_edge.admission`): frames of a new (address, node id) that the inventory
does not know, or over the node caps, are counted under a named reason and never reach the node
table or the consumers. While running, a monitor checks once a second for kernel drops
(socket buffer overflows), per-node loss spikes (both logged, rate-limited, and counted) and
nodes silent for ``forget_after_s`` (removed; ``on_forget`` callbacks tell the gateway and
sinks), and a probe measures how long the loop pauses (``summary()["loop"]``): every
datagram waits for the loop, so a pause is what loses frames with a small socket buffer.

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

import numpy as np

from csi_edge.admission import NodeAdmission, NodeInventory
from csi_edge.codecs.result import DecodeResult
from csi_edge.frames import node_key
from csi_edge.loglimit import LIMITER, limited
from csi_edge.nodes import NodeTable
from csi_edge.skips import SkipCounter

log = logging.getLogger("csi_edge.ingest")

Consumer = Callable[[DecodeResult], None]
ForgetHook = Callable[[list[str]], None]
PROBE_S = 0.02  # the loop-pause probe's period
#: a node's loss in one monitor period is a spike when it is this many frames and this share
LOSS_SPIKE_FRAMES, LOSS_SPIKE_SHARE = 10, 0.05


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
        inventory: NodeInventory | None = None,
        max_nodes: int = 256,
        max_new_nodes_per_min: int = 64,
        forget_after_s: float | None = None,
        monitor_s: float = 1.0,
    ) -> None:
        self.sources: list[Source] = list(sources)
        self.nodes = nodes if nodes is not None else NodeTable(clock=time.time)
        self.consumers: list[Consumer] = list(consumers)
        self.admission = NodeAdmission(
            inventory=inventory, max_nodes=max_nodes, max_new_per_min=max_new_nodes_per_min
        )
        self.forget_after_s = forget_after_s
        self.monitor_s = monitor_s
        self.on_forget: list[ForgetHook] = []
        self.frames = 0
        self.results = 0
        self.packets: Counter = Counter()
        self.skipped = SkipCounter()
        self.consumer_errors: Counter = Counter()
        self.kernel_drops = 0  # seen while running (the monitor), over all sources
        self.loss_spikes: Counter = Counter()
        self.forgotten = 0
        self.max_pause_s = 0.0
        self.pauses: Counter = Counter()  # "over_50ms", "over_250ms", "over_1s"
        self._drops_seen: dict[int, int] = {}
        self._loss_seen: dict[str, tuple[int, int]] = {}
        self._stop: asyncio.Event | None = None
        self.started_at: float | None = None
        self._started: set[int] = set()

    # -- the hot path ---------------------------------------------------------------------------
    def emit(self, result: DecodeResult) -> None:
        """Account one decoded batch and pass it to every consumer (sources call this)."""
        self.results += 1
        if len(result.frames) or result.packets:
            self._admit(result)
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
                tail = LIMITER.allow(f"consumer:{name}")
                if tail is None:
                    pass
                elif self.consumer_errors[name] == 1:  # the first one with its traceback
                    log.exception("consumer %s failed; ingest goes on", name)
                else:
                    log.error("consumer %s failed: %r%s", name, exc, tail)

    def _admit(self, result: DecodeResult) -> None:
        """Drop (counted, logged) the frames and packets of new nodes admission refuses."""
        frames = result.frames
        refused: dict[tuple[str, int], str] = {}  # (source, node id) -> reason
        if len(frames):
            meta, sources = frames.meta, frames.sources
            combo = (meta["src"].astype(np.int64) << 16) | (
                meta["node_id"].astype(np.int64) & 0xFFFF
            )
            bad = []
            admitted = 0
            for g in np.unique(combo).tolist():
                s, nid = g >> 16, g & 0xFFFF
                nid = nid - 0x10000 if nid >= 0x8000 else nid
                src = sources[s] if s < len(sources) else "?"
                if self.nodes.known(src, nid):
                    continue  # the common case: one dict lookup per node per batch
                reason = self.admission.admit(src, nid, len(self.nodes) + admitted)
                if reason is None:
                    admitted += 1
                else:
                    refused[(src, nid)] = reason
                    bad.append(g)
            if bad:
                drop = np.isin(combo, np.asarray(bad, np.int64))
                counts = Counter(combo[drop].tolist())
                for g in bad:
                    s, nid = g >> 16, g & 0xFFFF
                    nid = nid - 0x10000 if nid >= 0x8000 else nid
                    src = sources[s] if s < len(sources) else "?"
                    reason, n = refused[(src, nid)], counts[g]
                    self.admission.refuse(node_key(src, nid), reason, n)
                    self.skipped[reason] += n
                result.frames = frames[~drop]
        if result.packets:
            inv = self.admission.inventory
            keep = []
            for p in result.packets:
                reason = refused.get((p.source, p.node_id))
                # a packet alone does not make a node, but must come from a known one
                known = inv is None or not inv.configured or inv.match(p.source, p.node_id)
                if reason is None and known is None:
                    reason = "unknown-node"
                if reason is None:
                    keep.append(p)
                    continue
                self.admission.refuse(node_key(p.source, p.node_id), reason, 1)
                self.skipped[reason] += 1
                result.packet_counts[p.kind] -= 1
            result.packets = keep

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
        watchers = [asyncio.create_task(self._probe()), asyncio.create_task(self._monitor())]
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
            for w in watchers:
                w.cancel()
            await asyncio.gather(stopper, *watchers, return_exceptions=True)
            self.check()  # drops and losses of the last moments are reported too

    async def _probe(self) -> None:
        """Measure the loop's pauses: how late a short sleep wakes up."""
        clock = time.monotonic
        while True:
            t0 = clock()
            await asyncio.sleep(PROBE_S)
            late = clock() - t0 - PROBE_S
            if late > self.max_pause_s:
                self.max_pause_s = late
            if late > 0.05:
                self.pauses["over_50ms"] += 1
                if late > 0.25:
                    self.pauses["over_250ms"] += 1
                    limited(
                        log,
                        logging.WARNING,
                        "loop-pause",
                        "the ingest loop paused for %.0f ms: datagrams wait in the socket buffer "
                        "meanwhile (and are lost when it fills)",
                        late * 1000,
                    )
                if late > 1.0:
                    self.pauses["over_1s"] += 1

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_s)
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a monitoring bug must not stop ingest
                limited(log, logging.ERROR, "monitor-error", "ingest monitor failed")
                log.debug("ingest monitor failed", exc_info=True)

    def check(self, now: float | None = None) -> None:
        """Once a second while running: kernel drops and loss spikes (logged, rate-limited,
        counted) and forgetting nodes silent for ``forget_after_s``."""
        for src in self.sources:
            drops = getattr(src, "kernel_drops", None)
            total = drops() if callable(drops) else None
            if total is None:
                continue
            new = total - self._drops_seen.get(id(src), 0)
            self._drops_seen[id(src)] = total
            if new > 0:
                self.kernel_drops += new
                limited(
                    log,
                    logging.WARNING,
                    "kernel-drops",
                    "the kernel dropped %d datagram(s) on %s: its receive buffer (SO_RCVBUF %s B) "
                    "was full. Raise net.core.rmem_max or lower the load",
                    new,
                    src.name,
                    getattr(src, "rcvbuf", "?"),
                    n=new,
                )
        for key, st in self.nodes.nodes.items():
            lost, frames = st.lost, st.frames
            before = self._loss_seen.get(key)
            self._loss_seen[key] = (lost, frames)
            if before is None:
                continue
            d_lost, d_frames = lost - before[0], frames - before[1]
            if d_lost >= LOSS_SPIKE_FRAMES and d_lost > LOSS_SPIKE_SHARE * (d_lost + d_frames):
                self.loss_spikes[key] += 1
                limited(
                    log,
                    logging.WARNING,
                    "loss-spike",
                    "node %s lost %d of %d frames in the last %.0f s",
                    key,
                    d_lost,
                    d_lost + d_frames,
                    self.monitor_s,
                )
        if self.forget_after_s:
            now = self.nodes.now() if now is None else now
            gone = self.nodes.forget(now - self.forget_after_s)
            if gone:
                self.forgotten += len(gone)
                for key in gone:
                    self._loss_seen.pop(key, None)
                limited(
                    log,
                    logging.INFO,
                    "forgotten",
                    "forgot %d node(s) silent for over %.0f s: %s",
                    len(gone),
                    self.forget_after_s,
                    ", ".join(gone[:8]) + (" ..." if len(gone) > 8 else ""),
                    n=len(gone),
                )
                for hook in self.on_forget:
                    try:
                        hook(gone)
                    except Exception:  # noqa: BLE001 - one bad hook must not stop the others
                        log.exception("forget hook %r failed", hook)

    def stop(self) -> None:
        """Ask :meth:`run` to end (thread-unsafe: call on the loop; use call_soon_threadsafe)."""
        if self._stop is None:
            self._stop = asyncio.Event()
        self._stop.set()

    # -- reading --------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """``{"frames", "nodes", "packets", "skipped", "sources", "elapsed_s", "unknown_senders",
        "kernel_drops", "loss_spikes", "forgotten_nodes", "loop"}`` (JSON-ready).

        ``unknown_senders``: address (or ``address#id``) -> datagrams/frames refused;
        ``kernel_drops``: datagrams the kernel dropped while running (socket buffer full);
        ``loss_spikes``: node -> monitor periods with a loss spike; ``loop``: the longest pause
        of the ingest loop and how many pauses exceeded 50 ms / 250 ms / 1 s."""
        out: dict[str, Any] = {
            "frames": self.frames,
            "nodes": self.nodes.summary(),
            "packets": {k: int(v) for k, v in sorted(self.packets.items()) if v},
            "skipped": self.skipped.as_dict(),
            "sources": {s.name: _source_stats(s) for s in self.sources},
        }
        if self.consumer_errors:
            out["consumer_errors"] = dict(self.consumer_errors)
        unknown: Counter = Counter(self.admission.refused)
        for stats in out["sources"].values():
            unknown.update(stats.get("unknown_senders") or {})
        out["unknown_senders"] = dict(unknown.most_common())
        out["kernel_drops"] = self.kernel_drops
        out["loss_spikes"] = dict(self.loss_spikes)
        out["forgotten_nodes"] = self.forgotten
        out["loop"] = {
            "max_pause_ms": round(self.max_pause_s * 1000, 1),
            "pauses_over_50ms": self.pauses["over_50ms"],
            "pauses_over_250ms": self.pauses["over_250ms"],
            "pauses_over_1s": self.pauses["over_1s"],
        }
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
