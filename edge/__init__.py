"""csi-edge gateway runtime: sources, codecs, DSP, inference, temporal head, vitals, sinks, CLI."""

__version__ = "0.1.0"
