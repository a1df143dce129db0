"""An emulated ESP32-S3 (ROM loader + flasher stub + RuView node boot) on a pseudo-terminal."""

from csi_edge.firmware.emulator.board import Board, control
from csi_edge.firmware.emulator.node import NodeOptions

__all__ = ["Board", "NodeOptions", "control"]
