"""Where CSI comes from: UDP (RuView ADR-018 nodes), serial consoles, replayed captures, simulated nodes.

Every live source has the same shape: ``await source.run(emit)`` runs until ``source.close()``
(or cancellation) and calls ``emit(result)`` with each :class:`csi_edge.codecs.result.DecodeResult`
on the event loop's thread. :class:`csi_edge.ingest.Ingest` runs any set of them on one loop.
"""
