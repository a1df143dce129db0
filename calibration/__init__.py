"""Calibration data sets for quantization and per-node empty-room baselines."""
