"""Per-node state: frames, lost, duplicates, reordered, reboots, rate, last seen, layouts, RSSI.

One implementation, used live (the UDP/serial ingest, the demo's console view) and offline
(``csi-edge decode --summary``). Nodes are keyed by (source address, node id) through
:func:`csi_edge.frames.node_key`: node id 1 is the default on every unprovisioned RuView node, so the
id alone does not tell nodes apart.

:meth:`NodeTable.update` is vectorised over a :class:`~csi_edge.frames.FrameBatch`: the UDP path
has to keep up with >= 50,000 frames/s on one core, so each batch is sorted by node once and
every per-node quantity is a segment reduction over all nodes at once; Python touches each node
once per batch (to store its results), never each frame.

Sequence accounting (RTP-style, RFC 3550 appendix A.1 in spirit): per boot of a node, sequences are
unwrapped from u32 to int64, and ``lost = (max - min + 1) - unique``, so a late (reordered) frame
that fills a gap lowers ``lost`` again instead of being counted twice. A frame whose sequence is
not newer than the newest seen is

* a **duplicate** if that sequence was already received,
* **reordered** (late) otherwise,
* a **reboot** (sequence restart) if it jumps back by more than ``reorder_window`` frames, or
  by any amount ``reboot_gap_s`` seconds or more after the newest frame arrived (a late or
  duplicated datagram trails the newest one by milliseconds; a rebooting ESP32 is silent for
  well over a second while it boots and rejoins WiFi).

A frame whose sequence is **far ahead** of what the node can have sent since its newest frame
(more than ``jump_slack`` plus ``4 x`` its measured rate -- or ``jump_rate_hz`` while the rate is
unknown -- times the time since) is never taken as that many lost frames. It is held back: if
the node's next frame continues from it, the node restarted with a new sequence (a reboot); if
the next frame continues the old sequence, the far frame was forged or corrupt and is counted
under ``seq_outliers`` and left out of the sequence accounting. (One forged datagram with a
sequence 2^30 ahead once set a node's ``lost`` to 1,073,741,824.)

Rates: :meth:`NodeState.rate_hz` is frames over the time they span within a window, and unknown
(None) until that span is at least ``min_rate_span_s`` (1 s live): datagrams that arrive in one burst (a
stalled Wi-Fi link, a gateway pause) span microseconds and once gave 482,034 Hz.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from csi_edge.frames import FrameBatch, node_key

CHUNK_S = 0.25  # rate/RSSI history granularity (seconds per entry)
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
    last_seq_raw: int = -1  # raw u32 sequence of the last frame received
    last_seq_u: int = 0  # ... and its unwrapped value
    seq_max_t: float = float("nan")  # receive time of the newest frame (seq_max)
    # unwrapped sequences received lately (duplicate detection): compacted lazily
    recent_seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pending_seqs: list = field(default_factory=list)
    #: frames whose sequence jumped far ahead and were not followed (forged or corrupt)
    seq_outliers: int = 0
    #: (raw seq, t_rx) of a far jump waiting for the node's next frame to confirm or refute it
    pending_jump: tuple[int, float] | None = None
    # per update: (first t, last t, frames, rssi sum): rate and mean RSSI over a recent window
    chunks: deque = field(default_factory=lambda: deque(maxlen=1024))
    ceiling_key: float | None = None  # the history entry ceiling_hz was computed at
    ceiling_hz: float = 0.0  # NodeTable._ceiling_hz's cached answer
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

    def window(self, window_s: float = 10.0) -> tuple[int, float, float]:
        """(frames, time span, RSSI sum) over the updates of the last ``window_s`` seconds."""
        if not self.chunks:
            return 0, 0.0, 0.0
        newest = self.chunks[-1][1]
        frames, rssi, t0 = 0, 0.0, newest
        for t_first, t_last, count, rssi_sum in reversed(self.chunks):
            if frames and t_last < newest - window_s:
                break
            frames += count
            rssi += rssi_sum
            t0 = min(t0, t_first)
        return frames, newest - t0, rssi

    def rate_hz(self, window_s: float = 10.0, min_span_s: float = 1.0) -> float | None:
        """Frames per second over the recent window; None (unknown) until the frames in it span
        ``min_span_s``.

        Frames over time span rather than 1/median gap: gateways that timestamp per receive batch
        give many zero gaps, which would wreck a median but not a span. The minimum span keeps a
        burst (many frames received within microseconds) from reading as a huge rate.
        """
        frames, span, _ = self.window(window_s)
        if frames < 2 or span <= 0 or span < min_span_s:
            return None
        return (frames - 1) / span

    def rssi_mean(self, window_s: float = 10.0) -> float | None:
        frames, _, rssi = self.window(window_s)
        return rssi / frames if frames else None

    def seen_seqs(self, reorder_window: int) -> np.ndarray:
        """Unwrapped sequences received within ``2 * reorder_window`` of the newest."""
        if self.pending_seqs:
            self.recent_seqs = np.concatenate([self.recent_seqs, *self.pending_seqs])
            self.pending_seqs = []
        if self.seq_max is not None and len(self.recent_seqs) > 2 * reorder_window:
            r = self.recent_seqs
            self.recent_seqs = r[r > self.seq_max - 2 * reorder_window]
        return self.recent_seqs


class NodeTable:
    """All nodes seen so far, updated one :class:`FrameBatch` at a time.

    ``clock`` gives "now" for the online/offline decision: pass ``time.time`` live; leave it
    ``None`` offline, and "now" is the latest receive time in the table (so a capture recorded
    yesterday does not show every node offline).

    ``key(source, node_id)`` names a new (source, node id) pair, once, when its first frame
    arrives (default :func:`~csi_edge.frames.node_key`, the wire key). The gateway passes the
    node inventory's identity key (``mac_...``, ``id_<gateway>_<n>``): a board heard from a new
    address then continues its own state (counters, rate, and downstream its baseline), and
    :attr:`NodeState.source` follows it to the new address.
    """

    def __init__(
        self,
        *,
        offline_after_s: float = 5.0,
        reorder_window: int = 64,
        reboot_gap_s: float = 0.25,
        rate_window_s: float = 10.0,
        min_rate_span_s: float | None = None,
        jump_slack: int = 1024,
        jump_rate_hz: float = 1000.0,
        clock: Callable[[], float] | None = None,
        key: Callable[[str, int], str] | None = None,
    ) -> None:
        self.key = key or node_key
        self.offline_after_s = offline_after_s
        self.reorder_window = reorder_window
        self.reboot_gap_s = reboot_gap_s
        self.rate_window_s = rate_window_s
        # live (a clock): a rate needs a second of frames; offline a capture is what it is
        self.min_rate_span_s = (
            min_rate_span_s if min_rate_span_s is not None else (1.0 if clock else 0.0)
        )
        self.jump_slack = jump_slack
        self.jump_rate_hz = jump_rate_hz
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

    def _state(self, source: str, node_id: int) -> NodeState:
        st = self._by_src_node.get((source, node_id))
        if st is None:
            key = self.key(source, node_id)
            st = self.nodes.get(key)
            if st is None:
                st = self.nodes[key] = NodeState(key=key, source=source, node_id=node_id)
            st.source = source  # the same board from a new address: it lives there now
            self._by_src_node[(source, node_id)] = st
        elif st.source != source:
            st.source = source  # back at an address it had before
        return st

    def key_of(self, source: str, node_id: int) -> str:
        """The key frames of (source, node id) are kept under (see ``key``)."""
        st = self._by_src_node.get((source, node_id))
        return st.key if st is not None else self.key(source, node_id)

    def known(self, source: str, node_id: int) -> bool:
        """Whether (source, node id) is a node already (admission checks only new ones)."""
        return (source, node_id) in self._by_src_node or node_key(source, node_id) in self.nodes

    def forget(self, silent_since: float) -> list[str]:
        """Remove every node whose last frame arrived before ``silent_since``; their keys."""
        gone = [k for k, st in self.nodes.items() if st.last_seen < silent_since]
        if gone:
            for k in gone:
                del self.nodes[k]
            dead = set(gone)  # several (source spelling, id) pairs may name one node
            self._by_src_node = {
                sk: st for sk, st in self._by_src_node.items() if st.key not in dead
            }
        return gone

    # -- update -------------------------------------------------------------------------------
    def update(self, batch: FrameBatch) -> None:
        """Account every frame of ``batch`` (in arrival order) to its node.

        Vectorised over all nodes at once: frames are sorted by node (stably, so each node's
        frames keep their arrival order) and every per-node quantity is a segment reduction.
        Only nodes whose sequence did something unusual in this batch (a gap filled late, a
        duplicate, a restart) take the per-node path.
        """
        n = len(batch)
        if n == 0:
            return
        meta = batch.meta
        gkey = (meta["src"].astype(np.int64) << 16) | (meta["node_id"].astype(np.int64) & 0xFFFF)
        if (gkey == gkey[0]).all():
            uniq, order, starts = gkey[:1], None, np.zeros(1, np.int64)
        else:
            order = np.argsort(gkey, kind="stable")  # stable: each node keeps arrival order
            sorted_keys = gkey[order]
            starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            uniq = sorted_keys[starts]
        ends = np.r_[starts[1:], n]
        counts = ends - starts
        states = []
        for g in uniq.tolist():
            s, node_id = g >> 16, g & 0xFFFF
            node_id = node_id - 0x10000 if node_id >= 0x8000 else node_id
            states.append(self._state(batch.sources[s] if s < len(batch.sources) else "?", node_id))

        def col(name: str) -> np.ndarray:
            c = meta[name]
            return c if order is None else c[order]

        t = col("t_rx")
        rssi = col("rssi").astype(np.int64)
        n_pairs = col("n_pairs").astype(np.int64)
        last = ends - 1
        t_first = np.minimum.reduceat(t, starts)
        t_last = np.maximum.reduceat(t, starts)
        rssi_sum = np.add.reduceat(rssi, starts)
        # per node, per layout: frame counts (one small loop over the distinct pairs)
        if (n_pairs == n_pairs[0]).all():
            combo, combo_n = np.arange(len(states)) << 16 | n_pairs[0], counts
        else:
            seg = np.repeat(np.arange(len(states)), counts)
            combo, combo_n = np.unique(seg << 16 | n_pairs, return_counts=True)
        for c, k in zip(combo.tolist(), combo_n.tolist(), strict=True):
            sub = states[c >> 16].subcarriers
            sub[c & 0xFFFF] = sub.get(c & 0xFFFF, 0) + k
        rows = zip(
            states,
            counts.tolist(),
            t_first.tolist(),
            t_last.tolist(),
            rssi_sum.tolist(),
            rssi[last].tolist(),
            col("noise")[last].tolist(),
            col("freq_mhz")[last].tolist(),
            strict=True,
        )
        for st, k, t0, t1, rs, r_last, noise, freq in rows:
            if st.frames == 0:
                st.first_seen = t0
            st.frames += k
            st.last_seen = t1 if not st.last_seen >= t1 else st.last_seen
            last = st.chunks[-1] if st.chunks else None
            if last is not None and t0 - last[0] < CHUNK_S and t0 >= last[0]:
                # one entry per CHUNK_S, not per batch: the summary walks these every report
                st.chunks[-1] = (last[0], max(last[1], t1), last[2] + k, last[3] + rs)
            else:
                st.chunks.append((t0, t1, k, rs))
            st.last_rssi, st.noise = r_last, noise
            st.freq_mhz = freq or st.freq_mhz
        self._sequences(states, col("seq"), t, starts, ends, counts)
        self.frames += n
        self.latest_t = max(self.latest_t, float(t_last.max()))

    def _sequences(self, states, seq, t, starts, ends, counts) -> None:
        """Sequence bookkeeping: one vectorised pass for the normal case (each node's sequence
        strictly increasing from where it left off), the per-node path for the rest."""
        n = len(seq)
        if not (seq >= 0).all():
            for i, st in enumerate(states):
                s = seq[starts[i] : ends[i]]
                keep = s >= 0
                if keep.any():
                    self._account_sequences(
                        st, s[keep].astype(np.int64), t[starts[i] : ends[i]][keep]
                    )
            return
        seq = seq.astype(np.int64)
        is_new = np.array([st.seq_max is None for st in states])
        last_raw = np.array([st.last_seq_raw for st in states], np.int64)
        last_u = np.array([st.last_seq_u for st in states], np.int64)
        at_max = np.array(
            [
                (st.seq_max is None or st.last_seq_u == st.seq_max) and st.pending_jump is None
                for st in states
            ]
        )
        max_t = np.array([st.seq_max_t if st.seq_max is not None else np.nan for st in states])
        ceil_hz = np.array([self._ceiling_hz(st) for st in states])
        # x: per-frame increments of the unwrapped sequence; at a node's first frame in this
        # batch, the jump from its last frame (old node) or the raw value itself (new node)
        x = np.empty(n, np.int64)
        x[1:] = _wrap_delta(np.diff(seq))
        x[starts] = np.where(is_new, seq[starts], _wrap_delta(seq[starts] - last_raw))
        base = np.where(is_new, 0, last_u)
        cs = np.cumsum(x)
        offset = cs[starts] - x[starts] - base
        u = cs - np.repeat(offset, counts)
        step_ok = (x > 0) & (x <= self.jump_slack)  # a big step inside a batch: slow path
        # a node's first frame in this batch: at most what its rate allows since its newest
        since = np.nan_to_num(t[starts] - max_t, nan=0.0).clip(0.0)
        step_ok[starts] = (x[starts] > 0) & (x[starts] <= self.jump_slack + ceil_hz * since)
        step_ok[starts[is_new]] = True
        ok = np.logical_and.reduceat(step_ok, starts) & at_max
        u_first, u_last = u[starts], u[ends - 1]
        for i, st in enumerate(states):
            a, b = int(starts[i]), int(ends[i])
            if not ok[i]:
                self._account_sequences(st, seq[a:b], t[a:b])
                continue
            # fast path: strictly increasing from the node's newest frame
            if st.seq_max is None:
                st.seq_min = int(u_first[i])
            st.seq_max = st.last_seq_u = int(u_last[i])
            st.seq_unique += b - a
            st.last_seq_raw = int(seq[b - 1])
            st.seq_max_t = float(t[b - 1])
            st.pending_seqs.append(u[a:b])
            if len(st.pending_seqs) > 64:
                st.seen_seqs(self.reorder_window)

    def _ceiling_hz(self, st: NodeState) -> float:
        """The highest frame rate a far sequence jump is checked against (see module doc).

        Cached per rate-history entry (one per ``CHUNK_S``): it is asked for every node in
        every receive batch, and walking the history each time was 28 % of the ingest loop's
        CPU at 64 nodes x 50 Hz (py-spy on scripts/bench_gateway_load.py); a bound of 4x the
        rate does not need the last quarter second."""
        key = st.chunks[-1][0] if st.chunks else None
        if key is None or key != st.ceiling_key:
            rate = st.rate_hz(self.rate_window_s, self.min_rate_span_s)
            st.ceiling_hz = self.jump_rate_hz if rate is None else max(4.0 * rate, 100.0)
            st.ceiling_key = key
        return st.ceiling_hz

    def _account_sequences(self, st: NodeState, seq: np.ndarray, t: np.ndarray) -> None:
        """Sequence bookkeeping for one node's frames, split at reboots (rare: loop per reboot)."""
        W = self.reorder_window
        if st.pending_jump is not None:  # a far jump held back: the frames after it decide
            seq = np.concatenate(([st.pending_jump[0]], seq)).astype(np.int64)
            t = np.concatenate(([st.pending_jump[1]], t))
            st.pending_jump = None
        ceiling = self._ceiling_hz(st)
        while len(seq):
            if st.seq_max is None:
                base = int(seq[0])
                u = base + np.concatenate(([0], np.cumsum(_wrap_delta(np.diff(seq)))))
                prev_max = u[0] - 1  # first frame of a boot is "new"
            else:
                # unwrap relative to the last sequence received, continuing its unwrapped value
                steps = _wrap_delta(np.diff(np.concatenate(([st.last_seq_raw], seq))))
                u = st.last_seq_u + np.cumsum(steps)
                prev_max = st.seq_max
            run_max = np.maximum.accumulate(np.concatenate(([prev_max], u)))
            d = u - run_max[:-1]  # > 0: newer than everything so far
            # receive time of the newest frame before each frame (time since the sequence moved)
            newest = np.where(d > 0, np.arange(len(d)), -1)
            before = np.maximum.accumulate(np.concatenate(([-1], newest[:-1])))
            t_newest = np.where(before >= 0, t[np.maximum(before, 0)], st.seq_max_t)
            restart = (d <= -W) | ((d <= 0) & (t - t_newest >= self.reboot_gap_s))
            since = np.nan_to_num(t - t_newest, nan=0.0).clip(0.0)
            jump = d > self.jump_slack + ceiling * since
            if st.seq_max is None:
                jump[0] = False  # the first frame of a boot starts wherever it starts
            odd = restart | jump
            cut = int(np.argmax(odd)) if odd.any() else len(seq)
            self._account_segment(st, u[:cut], d[:cut], seq[:cut], t[:cut])
            if cut == len(seq):
                return
            if jump[cut]:
                if cut + 1 == len(seq):  # nothing after it yet: wait for the next frame
                    st.pending_jump = (int(seq[cut]), float(t[cut]))
                    return
                step = int(_wrap_delta(np.int64(seq[cut + 1] - seq[cut])))
                follows = 0 < step <= self.jump_slack + ceiling * max(t[cut + 1] - t[cut], 0.0)
                if not follows:  # the old sequence goes on: the far frame was forged/corrupt
                    st.seq_outliers += 1
                    seq, t = np.delete(seq, cut), np.delete(t, cut)
                    seq, t = seq[cut:], t[cut:]
                    continue
                # the node goes on from the far frame: a restart with a new sequence
            # reboot: close the current boot and start a new one at frame `cut`; the rate window
            # restarts too (the silence while the node rebooted is not its frame rate)
            st.reboots += 1
            after = len(seq) - cut
            st.chunks.clear()
            st.chunks.append((float(t[cut]), float(t[-1]), after, (st.last_rssi or 0) * after))
            st.lost_closed = st.lost
            st.seq_min = st.seq_max = None
            st.seq_unique = 0
            st.recent_seqs = np.zeros(0, np.int64)
            st.pending_seqs = []
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
            seen_before = np.isin(u, st.seen_seqs(W))
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
        st.last_seq_raw, st.last_seq_u = int(seq[-1]), int(u[-1])
        if (d > 0).any():
            st.seq_max_t = float(t[np.flatnonzero(d > 0)[-1]])
        st.pending_seqs.append(u)
        st.seen_seqs(W)

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
            rssi_mean = st.rssi_mean(self.rate_window_s)
            out[key] = {
                "node_id": st.node_id,
                "source": st.source,
                "frames": st.frames,
                "lost": st.lost,
                "duplicates": st.duplicates,
                "reordered": st.reordered,
                "reboots": st.reboots,
                "seq_outliers": st.seq_outliers,
                "rate_hz": _round(st.rate_hz(self.rate_window_s, self.min_rate_span_s), 3),
                "subcarriers": {str(p): c for p, c in sorted(st.subcarriers.items())},
                # 0 dBm is what formats without a trustworthy RSSI store (RuView .csi.jsonl):
                # no received Wi-Fi frame is that strong, so report it as unknown
                "rssi": st.last_rssi or None,
                "rssi_mean": round(rssi_mean, 1) if rssi_mean else None,
                "noise": st.noise,
                "freq_mhz": st.freq_mhz or None,
                "first_seen": st.first_seen,
                "last_seen": st.last_seen,
                "online": self.online(st, now),
            }
        return out


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(x, nd)
