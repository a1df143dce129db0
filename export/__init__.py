"""torch checkpoints -> ONNX / INT8 / TFLite, with parity reports (needs the `export` extra)."""
