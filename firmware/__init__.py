"""Flashing and provisioning ESP32-S3 CSI nodes, and the emulated board used to test them."""
