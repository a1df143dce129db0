"""ESP32-CSI-Tool's ``real_timestamp`` field, and which node clock times a text frame.

The field has had two producers (``docs/text-captures.md`` §5 has the byte facts):

- ESP32-CSI-Tool today: ``ss << get_steady_clock_timestamp()``, a double of seconds since boot
  through a C++ stream at its default precision: **6 significant digits**, trailing zeros
  dropped (``447.786``, ``2.85746``, ``4.4854``, ``1234.57``, ``123457``, ``1.23457e+06``). A
  decimal fraction, whose resolution falls with uptime: 1 ms at 100-999 s, 10 ms from 1000 s.
- ESP32-CSI-Tool before: ``"%li.%li", tv_sec, tv_usec``: the microseconds **not zero-padded**
  (``15.92838`` is 15 s + 92838 us, followed by ``15.140763``).

A zero-padded ``%ld.%06ld`` (or ``%f``) producer reads the same either way. The readings differ
only for a fraction of fewer than 6 digits, so a node's stream is read as unpadded microseconds
only once it has shown a line no 6-significant-digit print can make: 6 fraction digits and more
than 6 significant digits (``15.140763``). Until then, and for every stream that never shows one
(the fraction then has 0-5 digits, often 3: it cannot be microseconds), it is decimal seconds.

Which clock times a frame: the node's ``local_timestamp`` (``rx_ctrl.timestamp``: the radio's
reception time, u32 us, wrapping every ~71.6 min, unwrapped here) whenever the line has one,
placed on the stamp's timeline by the node's first stamp. The stamp itself is read in the CSI
callback after the previous line was printed, so on a busy serial link it lags reception by up
to 0.16-1 s and bunches (measured on the real captures, docs/text-captures.md §5). Without a
``local_timestamp`` the stamp times the frame, flagged when coarser than :data:`FINEST_S`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: a stamp coarser than this cannot time frames 10 ms apart: use the node's local_timestamp
FINEST_S = 1e-3
#: ``real_time_set`` 1 with a value from here on is a wall clock (unix seconds)
UNIX_MIN_S = 1e9
_U32 = 1 << 32
_RES = tuple(10.0**-k for k in range(16))
_STAMP = re.compile(r"^(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


class Stamp(NamedTuple):
    """One printed ``real_timestamp``: its decimal value and what the print says about its
    producer."""

    decimal: float  # the text read as decimal seconds
    usec: float | None  # ... read as seconds + unpadded microseconds (None: not that form)
    frac_digits: int  # digits after the dot
    significant: int  # significant digits printed (mantissa, leading zeros dropped)
    resolution: float  # seconds one unit of the last printed digit is worth
    int_digits: int  # digits before the dot, leading zeros dropped (-1: exponent form)

    @property
    def proves_usec(self) -> bool:
        """Only a microsecond producer prints this (6 fraction digits, > 6 significant)."""
        return self.frac_digits == 6 and self.significant > 6 and self.usec is not None

    @property
    def readings_differ(self) -> bool:
        return self.usec is not None and self.frac_digits < 6


def parse_stamp(text: str) -> Stamp | None:
    """A ``real_timestamp`` cell as a :class:`Stamp`; None when it is not a non-negative
    number (``-1``, ``nan``, ``inf``, ``1.2.3``, text)."""
    s = text.strip().strip('"')
    whole, _, frac = s.partition(".")
    if s.isascii() and whole.isdigit() and (frac.isdigit() or not frac) and len(s) < 300:
        # the common form (digits.digits), without the pattern: one call per text line
        n_frac = len(frac)
        usec = int(whole) + int(frac) * 1e-6 if 0 < n_frac <= 6 else None
        return Stamp(
            float(s),
            usec,
            n_frac,
            len((whole + frac).lstrip("0")),
            _RES[n_frac] if n_frac < len(_RES) else 10.0 ** -min(n_frac, 300),
            len(whole.lstrip("0")),
        )
    m = _STAMP.match(s)
    if not m or not (m[1] or m[2]):
        return None
    whole, frac, exp = m[1], m[2] or "", m[3]
    try:
        value = float(s)
    except ValueError:  # pragma: no cover - the pattern only lets numbers through
        return None
    if value != value or value in (float("inf"),):
        return None
    digits = (whole + frac).lstrip("0")
    e = int(exp) if exp is not None else 0
    usec = None
    if exp is None and frac and len(frac) <= 6:
        usec = int(whole or "0") + int(frac) * 1e-6
    n_int = len(whole.lstrip("0")) if exp is None else -1
    return Stamp(value, usec, len(frac), len(digits), 10.0 ** max(e - len(frac), -300), n_int)


@dataclass
class NodeClock:
    """The time base of one node's text frames (one per MAC / source), kept across chunks."""

    usec_fraction: bool = False  # this node's real_timestamp prints unpadded microseconds
    max_significant: int = 0  # most significant digits one of its stamps printed
    offset: float = 0.0  # added to local_timestamp so it continues the stamps' timeline
    anchored: bool = False  # offset set from a stamp
    last_local: int | None = None  # last local_timestamp (raw us) and wrap-arounds seen
    wraps: int = 0
    last_t: float | None = None  # the last frame's time (s)

    def observe(self, stamp: Stamp | None) -> None:
        """Learn from a stamp before timing frames (a whole chunk is observed first)."""
        if stamp is not None:
            self.usec_fraction |= stamp.proves_usec
            self.max_significant = max(self.max_significant, stamp.significant)

    def resolution(self, stamp: Stamp) -> float:
        """What the stamp's decimal reading is exact to. A node that never printed more than
        6 significant digits prints like a C++ stream: ``447.8`` is 447.800 with its trailing
        zeros dropped, exact to 1 ms (10^(integer digits - 6) s)."""
        if self.max_significant <= 6 and stamp.int_digits >= 0:
            return min(stamp.resolution, 10.0 ** (stamp.int_digits - 6))
        return stamp.resolution

    def local_seconds(self, local_us: int) -> tuple[float | None, str | None]:
        """``local_timestamp`` (u32 us) unwrapped to seconds (None without one: -1), and a
        quirk: ``local-timestamp-wrap`` (it passed 2^32 us) or ``local-timestamp-reset``
        (it went back: a reboot or a glitch; the timeline continues from the last frame)."""
        if local_us < 0:
            return None, None
        quirk = None
        last = self.last_local
        if last is not None and local_us < last:
            if local_us < last - (_U32 >> 1):
                self.wraps, quirk = self.wraps + 1, "local-timestamp-wrap"
            else:
                quirk = "local-timestamp-reset"
        self.last_local = local_us
        s = (local_us + self.wraps * _U32) * 1e-6
        if quirk == "local-timestamp-reset" and self.last_t is not None:
            self.offset = self.last_t - s
        return s, quirk

    def stamp_seconds(self, stamp: Stamp) -> tuple[float, bool]:
        """The stamp read as this node's producer prints it, and whether it is fine enough
        (<= :data:`FINEST_S`) to time frames by itself."""
        if self.usec_fraction and stamp.usec is not None:
            return stamp.usec, True
        return stamp.decimal, self.resolution(stamp) <= FINEST_S * (1 + 1e-9)

    def local_times(self, local_us: np.ndarray, stamps: list[Stamp | None]):
        """:meth:`time` for a run of frames that all carry a ``local_timestamp`` (>= 0), in
        one pass: ``(seconds [n], wrapped [n] bool, reset [n] bool, stamp read)``. Only the
        first frame's stamp can matter (the anchor), and only when none was set before."""
        loc = local_us.astype(np.int64)
        prev = np.empty_like(loc)
        prev[0] = loc[0] if self.last_local is None else self.last_local
        prev[1:] = loc[:-1]
        d = loc - prev
        wrap = d < -(_U32 >> 1)
        reset = (d < 0) & ~wrap
        u = loc + (self.wraps + np.cumsum(wrap)) * _U32 + np.cumsum(np.where(reset, -d, 0))
        used = False
        if not self.anchored and stamps[0] is not None:
            if not self.usec_fraction:
                self.usec_fraction = any(st is not None and st.proves_usec for st in stamps)
            self.offset = self.stamp_seconds(stamps[0])[0] - float(u[0]) * 1e-6
            self.anchored = used = True
        t = self.offset + u * 1e-6
        self.offset += float(u[-1] - loc[-1] - (self.wraps + int(wrap.sum())) * _U32) * 1e-6
        self.wraps += int(wrap.sum())
        self.last_local, self.last_t = int(loc[-1]), float(t[-1])
        return t, wrap, reset, used

    def time(self, stamp: Stamp | None, local_us: int) -> tuple[float, str, list[str]]:
        """``(seconds, clock, quirks)`` of one frame, called in line order.

        ``clock`` is ``local-timestamp`` whenever the line has one: the radio's reception
        time in us, while ``real_timestamp`` is read later in the CSI callback, delayed by
        the previous line's print (``docs/text-captures.md`` §5). The first stamp anchors it
        (``offset``), so times stay on the stamp's clock (boot or wall) with the radio's
        spacing. Without a local_timestamp the stamp times the frame (``real-timestamp``;
        quirk ``real-timestamp-too-coarse`` when it is coarser than 1 ms); ``none``: neither.
        """
        local_s, lq = self.local_seconds(local_us)
        quirks = [lq] if lq else []
        value = fine = None
        if stamp is not None:
            value, fine = self.stamp_seconds(stamp)
        used = False  # the stamp was read for this frame (its time or the anchor)
        if local_s is not None:
            if value is not None and not self.anchored:
                self.offset, self.anchored, used = value - local_s, True, True
            t, clock = local_s + self.offset, "local-timestamp"
        elif value is not None:
            t, clock, used = value, "real-timestamp", True
            if not fine:
                quirks.append("real-timestamp-too-coarse")
        else:
            return -1e-6, "none", []
        if used and self.usec_fraction and stamp is not None and stamp.readings_differ:
            quirks.append("real-timestamp-unpadded-usec")
        self.last_t = t
        return t, clock, quirks
