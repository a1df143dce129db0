"""Live ESPectre nodes: their UDP CSI stream (``me stream --ip <gateway>``, port 5001).

The wire format is in :mod:`csi_edge.codecs.espectre`; receiving (buffers, draining, batching)
is :class:`~csi_edge.sources.udp.UdpSource`'s, only the decoder differs. ESPectre's sequence
number is one byte: it is unwrapped per sender here so loss statistics stay right across the
255 -> 0 wrap (a wrap and a reboot cannot be told apart on this wire).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from csi_edge.codecs.espectre import STREAM_PORT, decode_stream
from csi_edge.codecs.result import DecodeResult
from csi_edge.sources.udp import UdpSource


class EspectreDecoder:
    """``decode(datagrams, t_rx, sources)`` like :class:`~csi_edge.codecs.ruview.RuViewDecoder`."""

    def __init__(self) -> None:
        self._seq: dict[str, tuple[int, int]] = {}  # source -> (last raw seq, wraps * 256)

    def decode(
        self,
        datagrams: Sequence[bytes],
        t_rx: np.ndarray | float,
        sources: Sequence[str] | str,
        iq_order: str = "imag-first",
    ) -> DecodeResult:
        n = len(datagrams)
        t = np.broadcast_to(np.asarray(t_rx, np.float64), (n,))
        srcs = [sources] * n if isinstance(sources, str) else list(sources)
        parts = []
        for src in dict.fromkeys(srcs):
            idx = [i for i, s in enumerate(srcs) if s == src]
            res = decode_stream([datagrams[i] for i in idx], t[idx], src)
            res.frames.meta["seq"] = self._unwrap(src, res.frames.meta["seq"])
            parts.append(res)
        return DecodeResult.concat(parts)

    def _unwrap(self, src: str, raw: np.ndarray) -> np.ndarray:
        last, base = self._seq.get(src, (None, 0))
        out = np.empty(len(raw), np.int64)
        for j, s in enumerate(raw.tolist()):
            if last is not None and s < last - 128:
                base += 256
            out[j], last = base + s, s
        if last is not None:
            self._seq[src] = (last, base)
        return out


class EspectreSource(UdpSource):
    """Receive ESPectre CSI datagrams on ``host:port`` (default 5001) and emit frames."""

    kind = "espectre"

    def __init__(self, host: str = "0.0.0.0", port: int = STREAM_PORT, **kw) -> None:
        super().__init__(host, port, **kw)
        self.decoder = EspectreDecoder()

    @property
    def name(self) -> str:
        return f"espectre://{self.host}:{self.port}"
