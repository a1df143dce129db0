"""What every decoder returns: frames, sibling packets, and counted skips.

Every input a decoder is given (a datagram, a text line, a JSON record, a capture record) ends
up in exactly one of three places, so ``result.n_inputs`` equals the number of inputs:

* ``frames``: raw CSI frames, as one :class:`~csi_edge.frames.FrameBatch`;
* ``packet_counts`` (and ``packets``): non-CSI packets decoded to named fields
  (:class:`~csi_edge.frames.Packet`: edge vitals, feature vectors, mesh HEALTH, ...);
* ``skipped``: inputs that could not be used, counted under a named reason
  (:class:`~csi_edge.skips.SkipCounter`: ``truncated``, ``bad-magic``, ``crc-mismatch``, ...).

``notes`` counts frames read through a known quirk of their writer, by name, so a summary can
say so (``lltf-only-print``: ESP32-CSI-Tool printed 128 values of a longer buffer;
``negative-local-timestamp``; ``time-from-host-column``; ``times-spread-over-duration``: a file
without per-frame times, spread evenly). Notes are not inputs: they never change ``n_inputs``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from csi_edge.frames import FrameBatch, Packet
from csi_edge.skips import SkipCounter


@dataclass
class DecodeResult:
    """Frames + packets + skip counts from one decode call (see module docstring)."""

    frames: FrameBatch = field(default_factory=FrameBatch.empty)
    packets: list[Packet] = field(default_factory=list)
    packet_counts: Counter = field(default_factory=Counter)
    skipped: SkipCounter = field(default_factory=SkipCounter)
    notes: Counter = field(default_factory=Counter)
    #: the I/Q order asked for when reading; frames keep raw bytes, consumers apply it
    iq_order: str = "imag-first"

    @property
    def n_inputs(self) -> int:
        """Frames + packets + skipped: the number of inputs the decoder was given."""
        return len(self.frames) + sum(self.packet_counts.values()) + sum(self.skipped.values())

    def add_packet(self, packet: Packet) -> None:
        self.packets.append(packet)
        self.packet_counts[packet.kind] += 1

    def merge(self, other: DecodeResult) -> DecodeResult:
        """A new result holding this one followed by ``other``."""
        return DecodeResult.concat([self, other])

    @classmethod
    def concat(cls, results: Iterable[DecodeResult]) -> DecodeResult:
        """Join results in order: frames concatenated (source tables merged), counts summed."""
        results = list(results)
        out = cls(frames=FrameBatch.concat(r.frames for r in results))
        if results:
            out.iq_order = results[0].iq_order
        if not len(out.frames) and results:
            # keep the source table of empty batches, so callers can still name sources
            for r in results:
                for s in r.frames.sources:
                    if s not in out.frames.sources:
                        out.frames.sources.append(s)
        for r in results:
            out.packets.extend(r.packets)
            out.packet_counts.update(r.packet_counts)
            out.skipped.update(r.skipped)
            out.notes.update(r.notes)
        return out

    def summary_counts(self) -> dict:
        """``{"frames": n, "packets": {...}, "skipped": {...}, "notes": {...}}``, plain ints."""
        return {
            "frames": len(self.frames),
            "packets": {k: int(v) for k, v in sorted(self.packet_counts.items()) if v},
            "skipped": self.skipped.as_dict(),
            "notes": {k: int(v) for k, v in sorted(self.notes.items()) if v},
        }
