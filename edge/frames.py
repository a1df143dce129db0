"""One in-memory representation for CSI frames from every source.

A :class:`FrameBatch` holds N frames as arrays, never as a list of objects:

* ``meta``: a structured array (``META_DTYPE``), one row per frame;
* ``iq``: the raw ESP-IDF CSI buffers of all frames, concatenated, as int8, exactly as the
  node sent them (lossless: the I/Q order is applied only when complex values are asked for);
* ``offsets``: int64 of length N+1, frame ``i`` is ``iq[offsets[i]:offsets[i+1]]``;
* ``sources``: the table of source names (``"192.168.1.20"``, ``"/dev/ttyUSB0"``, a file name;
  ``"<name>#<mac>"`` for text lines that name their transmitter) that ``meta["src"]`` indexes;
* ``extra``: optional per-frame columns a capture carried that have no ``meta`` field (a host
  clock, a label, a device tag): name -> object array of N strings (None where a frame has none).
  Empty for the binary formats, so their fast paths pay nothing for it.

Frames keep the raw int8 buffer because lengths vary frame to frame on one node (64, 128 and
192 pairs were all seen in one real capture) and because int8 is 8x smaller than complex64.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

IQOrder = Literal["imag-first", "real-first"]
IQ_ORDERS: tuple[str, ...] = ("imag-first", "real-first")

#: Unknown values: -1 for signed fields, 0 for frequency/channel (as on the wire).
META_DTYPE = np.dtype(
    [
        ("t_rx", "f8"),  # receive time, unix seconds (gateway clock, or the capture's timestamp)
        ("src", "u4"),  # index into FrameBatch.sources
        ("node_id", "i2"),  # node id from the packet; -1 when the format has none
        ("seq", "i8"),  # per-boot sequence number; -1 when the format has none
        ("rssi", "i2"),  # dBm
        ("noise", "i2"),  # noise floor dBm; 0 when unknown
        ("freq_mhz", "u2"),  # 0 when unknown
        ("channel", "u1"),  # Wi-Fi channel number; 0 when unknown
        ("n_pairs", "u2"),  # number of (I, Q) int8 pairs in this frame
        ("sig_mode", "i1"),  # 0 non-HT, 1 HT, 3 VHT; -1 unknown
        ("bandwidth", "i1"),  # 0 = 20 MHz, 1 = 40 MHz; -1 unknown
        ("stbc", "i1"),  # 0/1; -1 unknown
        ("secondary", "i1"),  # secondary channel: 0 none, 1 above, 2 below; -1 unknown
        ("local_us", "i8"),  # node's own microseconds since boot; -1 unknown
        ("fmt", "u1"),  # FrameFormat code of the decoder that produced the frame
    ]
)


class FrameFormat:
    """Codes stored in ``meta["fmt"]``: which wire/text format a frame came from."""

    RUVIEW_RAW = 1
    RUVIEW_COMPRESSED = 2
    ESP_CSI = 3
    CSI_TOOL = 4
    RUVIEW_JSONL = 5
    ESPECTRE = 6
    NAMES = {
        1: "ruview-raw",
        2: "ruview-compressed",
        3: "esp-csi",
        4: "esp32-csi-tool",
        5: "ruview-jsonl",
        6: "espectre",
    }


def node_key(source: str, node_id: int) -> str:
    """Stable per-node key: nodes are told apart by (source address, node id).

    Node id 1 is the default on every unprovisioned RuView node, so the id alone is not unique;
    the source port changes on every reboot, so only the address (IP, serial port, file) counts.
    """
    return f"{source}#{int(node_id)}" if node_id >= 0 else source


def empty_meta(n: int) -> np.ndarray:
    """Metadata rows with every field set to its 'unknown' value."""
    meta = np.zeros(n, dtype=META_DTYPE)
    for name in ("node_id", "seq", "sig_mode", "bandwidth", "stbc", "secondary", "local_us"):
        meta[name] = -1
    return meta


@dataclass
class FrameBatch:
    """N CSI frames: metadata rows plus their raw int8 CSI buffers (see module docstring)."""

    meta: np.ndarray
    iq: np.ndarray
    offsets: np.ndarray
    sources: list[str] = field(default_factory=list)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.meta.dtype != META_DTYPE:
            raise TypeError("FrameBatch.meta must use META_DTYPE")
        if len(self.offsets) != len(self.meta) + 1:
            raise ValueError("FrameBatch.offsets must have len(meta) + 1 entries")
        for name, col in self.extra.items():
            if len(col) != len(self.meta):
                raise ValueError(f"FrameBatch.extra[{name!r}] must have one entry per frame")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, sources: Sequence[str] = ()) -> FrameBatch:
        return cls(empty_meta(0), np.zeros(0, np.int8), np.zeros(1, np.int64), list(sources))

    @classmethod
    def concat(cls, batches: Iterable[FrameBatch]) -> FrameBatch:
        """Join batches, merging their source tables."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        index: dict[str, int] = {}  # merged source table: name -> position (insertion order)
        metas, iqs, offs = [], [], []
        base = 0
        for b in batches:
            remap = np.array([index.setdefault(s, len(index)) for s in b.sources] or [0], np.uint32)
            m = b.meta.copy()
            if len(b.sources):
                m["src"] = remap[m["src"]]
            metas.append(m)
            iqs.append(b.iq[b.offsets[0] : b.offsets[-1]])
            offs.append(b.offsets[:-1] - b.offsets[0] + base)
            base += int(b.offsets[-1] - b.offsets[0])
        offs.append(np.array([base], np.int64))
        extra: dict[str, np.ndarray] = {}
        if any(b.extra for b in batches):  # union of the columns; None where a batch has none
            names = dict.fromkeys(n for b in batches for n in b.extra)
            extra = {
                n: np.concatenate(
                    [b.extra[n] if n in b.extra else np.full(len(b), None, object) for b in batches]
                )
                for n in names
            }
        return cls(
            np.concatenate(metas), np.concatenate(iqs), np.concatenate(offs), list(index), extra
        )

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, sel: slice | np.ndarray) -> FrameBatch:
        """A sub-batch (slice, index array or boolean mask); CSI bytes are gathered once."""
        idx = np.arange(len(self))[sel]
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        lens = ends - starts
        offsets = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        gather = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
        extra = {n: c[idx] for n, c in self.extra.items()}
        return FrameBatch(self.meta[idx], self.iq[gather], offsets, list(self.sources), extra)

    def raw(self, i: int) -> np.ndarray:
        """Frame ``i``'s raw int8 CSI buffer (a view)."""
        return self.iq[self.offsets[i] : self.offsets[i + 1]]

    def csi(self, i: int, iq_order: IQOrder = "imag-first") -> np.ndarray:
        """Frame ``i`` as complex64 in the node's raw subcarrier order."""
        return pairs_to_complex(self.raw(i).reshape(-1, 2), iq_order)

    def node_groups(
        self, key: Callable[[str, int], str] | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(node key, frame indices)`` per node, found with numpy rather than per frame;
        ``key(source, node_id)`` names each node (default :func:`node_key`; the gateway passes
        its node table's, which knows the inventory's identities)."""
        key = key or node_key
        pair = self.meta["src"].astype(np.int64) << 16 | (
            self.meta["node_id"].astype(np.int64) & 0xFFFF
        )
        uniq, inverse = np.unique(pair, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        for j, p in enumerate(uniq.tolist()):
            src, nid = p >> 16, (p & 0xFFFF) - ((p & 0x8000) << 1)  # back to signed int16
            yield (
                key(self.sources[src] if self.sources else "?", nid),
                order[bounds[j] : bounds[j + 1]],
            )

    def node_keys(self, key: Callable[[str, int], str] | None = None) -> np.ndarray:
        """Per-frame node key strings (object array); see :meth:`node_groups`."""
        out = np.empty(len(self), dtype=object)
        for key_, idx in self.node_groups(key):
            out[idx] = key_
        return out

    def by_length(
        self, iq_order: IQOrder = "imag-first"
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(n_pairs, frame_indices, complex64 [k, n_pairs])`` for each frame length.

        This is the vectorised way to get complex CSI out of a batch with mixed lengths.
        """
        n_pairs = self.meta["n_pairs"].astype(np.int64)
        for p in np.unique(n_pairs):
            idx = np.flatnonzero(n_pairs == p)
            if p == 0:
                yield 0, idx, np.zeros((len(idx), 0), np.complex64)
                continue
            gather = self.offsets[idx][:, None] + np.arange(2 * p)[None, :]
            pairs = self.iq[gather].reshape(len(idx), p, 2)
            yield int(p), idx, pairs_to_complex(pairs, iq_order)


def pairs_to_complex(pairs: np.ndarray, iq_order: IQOrder = "imag-first") -> np.ndarray:
    """int8 [..., 2] (I/Q pairs as on the wire) -> complex64 [...].

    ESP-IDF documents each subcarrier as (imaginary, real); ``real-first`` is for data sets made
    by tools that swapped it (RuView's own parsers, for one).
    """
    if iq_order not in IQ_ORDERS:
        raise ValueError(f"iq_order must be one of {IQ_ORDERS}, got {iq_order!r}")
    p = pairs.astype(np.float32)
    if iq_order == "imag-first":
        re, im = p[..., 1], p[..., 0]
    else:
        re, im = p[..., 0], p[..., 1]
    out = np.empty(re.shape, np.complex64)
    out.real, out.imag = re, im
    return out


@dataclass
class Packet:
    """A non-CSI packet (edge vitals, feature vector, mesh HEALTH, ...), decoded to named fields."""

    kind: str
    t_rx: float
    source: str
    node_id: int
    fields: dict

    def to_json(self) -> dict:
        return {
            "type": self.kind,
            "t": self.t_rx,
            "source": self.source,
            "node_id": self.node_id,
            **self.fields,
        }


def slug(node_key: str) -> str:
    """A node key as a safe identifier for MQTT topics, HA unique ids and file names."""
    return re.sub(r"[^A-Za-z0-9]+", "_", node_key).strip("_").lower() or "node"
