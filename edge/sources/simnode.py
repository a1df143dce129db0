"""Simulated RuView nodes: real ADR-018 datagrams over real UDP, synthetic (pluggable) CSI content.

Each :class:`SimNode` owns a UDP socket (its own source port, a new one after each simulated
reboot, as a real ESP32 gets), a node id, a per-boot sequence counter from 0, a frame rate with
jitter, optional random loss (the sequence advances, the frame is not sent: exactly what the
gateway sees when WiFi drops a frame) and optional periodic reboots (silence, then the sequence
restarts at 0). Frames are encoded with :func:`csi_edge.codecs.ruview.encode_raw_frame`, so the
gateway cannot tell them from a real node's.

The CSI *content* is a plug-in: ``csi_fn(t, seq) -> int8 array`` of ``2 * n_pairs`` values,
imaginary first in each pair (the ESP-IDF buffer). :func:`synthetic_csi` is the simple default;
the physical channel simulator in ``edge/sim/`` plugs into the same hook and replaces the
content, not the transport.

Many nodes run from one asyncio loop (:class:`SimFleet`): every tick each node sends all frames
that are due, so 16 nodes at thousands of frames/s need no task per frame.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from csi_edge.codecs.ruview import encode_edge_vitals, encode_raw_frame

log = logging.getLogger("csi_edge.simnode")

CsiFn = Callable[[float, int], np.ndarray]


# ---------------------------------------------------------------------------------------------
# content
def _null_bins(n_pairs: int) -> np.ndarray:
    """Guard/DC bins (raw ESP-IDF order 0..31, -32..-1 per 64-pair section) that are always zero.

    Section 0 is LLTF (52 used subcarriers: DC and +-27..32 null), later sections HT-LTF /
    STBC-HT-LTF (56 used: DC and +-29..32 null). Good enough for synthetic content; the decoder's
    own layout tables (``csi_edge.layout``) are the reference.
    """
    null = np.zeros(n_pairs, bool)
    for sec in range(0, n_pairs, 64):
        width = min(64, n_pairs - sec)
        edge_lo = 27 if sec == 0 else 29
        idx = np.r_[0, edge_lo:32, 32 : 64 - (edge_lo - 1)]
        idx = idx[idx < width]
        null[sec + idx] = True
    return null


def synthetic_csi(
    n_pairs: int | Sequence[int] = 64,
    *,
    seed: int = 0,
    breathing_hz: float = 0.25,
    amplitude: float = 40.0,
) -> CsiFn:
    """A simple stand-in for real CSI: a fixed multipath profile, slow breathing-like amplitude
    modulation, a random common phase per frame (the ESP32's CFO), noise, guard/DC bins zero.

    ``n_pairs`` may be a sequence of layouts (e.g. ``(64, 128, 192)``) used in turn by sequence
    number, like a node that hears non-HT, HT and STBC frames.
    """
    layouts = [n_pairs] if isinstance(n_pairs, int) else list(n_pairs)
    rng = np.random.default_rng(seed)
    delays = rng.uniform(0, 0.15, 3)
    gains = rng.uniform(0.3, 1.0, 3) * np.exp(2j * np.pi * rng.uniform(0, 1, 3))
    profiles, nulls = {}, {}
    for p in layouts:
        k = np.arange(p) % 64
        k = np.where(k < 32, k, k - 64)  # subcarrier index in raw order
        h = (gains[None, :] * np.exp(-2j * np.pi * k[:, None] * delays[None, :])).sum(1)
        profiles[p] = h / np.abs(h).max()
        nulls[p] = _null_bins(p)

    def csi_fn(t: float, seq: int) -> np.ndarray:
        # impairments drawn from (seed, seq): the same sequence number gives the same frame
        noise_rng = np.random.default_rng([seed, 1, seq & 0xFFFFFFFF])
        p = layouts[seq % len(layouts)]
        mod = 1.0 + 0.08 * math.sin(2 * math.pi * breathing_hz * t)
        phase = noise_rng.uniform(-math.pi, math.pi)
        h = profiles[p] * (amplitude * mod * complex(math.cos(phase), math.sin(phase)))
        h = h + noise_rng.normal(0, 1.0, p) + 1j * noise_rng.normal(0, 1.0, p)
        h[nulls[p]] = 0
        out = np.empty((p, 2), np.float64)
        out[:, 0], out[:, 1] = h.imag, h.real  # ESP-IDF order: imaginary first
        return np.clip(np.rint(out), -128, 127).astype(np.int8).ravel()

    return csi_fn


def table_csi(n_pairs: int = 64, n: int = 256, *, seed: int = 0) -> CsiFn:
    """Precomputed content indexed by ``seq % n``: for load tests, where content does not matter
    and computing it per frame would make the sender the bottleneck."""
    fn = synthetic_csi(n_pairs, seed=seed)
    table = [fn(i * 0.05, i) for i in range(n)]
    return lambda t, seq: table[seq % n]


# ---------------------------------------------------------------------------------------------
@dataclass
class SimNodeSpec:
    """What one simulated node does. Rates are frames per second of raw CSI."""

    node_id: int = 1
    rate_hz: float = 20.0
    jitter: float = 0.2  # each frame is sent up to +-jitter/2 periods off its slot (< 1)
    loss: float = 0.0  # probability a frame is lost (its sequence number is still used)
    reboot_every_s: float | None = None  # reboot after this long up...
    reboot_downtime_s: float = 2.0  # ...stay silent this long, then restart at sequence 0
    start_seq: int = 0
    freq_mhz: int = 2437
    rssi: int = -45
    noise: int = -92
    bind_host: str = ""  # e.g. 127.0.0.2 to look like a second board on loopback
    vitals_every_s: float | None = None  # also send edge-vitals packets (firmware: 1 s)
    max_frames: int | None = None  # stop after this many sequence numbers (sent + lost)
    csi_fn: CsiFn | None = None


@dataclass
class SimNodeStats:
    sent: int = 0  # raw CSI frames sent
    lost: int = 0  # frames the simulated link dropped (sequence used, nothing sent)
    reboots: int = 0
    send_errors: int = 0  # sendto failed (e.g. the socket buffer was full)
    packets: int = 0  # sibling packets sent
    seqs: list[int] = field(default_factory=list)  # kept only when SimNode(keep_seqs=True)


class SimNode:
    """One simulated node sending to ``target`` (host, port). Drive it with :meth:`send_due`."""

    def __init__(
        self,
        spec: SimNodeSpec,
        target: tuple[str, int],
        *,
        seed: int = 0,
        keep_seqs: bool = False,
    ) -> None:
        if not 0 <= spec.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if spec.rate_hz <= 0:
            raise ValueError("rate_hz must be > 0")
        self.spec = spec
        self.target = target
        self.rng = np.random.default_rng(seed)
        self.csi_fn = spec.csi_fn or synthetic_csi(64, seed=seed)
        self.stats = SimNodeStats()
        self.keep_seqs = keep_seqs
        self.period = 1.0 / spec.rate_hz
        self.sock: socket.socket | None = None
        self._boot_t = 0.0
        self._k = 0  # frames scheduled since boot
        self._next_t = 0.0
        self._down_until: float | None = None
        self._next_vitals = math.inf
        self._rssi = float(spec.rssi)

    # -- lifecycle ------------------------------------------------------------------------------
    def boot(self, now: float) -> None:
        """(Re)start: new socket (new source port), sequence from ``start_seq``."""
        self.close()
        family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        if self.spec.bind_host:
            self.sock.bind((self.spec.bind_host, 0))
        self._boot_t = now
        self._k = 0
        self._next_t = now + self._offset(0)
        self._down_until = None
        if self.spec.vitals_every_s:
            self._next_vitals = now + self.spec.vitals_every_s

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    @property
    def source_port(self) -> int | None:
        return self.sock.getsockname()[1] if self.sock is not None else None

    def _offset(self, k: int) -> float:
        j = self.spec.jitter
        return k * self.period + (self.rng.uniform(-j / 2, j / 2) * self.period if j else 0.0)

    @property
    def done(self) -> bool:
        m = self.spec.max_frames
        return m is not None and self.stats.sent + self.stats.lost + self.stats.send_errors >= m

    def next_due(self) -> float:
        """When this node next has something to do."""
        if self._down_until is not None:
            return self._down_until
        return min(self._next_t, self._next_vitals)

    # -- sending --------------------------------------------------------------------------------
    def send_due(self, now: float) -> int:
        """Send every frame scheduled up to ``now``; returns the number of frames sent."""
        spec = self.spec
        if self._down_until is not None:
            if now < self._down_until:
                return 0
            self.boot(self._down_until)
        elif self.sock is None:
            self.boot(now)
        sent = 0
        while self._next_t <= now and not self.done:
            t_frame = self._next_t
            if spec.reboot_every_s is not None and t_frame - self._boot_t >= spec.reboot_every_s:
                self.stats.reboots += 1
                self.close()
                self._down_until = t_frame + spec.reboot_downtime_s
                return sent
            seq = (spec.start_seq + self._k) & 0xFFFFFFFF  # u32 on the wire: wraps
            self._k += 1
            self._next_t = self._boot_t + self._offset(self._k)
            if spec.loss and self.rng.random() < spec.loss:
                self.stats.lost += 1
                continue
            self._rssi += 0.2 * (spec.rssi - self._rssi) + self.rng.normal(0, 0.7)
            pkt = encode_raw_frame(
                spec.node_id,
                seq,
                self.csi_fn(t_frame, seq),
                freq_mhz=spec.freq_mhz,
                rssi=self._rssi_i8(),
                noise=spec.noise,
            )
            if self._send(pkt):
                sent += 1
                self.stats.sent += 1
                if self.keep_seqs:
                    self.stats.seqs.append(seq)
        if now >= self._next_vitals:
            self._next_vitals = now + (spec.vitals_every_s or math.inf)
            pkt = encode_edge_vitals(
                spec.node_id,
                presence=True,
                breathing_bpm=15.0,
                rssi=self._rssi_i8(),
                timestamp_ms=int((now - self._boot_t) * 1000),
            )
            if self._send(pkt):
                self.stats.packets += 1
        return sent

    def _rssi_i8(self) -> int:
        return int(min(max(round(self._rssi), -128), 127))

    def _send(self, pkt: bytes) -> bool:
        assert self.sock is not None
        try:
            self.sock.sendto(pkt, self.target)
            return True
        except OSError as exc:  # BlockingIOError (buffer full), unreachable, ...
            self.stats.send_errors += 1
            log.debug("node %d: sendto failed: %s", self.spec.node_id, exc)
            return False


class SimFleet:
    """Many simulated nodes on one asyncio loop.

    \b
    fleet = SimFleet.uniform(4, rate_hz=20, target=("127.0.0.1", 5005))
    await fleet.run(duration=10)
    """

    def __init__(
        self,
        specs: Sequence[SimNodeSpec],
        target: tuple[str, int],
        *,
        seed: int = 0,
        tick_s: float = 0.002,
        keep_seqs: bool = False,
    ) -> None:
        self.nodes = [
            SimNode(s, target, seed=seed + i, keep_seqs=keep_seqs) for i, s in enumerate(specs)
        ]
        self.tick_s = tick_s
        self._stop: asyncio.Event | None = None

    @classmethod
    def uniform(
        cls,
        n: int,
        *,
        target: tuple[str, int],
        rate_hz: float = 20.0,
        first_id: int = 1,
        csi_factory: Callable[[int], CsiFn] | None = None,
        seed: int = 0,
        **spec_kw,
    ) -> SimFleet:
        """``n`` nodes with ids ``first_id...``; ``csi_factory(i)`` gives node i's content."""
        specs = [
            SimNodeSpec(
                node_id=first_id + i,
                rate_hz=rate_hz,
                csi_fn=csi_factory(i) if csi_factory else None,
                **spec_kw,
            )
            for i in range(n)
        ]
        return cls(specs, target, seed=seed)

    def stats(self) -> dict[int, SimNodeStats]:
        return {n.spec.node_id: n.stats for n in self.nodes}

    @property
    def sent(self) -> int:
        return sum(n.stats.sent for n in self.nodes)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, duration: float | None = None) -> None:
        """Send until ``duration`` seconds pass, every node is done (``max_frames``), or stop()."""
        self._stop = asyncio.Event()
        start = time.time()
        for node in self.nodes:
            node.boot(start)
        end = math.inf if duration is None else start + duration
        try:
            while not self._stop.is_set():
                now = time.time()
                if now >= end:
                    break
                for node in self.nodes:
                    node.send_due(now)
                if all(n.done for n in self.nodes):
                    break
                wake = min(min(n.next_due() for n in self.nodes), end)
                await asyncio.sleep(min(max(wake - time.time(), 0.0), self.tick_s))
        finally:
            for node in self.nodes:
                node.close()
