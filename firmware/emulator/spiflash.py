"""The emulated flash chip's answers to raw SPI commands (esptool runs them through SPI1's
user-command registers): RDID and the SFDP table, on an attached or a detached bus.

Why a model of the chip and not fixed words: esptool reads SFDP at any address and length
(``read-flash-sfdp ADDR BYTES``, its XMC start-up check at 0x10, the connection check at 0) and
tells an attached flash from a floating bus by these answers (``test_attach_flash``).

The table follows JEDEC JESD216 as a Winbond W25Q64JV-class chip fills it: the ``SFDP``
signature, revision 1.6, one parameter header pointing at the 16-dword basic flash parameter
table at 0x80, whose second dword is the density in bits minus one (taken from the flash size).
Unused SFDP space reads 0xFF, as on the chip.
"""

from __future__ import annotations

import struct

MANUFACTURER = 0xEF  # Winbond
MEMORY_TYPE = 0x40
RDID, RDSFDP = 0x9F, 0x5A
SFDP_SIZE = 0x100
BFPT_OFFSET = 0x80

# Basic flash parameter table of a W25Q64JV (JESD216 rev B), dword 2 (density) filled in later
_BFPT = bytes.fromhex(
    "e520f9ff 00000000 44eb086b 083b42bb feffffff ffff0000 ffff40eb 0c200f52"
    "10d80000 3602a600 82ea14c4 e9637633 7a757a75 f7a2d55c 19f74dff e930f880"
)


def sfdp_table(flash_size: int) -> bytes:
    """The chip's whole SFDP space (256 bytes) for a flash of ``flash_size`` bytes."""
    table = bytearray(b"\xff" * SFDP_SIZE)
    # header: signature, minor 6, major 1, NPH 0 (one parameter header), unused 0xFF
    table[0:8] = b"SFDP" + bytes([0x06, 0x01, 0x00, 0xFF])
    # parameter header 0: JEDEC basic table, rev 1.6, 16 dwords, at 0x000080
    table[8:16] = bytes([0x00, 0x06, 0x01, 0x10]) + BFPT_OFFSET.to_bytes(3, "little") + b"\xff"
    bfpt = bytearray(_BFPT)
    struct.pack_into("<I", bfpt, 4, flash_size * 8 - 1)
    table[BFPT_OFFSET : BFPT_OFFSET + len(bfpt)] = bfpt
    return bytes(table)


def user_command(cmd: int, addr: int, miso_bits: int, flash_size: int, attached: bool) -> int:
    """The word SPI_W0 holds after the command: ``miso_bits`` bits clocked in, LSB first.

    A detached flash (ROM loader before SPI_ATTACH) leaves MISO floating high: all ones."""
    bits = max(0, min(miso_bits, 32))
    mask = (1 << bits) - 1
    if not attached:
        return mask
    if cmd == RDID:
        ident = MANUFACTURER | (MEMORY_TYPE << 8) | ((flash_size.bit_length() - 1) << 16)
        return ident & mask
    if cmd == RDSFDP:
        table = sfdp_table(flash_size)
        data = bytes(table[a] if a < SFDP_SIZE else 0xFF for a in range(addr, addr + 4))
        return int.from_bytes(data, "little") & mask
    return 0  # commands with no data phase (reset enable, reset, power-down, ...)
