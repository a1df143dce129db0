"""Per-node state: frames, lost, duplicates, reordered, reboots, rate, last seen, layouts, RSSI.

One implementation, used live (the UDP/serial ingest, the demo's console view) and offline
(``csi-edge decode --summary``). Nodes are keyed by (source address, node id) through
:func:`edge.frames.node_key`: node id 1 is the default on every unprovisioned RuView node, so the
id alone does not tell nodes apart.

:meth:`NodeTable.update` is vectorised over a :class:`~edge.frames.FrameBatch`: the UDP path
has to keep up with >= 50,000 frames/s on one core, so the work per batch is a handful of numpy
calls per node, never a Python loop per frame.

Sequence accounting (RTP-style, RFC 3550 appendix A.1 in spirit): per boot of a node, sequences are
unwrapped from u32 to int64, and ``lost = (max - min + 1) - unique``, so a late (reordered) frame
that fills a gap lowers ``lost`` again instead of being counted twice. A frame whose sequence is
not newer than the newest seen is

* a **duplicate** if that sequence was already received,
* **reordered** (late) otherwise,
* a **reboot** (sequence restart) if it jumps back by more than ``reorder_window`` frames, or by
  any amount after a silence of ``reboot_gap_s`` seconds (a late or duplicated datagram arrives
  within milliseconds of its neighbours; a rebooted node needs seconds to rejoin WiFi).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.frames import FrameBatch, node_key

SEQ_MOD = 1 << 32  # RuView sequences are u32 and wrap
_HALF = 1 << 31


def _wrap_delta(d: np.ndarray) -> np.ndarray:
    """Signed difference of u32 sequence numbers, in [-2^31, 2^31)."""
    return (d + _HALF) % SEQ_MOD - _HALF


@dataclass
class NodeState:
    """Counters and recent history of one node (one (source, node id) pair)."""

    key: str
    source: str
    node_id: int
    frames: int = 0
    duplicates: int = 0
    reordered: int = 0
    reboots: int = 0
    lost_closed: int = 0  # lost frames of boots that have ended (before the last reboot)
    first_seen: float = float("nan")
    last_seen: float = float("nan")
    # current boot: unwrapped sequence bookkeeping (None until a frame with a sequence arrives)
    seq_min: int | None = None
    seq_max: int | None = None
    seq_unique: int = 0
    last_seq_raw: int = -1
    recent_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # recent receive times and RSSI (ring, newest last)
    recent_t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    recent_rssi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    last_rssi: int | None = None
    noise: int | None = None
    freq_mhz: int = 0
    subcarriers: dict[int, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Frames missing from the sequence (gaps), over all boots; late arrivals fill gaps."""
        open_lost = 0
        if self.seq_min is not None and self.seq_max is not None:
            open_lost = self.seq_max - self.seq_min + 1 - self.seq_unique
        return self.lost_closed + max(open_lost, 0)

    def rate_hz(self) -> float:
        """Frames per second over the recent receive-time window (0.0 with fewer than 2 frames).

        Frames over time span rather than 1/median gap: gateways that timestamp per receive batch
        give many zero gaps, which would wreck a median but not a span.
        """
        t = self.recent_t
        if len(t) < 2:
            return 0.0
        span = float(t[-1] - t[0])
        return (len(t) - 1) / span if span > 0 else 0.0

    def median_gap_ms(self) -> float | None:
        if len(self.recent_t) < 2:
            return None
        return float(np.median(np.diff(self.recent_t)) * 1e3)


