"""Model runtime: bundles (manifest + model files), backends (onnxruntime / LiteRT), streaming.

Nothing heavy is imported here: ``import edge.inference.manifest`` costs only the stdlib.
"""
