"""Decoders for every CSI wire and file format, all returning :class:`~edge.codecs.result.DecodeResult`.

* :mod:`edge.codecs.ruview`: RuView ADR-018 UDP datagrams (raw CSI + sibling packets), encoders;
* :mod:`edge.codecs.text`: serial ``CSI_DATA`` lines (esp-csi 3 layouts, ESP32-CSI-Tool);
* :mod:`edge.codecs.jsonl`: RuView ``.csi.jsonl`` recordings;
* :mod:`edge.codecs.pcap`: pcap/pcapng reader (fast path) and classic-pcap writer;
* :mod:`edge.codecs.recording`: csi-edge's lossless recording of serial lines;
* :mod:`edge.capture`: format detection and chunked reading of any capture file.
"""
