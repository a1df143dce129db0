"""The raw capture ring: every datagram received, as rotating pcap files, for replay when
something went wrong (``csi-edge decode`` and Wireshark read them).

It hooks into a UDP source's ``raw_sink`` (before decoding, so garbage is kept too) and reuses
:class:`~csi_edge.codecs.pcap.PcapWriter`; :class:`~csi_edge.sinks.rotate.RotatingFile` bounds the
folder (``capture.pcap`` + ``capture.<UTC time>.pcap.gz`` x keep).
"""

from __future__ import annotations

import logging
from pathlib import Path

from csi_edge.codecs.pcap import PcapWriter
from csi_edge.sinks.rotate import RotatePolicy, RotatingFile

log = logging.getLogger("csi_edge.capture")


class _Tee:
    """The file object PcapWriter writes into: forwards to the rotating file."""

    def __init__(self, ring: CaptureRing) -> None:
        self.ring = ring
        self.header: bytes | None = None

    def write(self, data: bytes) -> int:
        if self.header is None:
            self.header = bytes(data)  # the global header PcapWriter writes first
            return len(data)
        self.ring.file.write(data)
        return len(data)

    def flush(self) -> None:
        pass


class CaptureRing:
    def __init__(self, folder: str | Path, policy: RotatePolicy | None = None, port: int = 5005) -> None:
        self.path = Path(folder) / "capture.pcap"
        self._tee = _Tee(self)
        self.writer = PcapWriter(self._tee, dst_ip="127.0.0.1", dst_port=port)
        self.file = RotatingFile(self.path, policy, header=lambda f: f.write(self._tee.header))
        self.written = 0
        self.dropped = 0
        self.failing: str | None = None

    def __call__(self, datagrams, times, addrs) -> None:
        """``raw_sink`` of a UdpSource: called on the loop with each batch."""
        try:
            for d, t, a in zip(datagrams, times, addrs, strict=True):
                self.writer.write(d, float(t), a[0], a[1])
            self.written += len(datagrams)
            self.file.sync()
        except OSError as e:
            self.dropped += len(datagrams)
            if self.failing != (e.strerror or str(e)):
                self.failing = e.strerror or str(e)
                log.error("capture ring %s: cannot write: %s (%d datagram(s) not captured)",
                          self.path, self.failing, self.dropped)
            return
        self.failing = None

    def close(self) -> None:
        try:
            self.file.close()
        except OSError as e:
            log.error("capture ring %s: last write failed: %s", self.path, e.strerror or e)
