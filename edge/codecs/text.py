"""CSI lines printed on a serial console, as people keep them: esp-csi ``CSI_DATA`` (3 layouts),
ESP32-CSI-Tool, and every variant of those their users' scripts produce.

The layouts and their quirks are documented, with examples, in ``docs/text-captures.md``.

How a line is read:

1. The **CSI array** is found by its syntax wherever it sits: ``[...]`` (quoted or not), or a
   quoted list without brackets (``"1,2,3"``); values are separated by commas and/or spaces. A
   field with neither is base64 (esp-radar) when it is the data column.
2. The **columns** are named by the last header line seen (``type,...,len,...``): known names
   (``rssi``, ``noise_floor``, ``local_timestamp``, ``len``, ``mac`` ...) fill frame metadata in
   any order; unknown columns (host clocks, labels, device tags) are kept per frame in
   ``FrameBatch.extra`` under their header name (``col<i>`` when the header has no usable name).
   Without a header (or when the line does not fit it) the number of fields before the data
   tells the standard layout: 24 esp-csi, 14 esp-csi C5/C6, 29 esp-radar console_test, 25
   ESP32-CSI-Tool; fields after the data are kept as extras.
3. **Times**: a receive time given by the caller wins; else a host wall-clock column (unix
   seconds or ms, ISO date-time, or ``HH:MM:SS.mmm`` = seconds of the day, rolling over
   midnight) unless ESP32-CSI-Tool's ``real_timestamp`` is a wall clock; else the node's clock
   (:mod:`csi_edge.codecs.tooltime`): ``local_timestamp`` (the radio's µs, unwrapped) on the
   timeline of the node's first ``real_timestamp``, the stamp alone without one. A negative
   ``local_timestamp`` (an int32 print of the u32) is read as the u32 it is.
4. **Nodes**: a line with a MAC belongs to the node ``<source>#<mac>``: each transmitter of a
   passive capture is its own node (its own source entry), so neighbours never mix.
5. **len**: must equal the value count, except ESP32-CSI-Tool printing 128 values (its LLTF
   "only" default) of a longer buffer (256/376/380/384/612), which is valid and counted in
   ``notes["lltf-only-print"]``.

Every line that is not a frame is counted under one reason: ``empty-line``, ``header-line``,
``log-line`` (ESP-IDF ``I (123) tag: ...``), ``radar-data`` (``RADAR_DADA``), ``non-utf8``,
``unknown-line``, ``bad-field-count``, ``truncated`` (the array is not closed), ``bad-value``
(a number, MAC or value that is not what its column holds), ``len-mismatch``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.codecs.tooltime import UNIX_MIN_S, NodeClock, parse_stamp
from csi_edge.frames import FrameBatch, FrameFormat, empty_meta
from csi_edge.radio import channel_to_mhz

#: the standard header of each layout (spec: the projects' own print statements)
STANDARD_HEADERS: dict[str, str] = {
    "esp-csi": "type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,"
    "stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,"
    "sig_len,rx_state,len,first_word,data",
    "esp-csi-c6": "type,seq,mac,rssi,rate,noise_floor,fft_gain,agc_gain,channel,local_timestamp,"
    "sig_len,rx_state,len,first_word,data",
    "esp-radar": "type,sequence,timestamp,taget_seq,taget,mac,rssi,rate,sig_mode,mcs,bandwidth,"
    "smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,"
    "secondary_channel,local_timestamp,ant,sig_len,rx_state,agc_gain,fft_gain,len,first_word,data",
    "esp32-csi-tool": "type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,"
    "aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,"
    "local_timestamp,ant,sig_len,rx_state,real_time_set,real_timestamp,len,CSI_DATA",
}

#: header name (lower case) -> the frame field it fills
FIELD_OF = {
    "id": "seq",
    "seq": "seq",
    "sequence": "seq",
    "rssi": "rssi",
    "noise_floor": "noise",
    "channel": "channel",
    "sig_mode": "sig_mode",
    "bandwidth": "bandwidth",
    "cwb": "bandwidth",
    "stbc": "stbc",
    "secondary_channel": "secondary",
    "local_timestamp": "local_us",
    "len": "len",
}
DATA_NAMES = ("data", "csi_data", "csi")
#: columns of the standard layouts csi-edge knows and does not keep (not "unknown extras");
#: ``timestamp`` is left out: esp-radar's is a clock, and users name host clocks so too
KNOWN_COLUMNS = (
    frozenset(n.lower() for h in STANDARD_HEADERS.values() for n in h.split(","))
    | frozenset(FIELD_OF)
) - {"timestamp"}

_LOG_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?[IWEDV] \(\d+\) ")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .\-]*$")
_TOD = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")
#: ESP-IDF buffer lengths (bytes) longer than the LLTF: ESP32-CSI-Tool prints their first 128
_LONGER_BUFFERS = (256, 376, 380, 384, 612)
_QUIET = ("header-line", "empty-line")
_INT_FIELDS = ("seq", "rssi", "noise", "channel", "sig_mode", "bandwidth", "stbc", "secondary")
_META_FIELDS = (*_INT_FIELDS, "local_us")
_DAY = 86400.0


def is_header_line(line: str) -> bool:
    """The CSV header line printed once by esp-csi and ESP32-CSI-Tool (or a user's variant)."""
    return line.startswith("type,") and ("mac" in line) and ("len" in line)


def sniff_text(head: bytes) -> str | None:
    """The encoding of a text capture from its first bytes (BOM, or the NUL pattern of UTF-16
    without one): ``"utf-16"`` / ``"utf-16-le"`` / ``"utf-16-be"`` / ``"utf-8-sig"``, or None
    for plain UTF-8 / ASCII (read as bytes, line by line)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    sample = head[:4096]
    if len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
    return None


def is_text_capture(head: bytes) -> bool:
    """Does this look like a serial CSI log (any encoding)?"""
    enc = sniff_text(head)
    text = head.decode(enc, "replace") if enc else head.decode("latin-1")
    return "CSI_DATA" in text or any(is_header_line(s.strip()) for s in text.splitlines()[:50])


@dataclass
class Layout:
    """Where each field sits in a line: from a header line or a standard layout."""

    name: str
    tool: bool  # ESP32-CSI-Tool family (role / real_timestamp columns; its len rule)
    n_head: int  # fields before the data
    idx: dict[str, int]  # frame field -> column index (the data column counts as one)
    mac: int | None = None
    role: int | None = None
    real_ts: int | None = None
    real_set: int | None = None
    extras: list[tuple[int, str]] = field(default_factory=list)  # unknown columns: (index, name)
    n_cols: int = 0  # columns the header names (data included)

    @classmethod
    def from_names(cls, names: Sequence[str], name: str) -> Layout | None:
        """A layout from header names; None when the header names no data column."""
        low = [n.strip().strip('"').lower() for n in names]
        data = [i for i, n in enumerate(low) if n in DATA_NAMES and i > 0]
        if not data:
            return None
        d = data[-1]
        lay = cls(name, tool=False, n_head=d, idx={})
        for i, n in enumerate(low):
            if i == 0 or i == d:
                continue
            if n in FIELD_OF and FIELD_OF[n] not in lay.idx:
                lay.idx[FIELD_OF[n]] = i
            elif n in ("mac", "role", "real_timestamp", "real_time_set"):
                setattr(lay, _RENAMED.get(n, n), i)
            elif n not in KNOWN_COLUMNS:
                lay.extras.append((i, _column_name(names[i], i)))
        lay.tool = lay.role is not None or lay.real_ts is not None
        lay.n_cols = len(names)
        return lay


_RENAMED = {"real_timestamp": "real_ts", "real_time_set": "real_set"}


def _column_name(raw: str, i: int) -> str:
    """A header cell as an extra's name; ``col<i>`` when it is no name (a stray value)."""
    s = raw.strip().strip('"')
    return s if _NAME.match(s) else f"col{i}"


_STANDARD = {n: Layout.from_names(h.split(","), n) for n, h in STANDARD_HEADERS.items()}
_BY_COUNT = {lay.n_head: lay for lay in _STANDARD.values()}  # 24, 14, 29, 25


def split_line(line: str):
    """``(fields before the data, data text, fields after)`` or a skip reason; data text is
    None when no array syntax was found (plain fields: base64, or torn)."""
    b = line.find("[")
    if b >= 0:
        e = line.find("]", b)
        if e < 0:
            return "truncated"
        head, data, tail = line[:b], line[b + 1 : e], line[e + 1 :]
        if head.endswith('"'):
            head = head[:-1]
        if tail.startswith('"'):
            tail = tail[1:]
    else:
        q = line.find('"')
        while True:
            if q < 0:
                return None
            e = line.find('"', q + 1)
            if e < 0:
                return "truncated"
            body = line[q + 1 : e]
            if "," in body or " " in body.strip():  # a quoted list without brackets
                head, data, tail = line[:q], body, line[e + 1 :]
                break
            q = line.find('"', e + 1)
    if not head.endswith(",") or (tail and not tail.startswith(",")):
        return "bad-field-count"
    return head[:-1].split(","), data, (tail[1:].split(",") if tail else [])


def parse_values(data: str):
    """int8 values of an array printed with commas and/or spaces, or ``"bad-value"``.

    ``np.fromstring`` in text mode parses the whole list in C (4x faster than ``int()`` per
    value) and raises on any token that is not an integer."""
    text = data.replace(",", " ")
    if not text.strip():  # np.fromstring reads a blank string as [0]
        return np.zeros(0, np.int8)
    try:
        a = np.fromstring(text, np.int64, sep=" ")
    except ValueError:
        return "bad-value"
    b = a.astype(np.int8)
    if not np.array_equal(a, b):  # a value outside int8 (huge ones saturate to int64 max)
        return "bad-value"
    return b


def _b64(text: str):
    try:
        return np.frombuffer(base64.b64decode(text.strip().strip('"'), validate=True), np.int8)
    except (binascii.Error, ValueError):
        return "bad-value"


def host_time(text: str) -> tuple[str, float] | None:
    """A host wall-clock cell: ``("unix", s)`` (unix s or ms, ISO date-time; naive ISO is read
    as UTC) or ``("tod", s)`` (``HH:MM:SS[.mmm]``: seconds of an unknown day); else None."""
    s = text.strip().strip('"')
    if not s or not (s[0].isdigit()):
        return None
    m = _TOD.match(s)
    if m:
        h, mi, sec = int(m[1]), int(m[2]), float(m[3])
        return ("tod", h * 3600 + mi * 60 + sec) if h < 24 and mi < 60 and sec < 61 else None
    if len(s) >= 10 and s[4] == "-" and s[7] == "-":
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return "unix", dt.timestamp()
    try:
        v = float(s)
    except ValueError:
        return None
    if 1e9 <= v < 4.2e9:
        return "unix", v
    if 1e12 <= v < 4.2e12:
        return "unix", v / 1000.0
    return None


class _Row:
    """One decoded line (kept small: built per frame)."""

    __slots__ = ("i", "layout", "tool", "meta", "mac", "stamp", "t_line", "extra")

    def __init__(self, i, layout: Layout, meta, mac, stamp, t_line, extra):
        self.i, self.layout, self.tool, self.meta, self.mac = i, layout.name, layout.tool, meta, mac
        self.stamp, self.t_line, self.extra = stamp, t_line, extra


def finish(parsed: tuple, values, notes: Counter | None):
    """Check a parsed line's values against its ``len``: the frame tuple or a skip reason."""
    lay, meta, mac, _data, stamp, host, extra, declared, neg = parsed
    if isinstance(values, str):
        return values
    count = len(values)
    if count % 2:
        return "len-mismatch"
    note = None
    if declared is not None and count != declared:
        if not (lay.tool and count == 128 and declared in _LONGER_BUFFERS):
            return "len-mismatch"
        note = "lltf-only-print"
    if notes is not None:
        if note:
            notes[note] += 1
        if neg:
            notes["negative-local-timestamp"] += 1
    return lay, meta, mac, values, stamp, host, extra


def parse_fields(line: str, header: Layout | None = None):
    """Everything of a ``CSI_DATA`` line but its values' count: ``(layout, meta, mac, data
    text or values, real_timestamp stamp, host, extra, declared len, negative
    local_timestamp)`` or a skip reason. The frame's time is decided per node later
    (:class:`csi_edge.codecs.tooltime.NodeClock`): it needs the node's other lines."""
    parts = split_line(line)
    if isinstance(parts, str):
        return parts
    if parts is None:  # no array syntax: the data column is plain (base64) or the line is torn
        fields = line.split(",")
        lay = header if header is not None and header.n_head < len(fields) else None
        if lay is None:
            lay = _BY_COUNT.get(len(fields) - 1)
            if lay is None or lay.tool:
                return "bad-field-count"
        head, tail = fields[: lay.n_head], fields[lay.n_head + 1 :]
        if lay.tool:
            return "bad-value"
        values = _b64(fields[lay.n_head])
        cells = fields
    else:
        head, data, tail = parts
        lay = header if header is not None and header.n_head == len(head) else None
        if lay is None:
            lay = _BY_COUNT.get(len(head))
            if lay is None:
                return "bad-field-count"
            if lay.tool and _is_int(head[lay.role]):  # 25 fields, but an esp-csi line + 1
                return "bad-field-count"
        values = data
        cells = head + [""] + tail if tail else head
    if head[0] != "CSI_DATA":
        return "unknown-line"
    if isinstance(values, str) and parts is None:  # bad base64
        return values
    meta = {}
    try:
        for f, i in lay.idx.items():
            v = meta[f] = int(cells[i])
            if not -(1 << 62) < v < 1 << 62:
                return "bad-value"
        stamp = parse_stamp(cells[lay.real_ts]) if lay.real_ts is not None else None
        if stamp is None and lay.real_ts is not None:
            return "bad-value"
        real_set = int(cells[lay.real_set]) if lay.real_set is not None else 0
        mac = cells[lay.mac].strip() if lay.mac is not None else None
    except (ValueError, OverflowError):
        return "bad-value"
    except IndexError:  # the row lacks a column its header names
        return "bad-field-count"
    if mac is not None:
        if not _MAC.match(mac):
            return "bad-value"
        mac = mac.lower()
    lus = meta.get("local_us")
    neg = lus is not None and lus < 0
    if neg:
        if lus < -(1 << 31):
            return "bad-value"
        meta["local_us"] = lus & 0xFFFFFFFF  # an int32 print of the u32 rx_ctrl.timestamp
    declared = meta.pop("len", None)
    extra = None
    host = None
    if lay.extras or len(cells) > max(lay.n_cols, lay.n_head + 1):
        n = len(cells)
        extra = {name: cells[i].strip().strip('"') for i, name in lay.extras if i < n}
        for i in range(max(lay.n_cols, lay.n_head + 1), n):  # beyond what the header names
            extra[f"col{i}"] = cells[i].strip().strip('"')
        for v in extra.values():
            host = host_time(v)
            if host is not None:
                break
    if stamp is not None and real_set == 1 and stamp.decimal >= UNIX_MIN_S:
        host = None  # the node's own wall clock is the better time
    return lay, meta, mac, values, stamp, host, extra, declared, neg


#: put between the lines' value lists so one C parse serves a whole chunk; a line that holds
#: it itself only makes the sentinel count wrong, and the chunk is then parsed line by line
_SENTINEL = -(1 << 62) + 12345
_SEP = f" {_SENTINEL} "


def parse_many(texts: list[str]) -> list:
    """:func:`parse_values` of many lists, in one ``np.fromstring`` call when they are clean."""
    if len(texts) < 2 or not all(t.replace(",", " ").strip() for t in texts):  # see parse_values
        return [parse_values(t) for t in texts]
    try:
        a = np.fromstring(_SEP.join(texts).replace(",", " "), np.int64, sep=" ")
    except ValueError:
        return [parse_values(t) for t in texts]
    cut = a == _SENTINEL
    where = np.flatnonzero(cut)
    if len(where) != len(texts) - 1:
        return [parse_values(t) for t in texts]
    line_of = np.cumsum(cut)
    bad = ((a < -128) | (a > 127)) & ~cut
    bad_line = np.bincount(line_of[bad], minlength=len(texts)) > 0
    b = a.astype(np.int8)
    starts = np.r_[0, where + 1].tolist()
    ends = np.r_[where, len(a)].tolist()
    return [
        "bad-value" if bad_line[j] else b[s:e]
        for j, (s, e) in enumerate(zip(starts, ends, strict=True))
    ]


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


class TextLineDecoder:
    """Decode serial text lines from one source (a serial port, a log file) into frames.

    ``decode_lines(lines, t_rx)``: ``lines`` are raw lines (bytes or str, with or without the
    line ending), ``t_rx`` one receive time for all or one per line. Never raises on bad
    lines: see the module docstring for the skip reasons and the time rules (a ``t_rx`` of NaN
    means "no receive time": the line's own time is used).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.header: list[str] | None = None  # the last CSV header line seen
        self.layout: Layout | None = None  # ... as a layout (None: no data column named)
        self.layouts: dict[str, int] = {}  # frames decoded per layout
        self._tod_last: float | None = None  # host time-of-day clock: last value, day offset
        self._tod_days = 0.0
        self._clocks: dict[str | None, NodeClock] = {}  # per node (MAC): its frames' clock

    def decode_lines(self, lines: Sequence[bytes | str], t_rx: np.ndarray | float) -> DecodeResult:
        res = DecodeResult()
        n = len(lines)
        t = np.broadcast_to(np.asarray(t_rx, np.float64), (n,))
        rows: list[_Row] = []
        chunks: list[np.ndarray] = []
        parsed: list[tuple[int, tuple]] = []
        for i, raw in enumerate(lines):
            out = self._line(raw)
            if isinstance(out, str):
                self._skip(res, out, raw)
            else:
                parsed.append((i, out))
        texts = [p[3] for _, p in parsed if isinstance(p[3], str)]
        it = iter(parse_many(texts))
        for i, p in parsed:
            out = finish(p, next(it) if isinstance(p[3], str) else p[3], res.notes)
            if isinstance(out, str):
                self._skip(res, out, lines[i])
                continue
            lay, meta, mac, values, stamp, host, extra = out
            t_line = None
            if host is not None:
                t_line = self._host_seconds(host)
                if np.isnan(t[i]):
                    res.notes["time-from-host-column"] += 1
            rows.append(_Row(i, lay, meta, mac, stamp, t_line, extra))
            chunks.append(values)
        self._node_times(rows, t, res.notes)
        res.frames = self._batch(rows, chunks, t)
        return res

    def _node_times(self, rows: list[_Row], t: np.ndarray, notes: Counter) -> None:
        """Each row's own time from its node's clock (``docs/text-captures.md`` §5): the
        whole chunk's stamps are seen first, so a node's stamp format is known before its
        first frame is timed. Notes name the clock of frames without a receive time."""
        by_node: dict[str | None, list[_Row]] = {}
        for r in rows:
            if r.t_line is None:
                by_node.setdefault(r.mac, []).append(r)
        for mac, node_rows in by_node.items():
            clock = self._clock(mac)
            local = np.fromiter((r.meta.get("local_us", -1) for r in node_rows), np.int64)
            stamps = [r.stamp for r in node_rows]
            no_rx = np.isnan(t[[r.i for r in node_rows]])
            if len(local) > 1 and local.min() == local.max() and any(stamps):
                local[:] = -1  # a local_timestamp that never moves (a fork printing 0) is none
                notes["local-timestamp-stuck"] += int(no_rx.sum())
            if (local >= 0).all() and (clock.anchored or stamps[0] is not None or not any(stamps)):
                times, wrap, reset, used = clock.local_times(local, stamps)
                for r, v in zip(node_rows, times.tolist(), strict=True):
                    r.t_line = v
                n = int(no_rx.sum())
                notes["time-from-local-timestamp"] += n
                notes["local-timestamp-wrap"] += int((wrap & no_rx).sum())
                notes["local-timestamp-reset"] += int((reset & no_rx).sum())
                if used and no_rx[0] and clock.usec_fraction and stamps[0].readings_differ:
                    notes["real-timestamp-unpadded-usec"] += 1
                continue
            for st in stamps:  # the general case, frame by frame
                clock.observe(st)
            for r, lus, nr in zip(node_rows, local.tolist(), no_rx.tolist(), strict=True):
                r.t_line, name, quirks = clock.time(r.stamp, lus)
                if nr and name != "none":
                    notes[f"time-from-{name}"] += 1
                    for q in quirks:
                        notes[q] += 1
        for k in [k for k, v in notes.items() if not v]:
            del notes[k]

    def _clock(self, mac: str | None) -> NodeClock:
        clock = self._clocks.get(mac)
        if clock is None:
            clock = self._clocks[mac] = NodeClock()
        return clock

    def _skip(self, res: DecodeResult, reason: str, raw) -> None:
        if reason in _QUIET:  # expected, not a problem: counted without a log line
            res.skipped[reason] += 1
        else:
            res.skipped.skip(reason, f"{self.source}: {_preview(raw)}")

    def _host_seconds(self, host: tuple[str, float]) -> float:
        kind, v = host
        if kind == "unix":
            return v
        if self._tod_last is not None and v < self._tod_last - _DAY / 2:  # past midnight
            self._tod_days += _DAY
        self._tod_last = v
        return v + self._tod_days

    def _line(self, raw: bytes | str):
        if isinstance(raw, bytes | bytearray | memoryview):
            try:
                line = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                return "non-utf8"
        else:
            line = raw
        line = line.strip("\r\n\x00 \t\ufeff")
        if not line:
            return "empty-line"
        if line.startswith("type,"):
            if is_header_line(line):
                self.header = line.split(",")
                self.layout = Layout.from_names(self.header, "header")
                if self.layout is not None:
                    self.layout.name = _header_name(self.header, self.layout)
                return "header-line"
            return "unknown-line"
        at = line.rfind("CSI_DATA")
        if at > 0:
            line = line[at:]  # interleaved: log text (or a torn line) in front of the CSI line
        if line.startswith("CSI_DATA"):
            return parse_fields(line, self.layout)
        if line.startswith("RADAR_DADA"):
            return "radar-data"
        if _LOG_LINE.match(line):
            return "log-line"
        return "unknown-line"

    def _batch(self, rows: list[_Row], chunks, t) -> FrameBatch:
        k = len(rows)
        meta = empty_meta(k)
        if k == 0:
            return FrameBatch(meta, np.zeros(0, np.int8), np.zeros(1, np.int64), [self.source])
        idx = np.array([r.i for r in rows], np.int64)
        t_line = np.array([r.t_line for r in rows], np.float64)
        t_rx = t[idx]
        meta["t_rx"] = np.where(np.isnan(t_rx), t_line, t_rx)
        sources: dict[str, int] = {}
        meta["src"] = [
            sources.setdefault(f"{self.source}#{r.mac}" if r.mac else self.source, len(sources))
            for r in rows
        ]
        for f in _META_FIELDS:
            vals = [r.meta.get(f, -1) for r in rows]
            if f == "local_us":
                meta[f] = vals
            elif f == "channel":
                meta[f] = np.clip(vals, 0, 255)
            else:
                info = np.iinfo(meta[f].dtype)
                meta[f] = np.clip(vals, info.min, info.max)
        meta["freq_mhz"] = [channel_to_mhz(c) for c in meta["channel"].tolist()]
        lens = np.fromiter((len(c) for c in chunks), np.int64, k)
        meta["n_pairs"] = lens // 2
        meta["fmt"] = [FrameFormat.CSI_TOOL if r.tool else FrameFormat.ESP_CSI for r in rows]
        for r in rows:
            self.layouts[r.layout] = self.layouts.get(r.layout, 0) + 1
        offsets = np.zeros(k + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        extra: dict[str, np.ndarray] = {}
        if any(r.extra for r in rows):
            names = list(dict.fromkeys(n for r in rows if r.extra for n in r.extra))
            for name in names:
                col = np.full(k, None, dtype=object)
                for j, r in enumerate(rows):
                    if r.extra and name in r.extra:
                        col[j] = r.extra[name]
                extra[name] = col
        return FrameBatch(
            meta, np.concatenate(chunks).astype(np.int8), offsets, list(sources), extra=extra
        )


def _header_name(names: list[str], lay: Layout) -> str:
    """A header's layout name: the standard one it matches, else ``<family>+header``."""
    for n, h in STANDARD_HEADERS.items():
        if [x.strip().lower() for x in names] == h.lower().split(","):
            return n
    return ("esp32-csi-tool" if lay.tool else "esp-csi") + "+header"


def _preview(raw: bytes | str, n: int = 60) -> str:
    s = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "backslashreplace")
    s = s.strip()
    return s[:n] + ("..." if len(s) > n else "")
