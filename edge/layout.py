"""Subcarrier layout of the ESP-IDF CSI buffer, and a canonical subcarrier order.

The raw buffer is the training fields concatenated, LLTF, then HT-LTF, then STBC-HT-LTF,
depending on the received PPDU (ESP-IDF Wi-Fi guide, "Channel State Information", table for
the classic MAC: ESP32/S2/S3/C3). Each field is stored in FFT-bin order, not ascending
subcarrier order:

=========  ====================  ============================  =========================
secondary  PPDU                  LLTF / HT-LTF / STBC-HT-LTF   bytes (pairs)
=========  ====================  ============================  =========================
none       non-HT                0~31,-32~-1                   128 (64)
none       HT20                  + 0~31,-32~-1                 256 (128)
none       HT20 STBC             + 0~31,-32~-1 twice           384 (192)
below      non-HT / HT20         0~63 (/ 0~63)                 128 / 256
below      HT20 STBC             0~63, 0~62, 0~62              380 (190)
below      HT40 / HT40 STBC      0~63, 0~63,-64~-1 (/ 0~60,-60~-1 twice)   384 / 612 (192 / 306)
above      non-HT / HT20         -64~-1 (/ -64~-1)             128 / 256
above      HT20 STBC             -64~-1, -62~-1, -62~-1        376 (188)
above      HT40 / HT40 STBC      -64~-1, 0~63,-64~-1 (/ 0~60,-60~-1 twice) 384 / 612
=========  ====================  ============================  =========================

With a secondary channel the 20 MHz fields are indexed in the 40 MHz FFT; re-centred on the
primary channel, pair ``i`` of the 64-pair LLTF is subcarrier ``i - 32`` in both cases.

Canonical grids (ascending subcarrier index; the same whatever the frame length):

* ``lltf``: -26..+26 (53 bins, DC null) relative to the primary channel: :data:`LLTF_SUBCARRIERS`;
* ``ht20``: -28..+28 (57 bins, DC null) for HT-LTF / STBC-HT-LTF of 20 MHz PPDUs;
* ``ht40``: -58..+58 (117 bins, -1/0/+1 null) for HT-LTF / STBC-HT-LTF of 40 MHz PPDUs.

Guard bins (outside the grid) are dropped; DC bins are 0 in the output. When a frame carries no
PPDU info (RuView UDP frames, jsonl) the layout is inferred from the length alone: 64 / 128 /
192 pairs = non-HT / HT20 / HT20+STBC without secondary channel (checked against a real RuView
capture: pairs 0 and 27-37 of every section are always zero, as that layout predicts), 190 =
below HT20 STBC, 188 = above HT20 STBC, 306 = HT40 STBC. When the PPDU info is known but the
frame is shorter than its layout (ESP32-CSI-Tool prints only the first 128 values by default)
the sections that are present are used.

``first_word_invalid``: on some chips the first 4 bytes (pairs 0 and 1) are garbage
(ESP32-CSI-Tool captures show ``38 96 2 0`` there); pass ``first_word_invalid=True`` to null
them.

Usage::

    from csi_edge.layout import lltf_canonical, LLTF_SUBCARRIERS, LLTF_VALID
    H = lltf_canonical(result.frames)          # complex64 [N, 53], H[:, 26] (DC) == 0
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from csi_edge.frames import FrameBatch, pairs_to_complex

LLTF_SUBCARRIERS = np.arange(-26, 27)
LLTF_VALID = LLTF_SUBCARRIERS != 0
#: canonical LLTF column -> its bin in a 64-pair HT20 buffer (raw order 0..31, then -32..-1)
LLTF_RAW_BINS = np.where(LLTF_SUBCARRIERS >= 0, LLTF_SUBCARRIERS, 64 + LLTF_SUBCARRIERS)
HT20_SUBCARRIERS = np.arange(-28, 29)
HT20_VALID = HT20_SUBCARRIERS != 0
HT40_SUBCARRIERS = np.arange(-58, 59)
HT40_VALID = np.abs(HT40_SUBCARRIERS) > 1

GRIDS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "lltf": (LLTF_SUBCARRIERS, LLTF_VALID),
    "ht20": (HT20_SUBCARRIERS, HT20_VALID),
    "ht40": (HT40_SUBCARRIERS, HT40_VALID),
}
SECTION_NAMES = ("lltf", "ht-ltf", "stbc-ht-ltf")

# Field orders of the ESP-IDF table: pair i -> subcarrier (see module docstring).
_ORDERS = {
    "n20": lambda: np.r_[0:32, -32:0],  # no secondary: 0~31,-32~-1
    "lo64": lambda: np.arange(64) - 32,  # below: 0~63 in the 40 MHz FFT, primary centre at +32
    "hi64": lambda: np.arange(64) - 32,  # above: -64~-1, primary centre at -32
    "lo63": lambda: np.arange(63) - 32,  # below, STBC: 0~62
    "hi62": lambda: np.arange(62) - 30,  # above, STBC: -62~-1
    "ht40": lambda: np.r_[0:64, -64:0],  # 40 MHz: 0~63,-64~-1
    "ht40s": lambda: np.r_[0:61, -60:0],  # 40 MHz STBC: 0~60,-60~-1
}
_GRID_OF = {
    "n20": "ht20",
    "lo64": "ht20",
    "hi64": "ht20",
    "lo63": "ht20",
    "hi62": "ht20",
    "ht40": "ht40",
    "ht40s": "ht40",
}

# (secondary, ht, bw40, stbc) -> field orders (LLTF first)
_TABLE = {
    (0, 0, 0, 0): ("n20",),
    (0, 1, 0, 0): ("n20", "n20"),
    (0, 1, 0, 1): ("n20", "n20", "n20"),
    (2, 0, 0, 0): ("lo64",),
    (2, 1, 0, 0): ("lo64", "lo64"),
    (2, 1, 0, 1): ("lo64", "lo63", "lo63"),
    (2, 1, 1, 0): ("lo64", "ht40"),
    (2, 1, 1, 1): ("lo64", "ht40s", "ht40s"),
    (1, 0, 0, 0): ("hi64",),
    (1, 1, 0, 0): ("hi64", "hi64"),
    (1, 1, 0, 1): ("hi64", "hi62", "hi62"),
    (1, 1, 1, 0): ("hi64", "ht40"),
    (1, 1, 1, 1): ("hi64", "ht40s", "ht40s"),
}
#: n_pairs -> PPDU assumed when the frame says nothing but its length
_BY_LENGTH = {
    64: (0, 0, 0, 0),
    128: (0, 1, 0, 0),
    192: (0, 1, 0, 1),
    190: (2, 1, 0, 1),
    188: (1, 1, 0, 1),
    306: (2, 1, 1, 1),
}


@dataclass(frozen=True)
class Section:
    """One training field inside a frame: raw pairs ``start .. start+n_pairs-1``."""

    name: str  # "lltf" | "ht-ltf" | "stbc-ht-ltf"
    start: int
    n_pairs: int
    grid: str  # canonical grid: "lltf" | "ht20" | "ht40"
    subcarriers: np.ndarray  # subcarrier index of each pair, in wire order

    def canonical_map(self) -> tuple[np.ndarray, np.ndarray]:
        """(raw pair indices, grid positions) of the pairs that land on valid grid bins."""
        grid, valid = GRIDS[self.grid]
        pos = self.subcarriers - grid[0]
        keep = (pos >= 0) & (pos < len(grid))
        keep[keep] &= valid[pos[keep]]
        return self.start + np.flatnonzero(keep), pos[keep]

    def null_pairs(self) -> np.ndarray:
        """Raw pair indices of guard and DC bins (not on a valid grid bin)."""
        used = self.canonical_map()[0]
        return np.setdiff1d(np.arange(self.start, self.start + self.n_pairs), used)


@dataclass(frozen=True)
class Layout:
    """Which sections a frame of ``n_pairs`` pairs carries, and the PPDU it was taken to be."""

    n_pairs: int
    secondary: int
    ht: bool
    bw40: bool
    stbc: bool
    inferred: bool  # True when the PPDU came from the length alone
    sections: tuple[Section, ...]

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


@lru_cache(maxsize=512)
def layout_for(
    n_pairs: int, sig_mode: int = -1, bandwidth: int = -1, secondary: int = -1, stbc: int = -1
) -> Layout | None:
    """The layout of a frame (``None`` when no known layout fits ``n_pairs``).

    Unknown PPDU fields are -1 (as in :data:`csi_edge.frames.META_DTYPE`).
    """
    key = None
    inferred = False
    if sig_mode >= 0 and secondary >= 0:
        ht = 1 if sig_mode >= 1 else 0
        bw40 = 1 if (bandwidth == 1 and ht and secondary in (1, 2)) else 0
        key = (secondary if secondary in (0, 1, 2) else 0, ht, bw40, 1 if (stbc == 1 and ht) else 0)
        if key not in _TABLE or _total(_TABLE[key]) < n_pairs:
            key = None
    if key is None:
        key = _BY_LENGTH.get(n_pairs)
        inferred = True
        if key is None:
            return None
    sections = []
    start = 0
    for name, order in zip(SECTION_NAMES, _TABLE[key], strict=False):
        sub = _ORDERS[order]()
        if start >= n_pairs:
            break
        if start + len(sub) > n_pairs:  # a printed prefix of the buffer: keep only whole fields
            break
        grid = "lltf" if name == "lltf" else _GRID_OF[order]
        sub.setflags(write=False)
        sections.append(Section(name, start, len(sub), grid, sub))
        start += len(sub)
    if not sections:
        return None
    sec, ht, bw40, st = key
    return Layout(n_pairs, sec, bool(ht), bool(bw40), bool(st), inferred, tuple(sections))


def _total(orders) -> int:
    return sum(len(_ORDERS[o]()) for o in orders)


def sections(
    n_pairs: int, sig_mode: int = -1, bandwidth: int = -1, secondary: int = -1, stbc: int = -1
) -> tuple[Section, ...]:
    """The training-field sections of a frame (empty when its length fits no layout)."""
    lay = layout_for(int(n_pairs), int(sig_mode), int(bandwidth), int(secondary), int(stbc))
    return lay.sections if lay else ()


def to_canonical(
    frames: FrameBatch,
    section: str = "lltf",
    *,
    bandwidth: int = 20,
    iq_order: str = "imag-first",
    first_word_invalid: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``section`` of every frame on its canonical grid: ``(complex64 [N, G], present bool [N])``.

    ``section`` is ``"lltf"``, ``"ht-ltf"`` or ``"stbc-ht-ltf"``; for the HT fields pick the
    grid with ``bandwidth`` (20: -28..28, 40: -58..58); frames whose field is on the other grid,
    or that lack the field, are all-zero rows with ``present`` False. Null bins are 0.
    """
    if section not in SECTION_NAMES:
        raise ValueError(f"section must be one of {SECTION_NAMES}, got {section!r}")
    want_grid = "lltf" if section == "lltf" else ("ht40" if bandwidth == 40 else "ht20")
    grid, _valid = GRIDS[want_grid]
    n = len(frames)
    out = np.zeros((n, len(grid)), np.complex64)
    present = np.zeros(n, bool)
    if n == 0:
        return out, present
    m = frames.meta
    # one key per PPDU combination; each field masked to its byte so odd values from text
    # input (negative, > 254) cannot spill into the neighbouring fields of the key
    combo = (
        m["n_pairs"].astype(np.int64) << 32
        | ((m["sig_mode"].astype(np.int64) + 1) & 0xFF) << 24
        | ((m["bandwidth"].astype(np.int64) + 1) & 0xFF) << 16
        | ((m["secondary"].astype(np.int64) + 1) & 0xFF) << 8
        | ((m["stbc"].astype(np.int64) + 1) & 0xFF)
    )
    uniq, inverse = np.unique(combo, return_inverse=True)
    for u, c in enumerate(uniq.tolist()):
        fields = (
            c >> 32,
            ((c >> 24) & 0xFF) - 1,
            ((c >> 16) & 0xFF) - 1,
            ((c >> 8) & 0xFF) - 1,
            (c & 0xFF) - 1,
        )
        lay = layout_for(*fields)
        sec = lay.section(section) if lay else None
        if sec is None or sec.grid != want_grid:
            continue
        src, dst = sec.canonical_map()
        if first_word_invalid:
            keep = src >= 2
            src, dst = src[keep], dst[keep]
        idx = np.flatnonzero(inverse == u) if len(uniq) > 1 else np.arange(n)
        byte = frames.offsets[idx][:, None] + 2 * src[None, :]
        pairs = np.stack((frames.iq[byte], frames.iq[byte + 1]), axis=-1)
        out[idx[:, None], dst[None, :]] = pairs_to_complex(pairs, iq_order)
        present[idx] = True
    return out, present


def lltf_canonical(
    frames: FrameBatch, iq_order: str = "imag-first", first_word_invalid: bool = False
) -> np.ndarray:
    """LLTF of every frame on subcarriers -26..+26: complex64 ``[N, 53]`` (DC and missing = 0)."""
    return to_canonical(frames, "lltf", iq_order=iq_order, first_word_invalid=first_word_invalid)[0]