class NodeTable:
    """All nodes seen so far, updated one :class:`FrameBatch` at a time.

    ``clock`` gives "now" for the online/offline decision: pass ``time.time`` live; leave it
    ``None`` offline, and "now" is the latest receive time in the table (so a capture recorded
    yesterday does not show every node offline).
    """

    def __init__(
        self,
        *,
        offline_after_s: float = 5.0,
        reorder_window: int = 64,
        reboot_gap_s: float = 1.0,
        rate_window: int = 256,
        rate_window_s: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.offline_after_s = offline_after_s
        self.reorder_window = reorder_window
        self.reboot_gap_s = reboot_gap_s
        self.rate_window = rate_window
        self.rate_window_s = rate_window_s
        self.clock = clock
        self.nodes: dict[str, NodeState] = {}
        self._by_src_node: dict[tuple[str, int], NodeState] = {}
        self.frames = 0
        self.latest_t = float("-inf")

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, key: str) -> NodeState:
        return self.nodes[key]

    def __contains__(self, key: object) -> bool:
        return key in self.nodes

    # -- update -------------------------------------------------------------------------------
    def update(self, batch: FrameBatch) -> None:
        """Account every frame of ``batch`` (in arrival order) to its node."""
        n = len(batch)
        if n == 0:
            return
        meta = batch.meta
        src = meta["src"].astype(np.int64)
        nid = meta["node_id"].astype(np.int64)
        gkey = (src << 16) | (nid & 0xFFFF)
        uniq, inverse = np.unique(gkey, return_inverse=True)
        if len(uniq) == 1:
            groups = [np.arange(n)]
        else:
            order = np.argsort(inverse, kind="stable")  # stable: keeps arrival order per node
            bounds = np.flatnonzero(np.diff(inverse[order])) + 1
            groups = np.split(order, bounds)
        for g, idx in zip(uniq.tolist(), groups):
            s, node_id = g >> 16, g & 0xFFFF
            node_id = node_id - 0x10000 if node_id >= 0x8000 else node_id
            source = batch.sources[s] if s < len(batch.sources) else "?"
            st = self._by_src_node.get((source, node_id))
            if st is None:
                key = node_key(source, node_id)
                st = self.nodes.get(key)
                if st is None:
                    st = self.nodes[key] = NodeState(key=key, source=source, node_id=node_id)
                self._by_src_node[(source, node_id)] = st
            self._update_node(st, meta[idx])
        self.frames += n
        self.latest_t = max(self.latest_t, float(meta["t_rx"].max()))

    def _update_node(self, st: NodeState, m: np.ndarray) -> None:
        k = len(m)
        t = m["t_rx"]
        st.frames += k
        if st.frames == k:
            st.first_seen = float(t[0])
        st.last_seen = float(t[-1]) if np.isnan(st.last_seen) else max(st.last_seen, float(t[-1]))
        st.recent_t = _tail(st.recent_t, t, self.rate_window)
        if self.rate_window_s > 0 and len(st.recent_t) > 1:
            st.recent_t = st.recent_t[st.recent_t >= st.recent_t[-1] - self.rate_window_s]
        rssi = m["rssi"]
        st.recent_rssi = _tail(st.recent_rssi, rssi, self.rate_window)
        st.last_rssi = int(rssi[-1])
        st.noise = int(m["noise"][-1])
        st.freq_mhz = int(m["freq_mhz"][-1]) or st.freq_mhz
        pairs, counts = np.unique(m["n_pairs"], return_counts=True)
        for p, c in zip(pairs.tolist(), counts.tolist()):
            st.subcarriers[p] = st.subcarriers.get(p, 0) + c
        seq = m["seq"]
        has_seq = seq >= 0
        if not has_seq.any():
            return
        if not has_seq.all():
            seq, t = seq[has_seq], t[has_seq]
        self._account_sequences(st, seq.astype(np.int64), t)

    def _account_sequences(self, st: NodeState, seq: np.ndarray, t: np.ndarray) -> None:
        """Sequence bookkeeping for one node's frames, split at reboots (rare: loop per reboot)."""
        W = self.reorder_window
        while len(seq):
            if st.seq_max is None:
                base, ref_t = int(seq[0]), None
                u = base + np.concatenate(([0], np.cumsum(_wrap_delta(np.diff(seq)))))
                prev_max = u[0] - 1  # first frame of a boot is "new"
            else:
                # unwrap relative to the last raw sequence seen, continuing its unwrapped value
                last_u = st.seq_max + int(_wrap_delta(np.int64(st.last_seq_raw - (st.seq_max % SEQ_MOD))))
                steps = _wrap_delta(np.diff(np.concatenate(([st.last_seq_raw], seq))))
                u = last_u + np.cumsum(steps)
                prev_max = st.seq_max
                ref_t = st.last_seen_seq_t
            run_max = np.maximum.accumulate(np.concatenate(([prev_max], u)))
            d = u - run_max[:-1]  # > 0: newer than everything so far
            gaps = np.diff(np.concatenate(([ref_t if ref_t is not None else t[0]], t)))
            restart = (d <= -W) | ((d <= 0) & (gaps >= self.reboot_gap_s))
            cut = int(np.argmax(restart)) if restart.any() else len(seq)
            if cut < len(seq) and cut == 0 and st.seq_max is None:
                cut = len(seq)  # cannot restart on the first frame of a boot (defensive)
            self._account_segment(st, u[:cut], d[:cut], seq[:cut], t[:cut])
            if cut == len(seq):
                return
            # reboot: close the current boot and start a new one at frame `cut`
            st.reboots += 1
            st.lost_closed = st.lost
            st.seq_min = st.seq_max = None
            st.seq_unique = 0
            st.recent_seqs = np.zeros(0, np.int64)
            seq, t = seq[cut:], t[cut:]

    def _account_segment(
        self, st: NodeState, u: np.ndarray, d: np.ndarray, seq: np.ndarray, t: np.ndarray
    ) -> None:
        if len(u) == 0:
            return
        W = self.reorder_window
        if (d > 0).all() and (len(u) == 1 or (np.diff(u) > 0).all()):
            # fast path (the normal case): strictly increasing, nothing seen twice
            new = len(u)
        else:
            seen_before = np.isin(u, st.recent_seqs)
            _, first_idx = np.unique(u, return_index=True)
            first = np.zeros(len(u), bool)
            first[first_idx] = True
            dup = seen_before | ~first
            st.duplicates += int(dup.sum())
            st.reordered += int(((d < 0) & ~dup).sum())
            new = int((~dup).sum())
        st.seq_unique += new
        lo, hi = int(u.min()), int(u.max())
        st.seq_min = lo if st.seq_min is None else min(st.seq_min, lo)
        st.seq_max = hi if st.seq_max is None else max(st.seq_max, hi)
        st.last_seq_raw = int(seq[-1])
        st.last_seen_seq_t = float(t[-1])
        recent = np.concatenate((st.recent_seqs, u))
        st.recent_seqs = recent[recent > st.seq_max - 2 * W]

    # -- reading ------------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock() if self.clock is not None else self.latest_t

    def online(self, st: NodeState, now: float | None = None) -> bool:
        now = self.now() if now is None else now
        return bool(now - st.last_seen <= self.offline_after_s)

    def summary(self, now: float | None = None) -> dict[str, dict]:
        """``{"<key>": {"node_id", "frames", "lost", "duplicates", "reboots", "rate_hz",
        "subcarriers": {"64": n}, ...}}`` (the ``csi-edge decode --summary --json`` contract)."""
        now = self.now() if now is None else now
        out = {}
        for key, st in self.nodes.items():
            rssi = st.recent_rssi
            gap = st.median_gap_ms()
            out[key] = {
                "node_id": st.node_id,
                "source": st.source,
                "frames": st.frames,
                "lost": st.lost,
                "duplicates": st.duplicates,
                "reordered": st.reordered,
                "reboots": st.reboots,
                "rate_hz": round(st.rate_hz(), 3),
                "median_gap_ms": None if gap is None else round(gap, 3),
                "subcarriers": {str(p): c for p, c in sorted(st.subcarriers.items())},
                "rssi": st.last_rssi,
                "rssi_mean": round(float(rssi.mean()), 1) if len(rssi) else None,
                "noise": st.noise,
                "freq_mhz": st.freq_mhz or None,
                "first_seen": st.first_seen,
                "last_seen": st.last_seen,
                "online": self.online(st, now),
            }
        return out


# NodeState gets this attribute lazily in _account_segment; declare it for type checkers.
NodeState.last_seen_seq_t = float("nan")  # type: ignore[attr-defined]


def _tail(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` values of ``old`` followed by ``new``."""
    if len(new) >= n:
        return np.array(new[-n:], dtype=old.dtype)
    keep = n - len(new)
    return np.concatenate((old[-keep:] if len(old) > keep else old, new.astype(old.dtype)))


def monotonic_wall() -> float:
    """Wall-clock seconds (receive timestamps are unix time, like captures)."""
    return time.time()
