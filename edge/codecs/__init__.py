"""Decoders for every CSI wire and file format, all returning :class:`~csi_edge.codecs.result.DecodeResult`.

* :mod:`csi_edge.codecs.ruview`: RuView ADR-018 UDP datagrams (raw CSI + sibling packets), encoders;
* :mod:`csi_edge.codecs.text`: serial ``CSI_DATA`` lines and CSVs (esp-csi 3 layouts,
  ESP32-CSI-Tool, header-driven variants; ``docs/text-captures.md``);
* :mod:`csi_edge.codecs.espectre`: ESPectre ``.npz`` captures and its UDP stream;
* :mod:`csi_edge.codecs.frames_out`: decoded frames written as ``.jsonl`` / ``.npz``;
* :mod:`csi_edge.codecs.jsonl`: RuView ``.csi.jsonl`` recordings;
* :mod:`csi_edge.codecs.pcap`: pcap/pcapng reader (fast path) and classic-pcap writer;
* :mod:`csi_edge.codecs.recording`: csi-edge's lossless recording of serial lines;
* :mod:`csi_edge.registry`: the one list of capture formats (detection, names, readers);
* :mod:`csi_edge.capture`: format detection and chunked reading of any capture file.
"""
