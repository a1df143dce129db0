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

Where the stamp is coarser than :data:`FINEST_S` (a 6-digit print after 1000 s of uptime,
exponent forms), the node's ``local_timestamp`` (u32 us at reception, wrapping every ~71.6 min,
unwrapped here) times the frame instead, continuing from the last stamped frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: a stamp coarser than this cannot time frames 10 ms apart: use the node's local_timestamp
FINEST_S = 1e-3
#: ``real_time_set`` 1 with a value from here on is a wall clock (unix seconds)
UNIX_MIN_S = 1e9
_U32 = 1 << 32
_STAMP = re.compile(r"^(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


@dataclass(frozen=True, slots=True)
class Stamp:
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
    if abs(e) > 300:
        return None
    usec = None
    if exp is None and frac and len(frac) <= 6:
        usec = int(whole or "0") + int(frac) * 1e-6
    n_int = len(whole.lstrip("0")) if exp is None else -1
    return Stamp(value, usec, len(frac), len(digits), 10.0 ** (e - len(frac)), n_int)


@dataclass
class NodeClock:
    """The time base of one node's text frames (one per MAC / source), kept across chunks."""

    usec_fraction: bool = False  # this node's real_timestamp prints unpadded microseconds
    max_significant: int = 0  # most significant digits one of its stamps printed
    offset: float = 0.0  # added to local_timestamp so it continues the stamps' timeline
    anchored: bool = False  # offset set from a stamp
    last_local: int | None = None  # last local_timestamp (raw us) and wrap-arounds seen
    wraps: int = 0

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

    def local_seconds(self, local_us: int) -> float | None:
        """``local_timestamp`` (u32 us) unwrapped to seconds; None without one (-1)."""
        if local_us < 0:
            return None
        if self.last_local is not None and local_us < self.last_local - (_U32 >> 1):
            self.wraps += 1
        self.last_local = local_us
        return (local_us + self.wraps * _U32) * 1e-6

    def stamp_seconds(self, stamp: Stamp) -> float | None:
        """The stamp read as this node's producer prints it; None when too coarse."""
        if self.usec_fraction and stamp.usec is not None:
            return stamp.usec
        return stamp.decimal if self.resolution(stamp) <= FINEST_S * (1 + 1e-9) else None

    def time(self, stamp: Stamp | None, local_us: int) -> tuple[float, str, str | None]:
        """``(seconds, clock, quirk)`` of one frame, called in line order. ``clock`` is
        ``real-timestamp``, ``local-timestamp`` or ``none``; ``quirk`` names how
        (``real-timestamp-unpadded-usec``, ``real-timestamp-too-coarse``) or is None.

        A coarse stamp still anchors the timeline (``offset``) the first time; the node's
        ``local_timestamp`` then spaces the frames, so their times stay on the stamp's clock
        (boot or wall) with microsecond spacing."""
        local_s = self.local_seconds(local_us)
        t = self.stamp_seconds(stamp) if stamp is not None else None
        if t is not None:
            if local_s is not None:
                self.offset, self.anchored = t - local_s, True
            quirk = (
                "real-timestamp-unpadded-usec"
                if self.usec_fraction and stamp.readings_differ
                else None
            )
            return t, "real-timestamp", quirk
        quirk = "real-timestamp-too-coarse" if stamp is not None else None
        if local_s is None:
            if stamp is not None:  # coarse, but the only clock there is
                return stamp.decimal, "real-timestamp", quirk
            return -1e-6, "none", None
        if stamp is not None and not self.anchored:
            self.offset, self.anchored = stamp.decimal - local_s, True
        return local_s + self.offset, "local-timestamp", quirk
