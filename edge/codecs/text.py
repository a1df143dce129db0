"""CSI lines printed on a serial console: esp-csi ``CSI_DATA`` (3 layouts) and ESP32-CSI-Tool.

Spec: ``/work/shared/spec/esp32-wire-formats.md`` §3. The data field is always last; the
layout is told by the number of fields before it:

=====  ================================  =========================================  ==========
n      layout                            data                                       ``len``
=====  ================================  =========================================  ==========
24     esp-csi, classic chips (25 cols)  ``"[v0,v1,...]"`` or base64                 == count
14     esp-csi, ESP32-C5/C6 (15 cols)    same                                       == count
29     esp-radar console_test (30 cols)  same                                       == count
25     ESP32-CSI-Tool (26 cols)          ``[v0 v1 ...]`` (spaces, no quotes)        see below
=====  ================================  =========================================  ==========

ESP32-CSI-Tool's ``len`` is the raw buffer length; with its default "LLTF only" setting only
the first 128 values are printed, so ``count == len`` is valid, and so is ``count == 128`` when
``len`` is one of the longer ESP-IDF buffer sizes (256, 376, 380, 384, 612).

Real serial streams are messy (torn lines, log lines interleaved, values missing), so every
line that is not a CSI frame is counted under one reason and decoding goes on:
``empty-line``, ``header-line`` (the CSV header: detected, not data), ``log-line`` (ESP-IDF
``I (123) tag: ...``), ``radar-data`` (``RADAR_DADA`` lines), ``non-utf8``, ``unknown-line``,
``bad-field-count`` (fields missing or extra), ``truncated`` (data list not closed),
``bad-value`` (a field or value that is not a number / int8), ``len-mismatch``.

A line with log text in front of ``CSI_DATA`` (two writers interleaved on one UART) is decoded
from the last ``CSI_DATA`` on.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.frames import FrameBatch, FrameFormat, empty_meta
from csi_edge.radio import channel_to_mhz

# field name -> index among the fields before the data, per layout
_COLS = {
    24: (
        "esp-csi",
        {
            "seq": 1,
            "rssi": 3,
            "sig_mode": 5,
            "bandwidth": 7,
            "stbc": 11,
            "noise": 14,
            "channel": 16,
            "secondary": 17,
            "local_us": 18,
            "len": 22,
        },
    ),
    14: ("esp-csi-c6", {"seq": 1, "rssi": 3, "noise": 5, "channel": 8, "local_us": 9, "len": 12}),
    29: (
        "esp-radar",
        {
            "seq": 1,
            "rssi": 6,
            "sig_mode": 8,
            "bandwidth": 10,
            "stbc": 14,
            "noise": 17,
            "channel": 19,
            "secondary": 20,
            "local_us": 21,
            "len": 27,
        },
    ),
    25: (
        "esp32-csi-tool",
        {
            "rssi": 3,
            "sig_mode": 5,
            "bandwidth": 7,
            "stbc": 11,
            "noise": 14,
            "channel": 16,
            "secondary": 17,
            "local_us": 18,
            "len": 24,
        },
    ),
}
LAYOUT_NAMES = tuple(v[0] for v in _COLS.values())
_LOG_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?[IWEDV] \(\d+\) ")
#: ESP-IDF buffer lengths (bytes) longer than the LLTF: ESP32-CSI-Tool prints their first 128
_LONGER_BUFFERS = (256, 376, 380, 384, 612)
_QUIET = ("header-line", "empty-line")
_META_FIELDS = (
    "seq",
    "rssi",
    "noise",
    "channel",
    "sig_mode",
    "bandwidth",
    "stbc",
    "secondary",
    "local_us",
)


def is_header_line(line: str) -> bool:
    """The CSV header line printed once by esp-csi and ESP32-CSI-Tool."""
    return line.startswith("type,") and ("mac" in line) and ("len" in line)


def parse_csi_line(line: str):
    """Parse one ``CSI_DATA`` line: ``(layout, meta dict, int8 values)`` or a skip reason."""
    head, data = _split_data(line)
    if head is None:
        return data  # a reason
    n = len(head)
    # the data's own syntax says which family: ESP32-CSI-Tool prints "[v0 v1 ...]" (spaces, no
    # quotes), esp-csi a quoted comma list or base64; the field count must then fit the family
    tool = isinstance(data, str) and "," not in data and line[line.find("[") - 1] != '"'
    if tool != (n == 25) or n not in _COLS:
        return "bad-field-count"
    name, cols = _COLS[n]
    if head[0] != "CSI_DATA":
        return "unknown-line"
    values = _parse_values(data, tool)
    if isinstance(values, str):
        return values
    meta = {}
    try:
        for field, i in cols.items():
            v = meta[field] = int(head[i])
            if not -(1 << 62) < v < 1 << 62:
                return "bad-value"
        if tool:
            meta["real_ts"] = _tool_timestamp(head[23])
            if not math.isfinite(meta["real_ts"]):
                return "bad-value"
    except (ValueError, OverflowError):
        return "bad-value"
    count = len(values)
    declared = meta.pop("len")
    if count % 2:
        return "len-mismatch"
    if tool:
        if not (count == declared or (count == 128 and declared in _LONGER_BUFFERS)):
            return "len-mismatch"
    elif count != declared:
        return "len-mismatch"
    return name, meta, values


def _tool_timestamp(text: str) -> float:
    """ESP32-CSI-Tool's ``real_timestamp``: printed as ``sec.usec`` with the microseconds NOT
    zero-padded (``15.92838`` is 15 s + 92838 µs, followed by ``15.140763``), as its real
    captures show; read the part after the dot as an integer count of microseconds."""
    sec, _, usec = text.strip().partition(".")
    if usec and len(usec) <= 6 and usec.isdigit():
        return int(sec) + int(usec) * 1e-6
    return float(text)


def _split_data(line: str):
    """(fields before the data, data text) or (None, reason)."""
    bracket = line.find("[")
    if bracket >= 0:
        head_txt = line[:bracket]
        if head_txt.endswith('"'):
            head_txt = head_txt[:-1]
        if not head_txt.endswith(","):
            return None, "bad-field-count"
        close = line.find("]", bracket)
        if close < 0:
            return None, "truncated"
        tail = line[close + 1 :].strip().strip('"')
        if tail:
            return None, "bad-field-count"
        return head_txt[:-1].split(","), line[bracket + 1 : close]
    fields = line.split(",")
    if len(fields) < 2:
        return None, "bad-field-count"
    return fields[:-1], ("b64", fields[-1].strip().strip('"'))


def _parse_values(data, tool: bool):
    if isinstance(data, tuple):  # base64 (esp-radar)
        if tool:
            return "bad-value"
        try:
            raw = base64.b64decode(data[1], validate=True)
        except (binascii.Error, ValueError):
            return "bad-value"
        return np.frombuffer(raw, np.int8)
    parts = data.split() if tool else data.split(",")
    if parts and not parts[-1].strip():  # esp-csi prints "[1,2,3,]" on some versions
        parts = parts[:-1]
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        return "bad-value"
    if vals and (min(vals) < -128 or max(vals) > 127):
        return "bad-value"
    return np.array(vals, np.int8)


class TextLineDecoder:
    """Decode serial text lines from one source (a serial port, a log file) into frames.

    ``decode_lines(lines, t_rx)``: ``lines`` are raw lines (bytes or str, with or without the
    line ending), ``t_rx`` one receive time for all or one per line. Never raises on bad
    lines: see the module docstring for the skip reasons.

    A ``t_rx`` of NaN (a plain log file: no receive times) is replaced by the line's own time:
    ESP32-CSI-Tool's ``real_timestamp`` (s), else esp-csi's ``local_timestamp`` (µs since boot).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.header: list[str] | None = None  # the last CSV header line seen
        self.layouts: dict[str, int] = {}  # frames decoded per layout

    def decode_lines(self, lines: Sequence[bytes | str], t_rx: np.ndarray | float) -> DecodeResult:
        res = DecodeResult()
        n = len(lines)
        t = np.broadcast_to(np.asarray(t_rx, np.float64), (n,))
        rows: list[tuple[int, str, dict]] = []
        chunks: list[np.ndarray] = []
        for i, raw in enumerate(lines):
            out = self._line(raw)
            if isinstance(out, str):
                if out in _QUIET:  # expected, not a problem: counted without a log line
                    res.skipped[out] += 1
                else:
                    res.skipped.skip(out, f"{self.source}: {_preview(raw)}")
                continue
            name, meta, values = out
            rows.append((i, name, meta))
            chunks.append(values)
        res.frames = self._batch(rows, chunks, t)
        return res

    def _line(self, raw: bytes | str):
        if isinstance(raw, bytes | bytearray | memoryview):
            try:
                line = bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                return "non-utf8"
        else:
            line = raw
        line = line.strip("\r\n\x00 \t")
        if not line:
            return "empty-line"
        at = line.rfind("CSI_DATA")
        if at > 0 and not line.startswith("type,"):
            line = line[at:]  # interleaved: log text in front of the CSI line
        if line.startswith("CSI_DATA"):
            return parse_csi_line(line)
        if is_header_line(line):
            self.header = line.split(",")
            return "header-line"
        if line.startswith("RADAR_DADA"):
            return "radar-data"
        if _LOG_LINE.match(line):
            return "log-line"
        return "unknown-line"

    def _batch(self, rows, chunks, t) -> FrameBatch:
        k = len(rows)
        meta = empty_meta(k)
        if k == 0:
            return FrameBatch(meta, np.zeros(0, np.int8), np.zeros(1, np.int64), [self.source])
        idx = np.array([r[0] for r in rows], np.int64)
        t_line = np.array([r[2].get("real_ts", r[2].get("local_us", -1) * 1e-6) for r in rows])
        t_rx = t[idx]
        meta["t_rx"] = np.where(np.isnan(t_rx), t_line, t_rx)
        meta["src"] = 0
        for field in _META_FIELDS:
            vals = [r[2].get(field, -1) for r in rows]
            if field == "local_us":
                meta[field] = vals
            elif field == "channel":
                meta[field] = np.clip(vals, 0, 255)
            else:
                meta[field] = np.clip(
                    vals, np.iinfo(meta[field].dtype).min, np.iinfo(meta[field].dtype).max
                )
        meta["freq_mhz"] = [channel_to_mhz(c) for c in meta["channel"].tolist()]
        lens = np.fromiter((len(c) for c in chunks), np.int64, k)
        meta["n_pairs"] = lens // 2
        meta["fmt"] = [
            FrameFormat.CSI_TOOL if r[1] == "esp32-csi-tool" else FrameFormat.ESP_CSI for r in rows
        ]
        for r in rows:
            self.layouts[r[1]] = self.layouts.get(r[1], 0) + 1
        offsets = np.zeros(k + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        return FrameBatch(meta, np.concatenate(chunks).astype(np.int8), offsets, [self.source])


def _preview(raw: bytes | str, n: int = 60) -> str:
    s = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "backslashreplace")
    s = s.strip()
    return s[:n] + ("..." if len(s) > n else "")
