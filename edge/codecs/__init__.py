"""Decoders for every CSI wire and file format, all returning :class:`~csi_edge.codecs.result.DecodeResult`.

* :mod:`csi_edge.codecs.ruview`: RuView ADR-018 UDP datagrams (raw CSI + sibling packets), encoders;
* :mod:`csi_edge.codecs.text`: serial ``CSI_DATA`` lines (esp-csi 3 layouts, ESP32-CSI-Tool);
* :mod:`csi_edge.codecs.jsonl`: RuView ``.csi.jsonl`` recordings;
* :mod:`csi_edge.codecs.pcap`: pcap/pcapng reader (fast path) and classic-pcap writer;
* :mod:`csi_edge.codecs.recording`: csi-edge's lossless recording of serial lines;
* :mod:`csi_edge.capture`: format detection and chunked reading of any capture file.
"""
