"""The ESP32-S3 serial download protocol: the ROM loader and, once uploaded, esptool's flasher stub.

Facts from esptool 5.x (``esptool/loader.py``, ``targets/esp32s3.py``) and esp-flasher-stub
(``src/command_handler.c``, ``src/commands.h``):

* request ``<BBHI`` (direction 0, command, size, checksum) + data; response ``<BBHI`` (direction 1,
  command, size, value) + data + status. The ROM appends 4 status bytes ``[status, error, 0, 0]``
  with ROM error codes (0x05 invalid message, 0x06 failed to act, 0x07 checksum, 0x08 flash write,
  0x09 flash read, 0x0B deflate); the stub appends a big-endian u16 code (0xC000 bad length,
  0xC100 bad checksum, 0xC300 invalid command, 0xC400 failed SPI op, 0xC700 inflate error, ...).
* SYNC is answered 8 times; the ROM puts a non-zero value in the response, the stub 0 (that is how
  esptool tells a running stub apart).
* The stub announces itself with the SLIP packet ``OHAI`` after MEM_END with an entry point.
* READ_FLASH (stub): ack the command, then send ``packet_size`` chunks one at a time, each after
  the host acknowledged the running total with a 4-byte packet, then the 16-byte MD5.
* esptool reads the chip through registers: eFuse MAC at 0x60007044/48, revision words in eFuse
  BLOCK1, and the flash JEDEC id / SFDP through the SPI1 user-command registers at 0x60002000.

The emulator cannot run Xtensa code: any RAM upload finished with an entry point is taken to be
the flasher stub.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from csi_edge.errors import CsiEdgeError
from csi_edge.firmware.emulator import spiflash
from csi_edge.firmware.emulator.flashmem import Flash, FlashError

# Commands
SYNC, READ_REG, WRITE_REG = 0x08, 0x0A, 0x09
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3

# ROM error codes (second status byte) and stub response codes (big-endian u16)
ROM_INVALID_MSG, ROM_FAILED, ROM_BAD_CHECKSUM = 0x05, 0x06, 0x07
ROM_FLASH_WRITE_ERR, ROM_FLASH_READ_ERR, ROM_INFLATE_ERR = 0x08, 0x09, 0x0B
STUB_BAD_LEN, STUB_BAD_CHECKSUM, STUB_INVALID_CMD = 0xC000, 0xC100, 0xC300
STUB_FAILED_SPI, STUB_NOT_IN_FLASH_MODE, STUB_INFLATE_ERR = 0xC400, 0xC600, 0xC700
STUB_NOT_ENOUGH_DATA, STUB_TOO_MUCH_DATA = 0xC800, 0xC900

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
ROM_SYNC_VALUE = 0x20120707

# Registers esptool reads or writes on an ESP32-S3
EFUSE_BASE = 0x60007000
MAC_WORD0, MAC_WORD1 = EFUSE_BASE + 0x44, EFUSE_BASE + 0x48
EFUSE_BLOCK1_W3, EFUSE_BLOCK1_W5 = EFUSE_BASE + 0x44 + 12, EFUSE_BASE + 0x44 + 20
CHIP_DETECT_MAGIC_REG = 0x40001000
RTC_CNTL_OPTION1_REG = 0x6000812C  # esptool clears FORCE_DOWNLOAD_BOOT right before a hard reset
RTC_CNTL_WDTCONFIG0_REG = 0x60008098  # esptool's watchdog reset enables the RTC WDT here
SPI_BASE = 0x60002000
SPI_CMD, SPI_ADDR, SPI_USR2, SPI_W0 = SPI_BASE, SPI_BASE + 0x04, SPI_BASE + 0x20, SPI_BASE + 0x58
SPI_USR, SPI_MISO_DLEN = SPI_BASE + 0x18, SPI_BASE + 0x28
SPI_CMD_USR, SPI_USR_MISO = 1 << 18, 1 << 28
UART_CLKDIV_REG = 0x60000014

CHIPS = {
    # name: (chip id from GET_SECURITY_INFO or None, magic register value)
    "esp32s3": (9, 0x00000009),
    "esp32c3": (5, 0x1B31506F),
    "esp32": (None, 0x00F01D83),
}


@dataclass
class _FlashOp:
    offset: int
    remaining: int  # bytes still to be written
    block_size: int
    next_seq: int = 0
    inflater: zlib._Decompress | None = None  # type: ignore[name-defined]
    write_pos: int = 0


class LoaderError(CsiEdgeError):
    """A command failed: carries the ROM error code and the stub response code."""

    def __init__(self, rom: int, stub: int, why: str) -> None:
        super().__init__(why)
        self.rom, self.stub = rom, stub


class Loader:
    """Protocol state machine. ``handle`` takes one decoded packet and returns packets to send.

    ``on_event(name)`` is called for board-level effects: ``"run"`` (jump to user code),
    ``"download"`` (reboot into the ROM loader), ``"hard-reset"`` (esptool is about to pulse EN),
    ``"watchdog-reset"``.
    """

    def __init__(
        self,
        flash: Flash,
        *,
        mac: bytes = bytes.fromhex("f412fa000001"),
        chip: str = "esp32s3",
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        if chip not in CHIPS:
            raise ValueError(f"unknown chip {chip!r}; choose from {', '.join(CHIPS)}")
        self.flash, self.mac, self.chip = flash, mac, chip
        self.on_event = on_event or (lambda _e: None)
        self.reset()

    def reset(self) -> None:
        """Back to a fresh ROM loader (after any chip reset)."""
        self.stub = False
        self.flash_attached = False  # the ROM leaves SPI flash detached until SPI_ATTACH
        self.baud = 115200
        self.regs: dict[int, int] = {}
        self._op: _FlashOp | None = None
        self._mem: list[int] | None = None  # [remaining, offset]
        self._read: list[int] | None = None  # READ_FLASH: [offset, remaining, packet, acked_target]
        self._read_md5 = hashlib.md5()
        self.stats = {"commands": 0, "errors": 0}

    # ---------- framing ----------
    def _response(
        self, op: int, value: int = 0, payload: bytes = b"", code: int = 0, rom: int = 0
    ) -> bytes:
        status = struct.pack(">H", code) if self.stub else bytes([1 if rom else 0, rom, 0, 0])
        data = payload + status
        return struct.pack("<BBHI", 1, op, len(data), value) + data

    def _error(self, op: int, err: LoaderError) -> bytes:
        self.stats["errors"] += 1
        return self._response(op, code=err.stub, rom=err.rom)

    def handle(self, packet: bytes, ok: bool = True) -> list[bytes]:
        """Process one SLIP-decoded packet (``ok`` False = malformed SLIP escape)."""
        if self._read is not None:
            return self._read_ack(packet)
        op = packet[1] if len(packet) > 1 else 0
        if not ok or len(packet) < 8:
            return [self._error(op, LoaderError(ROM_INVALID_MSG, STUB_BAD_LEN, "malformed frame"))]
        direction, op, size, chk = struct.unpack_from("<BBHI", packet)
        data = packet[8:]
        if direction != 0:
            return [
                self._error(op, LoaderError(ROM_INVALID_MSG, STUB_INVALID_CMD, "not a request"))
            ]
        if size != len(data):
            return [self._error(op, LoaderError(ROM_INVALID_MSG, STUB_BAD_LEN, "length mismatch"))]
        self.stats["commands"] += 1
        try:
            return self._dispatch(op, data, chk)
        except LoaderError as e:
            return [self._error(op, e)]

    # ---------- commands ----------
    def _dispatch(self, op: int, data: bytes, chk: int) -> list[bytes]:
        stub = self.stub
        if op == SYNC:
            if data != SYNC_PAYLOAD:
                raise LoaderError(ROM_INVALID_MSG, STUB_BAD_LEN, "bad sync payload")
            value = 0 if stub else ROM_SYNC_VALUE
            return [self._response(SYNC, value)] * 8
        if op == READ_REG:
            _need(data, 4)
            return [self._response(op, self._read_reg(struct.unpack("<I", data)[0]))]
        if op == WRITE_REG:
            if not data or len(data) % 16:
                raise LoaderError(ROM_INVALID_MSG, STUB_NOT_ENOUGH_DATA, "bad WRITE_REG length")
            for i in range(0, len(data), 16):
                self._write_reg(*struct.unpack_from("<III", data, i))
            return [self._response(op)]
        if op == GET_SECURITY_INFO:
            chip_id = CHIPS[self.chip][0]
            if chip_id is None:  # the ESP32 ROM has no such command
                raise LoaderError(ROM_INVALID_MSG, STUB_INVALID_CMD, "unsupported")
            info = struct.pack("<IB7sII", 0, 0, b"\0" * 7, chip_id, 0)
            return [self._response(op, payload=info)]
        if op == SPI_ATTACH:
            _need(data, 4 if stub else 8)
            self.flash_attached = True
            return [self._response(op)]
        if op == SPI_SET_PARAMS:
            _need(data, 24)
            return [self._response(op)]
        if op == CHANGE_BAUDRATE:
            _need(data, 8)
            self.baud = struct.unpack_from("<I", data)[0]
            return [self._response(op)]
        if op in (FLASH_BEGIN, FLASH_DEFL_BEGIN):
            return [self._flash_begin(op, data)]
        if op in (FLASH_DATA, FLASH_DEFL_DATA):
            return [self._flash_data(op, data, chk)]
        if op in (FLASH_END, FLASH_DEFL_END):
            return self._flash_end(op, data)
        if op == SPI_FLASH_MD5:
            _need(data, 16)
            addr, size = struct.unpack_from("<II", data)
            content = self._flash_read(addr, size)
            digest = hashlib.md5(content)
            payload = digest.digest() if stub else digest.hexdigest().encode()
            return [self._response(op, payload=payload)]
        if op == MEM_BEGIN:
            _need(data, 16)
            size, _blocks, _bs, offset = struct.unpack("<IIII", data)
            self._mem = [size, offset]
            return [self._response(op)]
        if op == MEM_DATA:
            return [self._mem_data(data, chk)]
        if op == MEM_END:
            _need(data, 8)
            if self._mem is None:
                raise LoaderError(ROM_FAILED, STUB_NOT_IN_FLASH_MODE, "MEM_END without MEM_BEGIN")
            flag, _entry = struct.unpack("<II", data)
            self._mem = None
            out = [self._response(op)]
            if flag == 0:
                # A (new) stub starts: the ROM, or a running stub, jumps to the entry point. The
                # stub attaches the flash itself and greets with OHAI (a host that reconnected
                # with --before no-reset-no-sync uploads it again while the old one runs).
                self.stub = True
                self.flash_attached = True
                self._op, self._read = None, None
                out.append(b"OHAI")
            return out
        if op == READ_FLASH_SLOW and not stub:
            _need(data, 8)
            addr, size = struct.unpack("<II", data)
            if size > 64:
                raise LoaderError(ROM_INVALID_MSG, 0, "read block too long")
            return [self._response(op, payload=self._flash_read(addr, size).ljust(64, b"\xff"))]
        if stub and op == READ_FLASH:
            _need(data, 16)
            offset, size, packet, _inflight = struct.unpack("<IIII", data)
            if packet == 0 or packet > 4096:
                raise LoaderError(0, STUB_BAD_LEN, "bad packet size")
            self._flash_read(offset, size)  # bounds check before acknowledging
            self._read = [offset, size, packet, 0]
            self._read_md5 = hashlib.md5()
            return [self._response(op)] + self._read_next()
        if stub and op == ERASE_FLASH:
            self.flash.erase_all()
            return [self._response(op)]
        if stub and op == ERASE_REGION:
            _need(data, 8)
            offset, size = struct.unpack("<II", data)
            if offset % 0x1000 or size % 0x1000:
                raise LoaderError(0, STUB_BAD_LEN, "erase region not sector aligned")
            self._flash_call(self.flash.erase, offset, size)
            return [self._response(op)]
        if stub and op == RUN_USER_CODE:
            return []  # the stub sends no response to this command
        raise LoaderError(ROM_INVALID_MSG, STUB_INVALID_CMD, f"unsupported command 0x{op:02x}")

    def _read_reg(self, addr: int) -> int:
        mac = self.mac
        fixed = {
            MAC_WORD0: int.from_bytes(mac[2:6], "big"),
            MAC_WORD1: int.from_bytes(mac[0:2], "big"),
            EFUSE_BLOCK1_W3: 2 << 18,  # chip revision v0.2, QFN56, no embedded flash/PSRAM
            EFUSE_BLOCK1_W5: 0,
            CHIP_DETECT_MAGIC_REG: CHIPS[self.chip][1],
            UART_CLKDIV_REG: 40_000_000 // 115200,
            SPI_CMD: 0,  # user commands complete immediately
        }
        if addr in fixed:
            return fixed[addr]
        return self.regs.get(addr, 0)

    def _write_reg(self, addr: int, value: int, mask: int) -> None:
        old = self.regs.get(addr, 0)
        new = (value & mask) | (old & ~mask & 0xFFFFFFFF)
        self.regs[addr] = new
        if addr == SPI_CMD and value & SPI_CMD_USR:
            self._spi_user_command()
        elif addr == RTC_CNTL_OPTION1_REG and mask & 1 and not value & 1:
            self.on_event("hard-reset")
        elif addr == RTC_CNTL_WDTCONFIG0_REG and value & (1 << 31):
            self.on_event("watchdog-reset")

    def _spi_user_command(self) -> None:
        """Answer the SPI flash commands esptool runs through the user-command registers."""
        if not self.regs.get(SPI_USR, 0) & SPI_USR_MISO:
            return  # no read phase: W0 keeps what the host wrote
        self.regs[SPI_W0] = spiflash.user_command(
            self.regs.get(SPI_USR2, 0) & 0xFF,
            self.regs.get(SPI_ADDR, 0) & 0xFFFFFF,
            (self.regs.get(SPI_MISO_DLEN, 0) & 0x3FF) + 1,
            self.flash.size,
            self.flash_attached,
        )

    def _flash_call(self, fn: Callable, *args: int | bytes) -> None:
        try:
            fn(*args)
        except FlashError as e:
            raise LoaderError(ROM_FLASH_WRITE_ERR, STUB_FAILED_SPI, str(e)) from None

    def _flash_read(self, addr: int, size: int) -> bytes:
        try:
            return self.flash.read(addr, size)
        except FlashError as e:
            raise LoaderError(ROM_FLASH_READ_ERR, STUB_FAILED_SPI, str(e)) from None

    def _flash_begin(self, op: int, data: bytes) -> bytes:
        if len(data) not in (16, 20):
            raise LoaderError(ROM_INVALID_MSG, STUB_BAD_LEN, "bad FLASH_BEGIN length")
        size, blocks, block_size, offset = struct.unpack_from("<IIII", data)
        compressed = op == FLASH_DEFL_BEGIN
        if self.flash.size < offset + size:
            raise LoaderError(ROM_FAILED, STUB_FAILED_SPI, "region outside flash")
        self._flash_call(self.flash.erase, offset, size)
        remaining = size
        if not self.stub and not compressed:
            remaining = blocks * block_size  # the ROM writes whole (0xFF-padded) blocks
        self._op = _FlashOp(
            offset, remaining, block_size, inflater=zlib.decompressobj() if compressed else None
        )
        return self._response(op)

    def _flash_data(self, op: int, data: bytes, chk: int) -> bytes:
        if len(data) < 16:
            raise LoaderError(ROM_INVALID_MSG, STUB_NOT_ENOUGH_DATA, "short data header")
        if self._op is None or (op == FLASH_DEFL_DATA) != (self._op.inflater is not None):
            raise LoaderError(ROM_FAILED, STUB_NOT_IN_FLASH_MODE, "not in flash mode")
        length, seq = struct.unpack_from("<II", data)
        block = data[16:]
        if length != len(block):
            raise LoaderError(ROM_INVALID_MSG, STUB_TOO_MUCH_DATA, "length field mismatch")
        if _checksum(block) != chk:
            raise LoaderError(ROM_BAD_CHECKSUM, STUB_BAD_CHECKSUM, "checksum mismatch")
        fop = self._op
        if seq != fop.next_seq:
            raise LoaderError(ROM_FAILED, STUB_BAD_LEN, f"expected block {fop.next_seq}, got {seq}")
        if fop.inflater is not None:
            try:
                out = fop.inflater.decompress(block)
            except zlib.error as e:
                raise LoaderError(ROM_INFLATE_ERR, STUB_INFLATE_ERR, str(e)) from None
        else:
            out = block
        if len(out) > fop.remaining:
            if fop.inflater is None and self.stub:
                out = out[
                    : fop.remaining
                ]  # esptool pads the last block; the stub writes what was announced
            else:
                raise LoaderError(
                    ROM_FLASH_WRITE_ERR, STUB_TOO_MUCH_DATA, "more data than announced"
                )
        self._flash_call(self.flash.write, fop.offset + fop.write_pos, out)
        fop.write_pos += len(out)
        fop.remaining -= len(out)
        fop.next_seq += 1
        return self._response(op)

    def _flash_end(self, op: int, data: bytes) -> list[bytes]:
        _need(data, 4)
        run_user_code = struct.unpack("<I", data)[0]
        if self.stub:
            if self._op is None:
                raise LoaderError(0, STUB_NOT_IN_FLASH_MODE, "not in flash mode")
            if self._op.remaining:
                raise LoaderError(0, STUB_BAD_LEN, "flash data incomplete")
        self._op = None
        self.flash.flush()
        out = [self._response(op)]
        if run_user_code:
            if not self.stub:
                self.on_event("run")  # the ROM leaves the loader and jumps to the app
        else:
            self.on_event("download")  # reboot: the stub (or ROM) restarts into the ROM loader
        return out

    def _mem_data(self, data: bytes, chk: int) -> bytes:
        if len(data) < 16:
            raise LoaderError(ROM_INVALID_MSG, STUB_NOT_ENOUGH_DATA, "short data header")
        if self._mem is None:
            raise LoaderError(ROM_FAILED, STUB_NOT_IN_FLASH_MODE, "not in RAM download mode")
        length = struct.unpack_from("<I", data)[0]
        block = data[16:]
        if length != len(block) or length > self._mem[0]:
            raise LoaderError(ROM_INVALID_MSG, STUB_TOO_MUCH_DATA, "bad RAM block length")
        if _checksum(block) != chk:
            raise LoaderError(ROM_BAD_CHECKSUM, STUB_BAD_CHECKSUM, "checksum mismatch")
        self._mem[0] -= length
        return self._response(MEM_DATA)

    # ---------- stub READ_FLASH streaming ----------
    def _read_next(self) -> list[bytes]:
        assert self._read is not None
        offset, remaining, packet, _ = self._read
        if remaining == 0:
            self._read = None
            return [self._read_md5.digest()]
        chunk = self.flash.read(offset, min(packet, remaining))
        self._read_md5.update(chunk)
        self._read[0] += len(chunk)
        self._read[1] -= len(chunk)
        self._read[3] += len(chunk)
        return [chunk]

    def _read_ack(self, packet: bytes) -> list[bytes]:
        assert self._read is not None
        if len(packet) != 4:
            self._read = None  # the stub abandons the transfer on anything but an ack
            return []
        acked = struct.unpack("<I", packet)[0]
        if acked < self._read[3]:
            return []
        return self._read_next()


def _need(data: bytes, n: int) -> None:
    if len(data) != n:
        raise LoaderError(
            ROM_INVALID_MSG, STUB_BAD_LEN, f"expected {n} bytes of parameters, got {len(data)}"
        )


def _checksum(block: bytes) -> int:
    from csi_edge.firmware.espimage import _xor_bytes

    return 0xEF ^ _xor_bytes(block)
