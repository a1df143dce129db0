"""ESP32-S3 flash formats: app/bootloader image headers, partition tables, otadata, app descriptor.

Both the flasher (to refuse a bad image before touching a board) and the emulated board (to decide
whether it boots) need the same checks, so they live here once.

Hand-written on purpose: ESP-IDF's ``gen_esp32part.py`` and ``otatool.py`` ship only inside the
ESP-IDF tree (not on PyPI), and esptool's image classes changed their API between 4.x and 5.x;
these formats are small and fixed (ESP-IDF docs: "App Image Format", "Partition Tables").
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from csi_edge.errors import InputError

IMAGE_MAGIC = 0xE9
CHECKSUM_SEED = 0xEF
ESP32S3_CHIP_ID = 9
CHIP_NAMES = {
    0: "ESP32",
    2: "ESP32-S2",
    5: "ESP32-C3",
    9: "ESP32-S3",
    12: "ESP32-C2",
    13: "ESP32-C6",
}
APP_DESC_MAGIC = 0xABCD5432
_HEADER = struct.Struct("<BBBBI")
_EXT_HEADER = struct.Struct("<BBBBHBHH4sB")
_SEGMENT = struct.Struct("<II")

PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_MAX = 0xC00
_PART_ENTRY = struct.Struct("<2sBBII16sI")
_PART_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14
TYPE_APP, TYPE_DATA = 0, 1
SUBTYPE_NAMES = {
    TYPE_APP: {0x00: "factory", **{0x10 + i: f"ota_{i}" for i in range(16)}, 0x20: "test"},
    TYPE_DATA: {
        0x00: "ota",
        0x01: "phy",
        0x02: "nvs",
        0x03: "coredump",
        0x04: "nvs_keys",
        0x05: "efuse",
        0x80: "esphttpd",
        0x81: "fat",
        0x82: "spiffs",
        0x83: "littlefs",
    },
}
OTADATA_SIZE = 0x2000
_OTA_ENTRY = struct.Struct("<I20sII")


class ImageError(InputError):
    """An image, partition table or otadata blob is not what the ESP32-S3 bootloader accepts."""


@dataclass
class AppDescription:
    """esp_app_desc_t: the version string csi-edge records per board."""

    version: str
    project_name: str
    idf_ver: str
    date: str = ""
    time: str = ""


@dataclass
class ImageInfo:
    """What an image header says, plus whether its checksum and SHA-256 hold."""

    chip_id: int
    segments: list[tuple[int, int, int]]  # (load address, file offset of data, length)
    entry: int
    flash_mode: int
    flash_size_freq: int
    length: int  # bytes from the header to the end of the checksum (+ SHA-256 when appended)
    hash_appended: bool
    app: AppDescription | None = None

    @property
    def chip_name(self) -> str:
        return CHIP_NAMES.get(self.chip_id, f"chip id {self.chip_id}")


def parse_image(data: bytes, *, what: str = "image", verify: bool = True) -> ImageInfo:
    """Parse and (by default) verify an ESP32-family image; raise ImageError saying what is wrong."""
    if len(data) < _HEADER.size + _EXT_HEADER.size:
        raise ImageError(f"{what}: {len(data)} bytes is too short for an image header")
    magic, nseg, mode, size_freq, entry = _HEADER.unpack_from(data, 0)
    if magic != IMAGE_MAGIC:
        raise ImageError(f"{what}: bad image magic 0x{magic:02x} (expected 0xe9)")
    ext = _EXT_HEADER.unpack_from(data, _HEADER.size)
    chip_id, hash_appended = ext[4], ext[9] == 1
    if nseg == 0 or nseg > 16:
        raise ImageError(f"{what}: implausible segment count {nseg}")
    pos = _HEADER.size + _EXT_HEADER.size
    segments = []
    checksum = CHECKSUM_SEED
    for i in range(nseg):
        if pos + _SEGMENT.size > len(data):
            raise ImageError(f"{what}: truncated at segment {i} header")
        addr, length = _SEGMENT.unpack_from(data, pos)
        pos += _SEGMENT.size
        if pos + length > len(data):
            raise ImageError(f"{what}: segment {i} ({length} bytes) runs past the end of the file")
        segments.append((addr, pos, length))
        if verify:
            checksum ^= _xor_bytes(data[pos : pos + length])
        pos += length
    pos += 15 - (pos % 16)  # checksum byte sits at the last byte of a 16-byte block
    if pos >= len(data):
        raise ImageError(f"{what}: truncated before the checksum byte")
    if verify and data[pos] != checksum:
        raise ImageError(
            f"{what}: checksum mismatch (stored 0x{data[pos]:02x}, computed 0x{checksum:02x})"
        )
    pos += 1
    if hash_appended:
        if pos + 32 > len(data):
            raise ImageError(f"{what}: SHA-256 digest missing")
        if verify and hashlib.sha256(data[:pos]).digest() != data[pos : pos + 32]:
            raise ImageError(f"{what}: SHA-256 digest mismatch")
        pos += 32
    info = ImageInfo(chip_id, segments, entry, mode, size_freq, pos, hash_appended)
    info.app = _app_description(data, segments)
    return info


def _xor_bytes(buf: bytes) -> int:
    """XOR of all bytes, fast: fold the buffer as one big integer (halving) instead of looping."""
    n, width = int.from_bytes(buf, "little"), len(buf) * 8
    while width > 8:
        half = ((width // 8 + 1) // 2) * 8
        n = (n & ((1 << half) - 1)) ^ (n >> half)
        width = half
    return n & 0xFF


def _app_description(data: bytes, segments: list[tuple[int, int, int]]) -> AppDescription | None:
    if not segments:
        return None
    _, off, length = segments[0]
    if length < 256 or struct.unpack_from("<I", data, off)[0] != APP_DESC_MAGIC:
        return None

    def text(a: int, n: int) -> str:
        return data[off + a : off + a + n].split(b"\0", 1)[0].decode("utf-8", "replace")

    return AppDescription(text(16, 32), text(48, 32), text(112, 32), text(96, 16), text(80, 16))


def app_description_from_head(head: bytes) -> AppDescription | None:
    """The app descriptor from the first bytes of an app partition (no full image needed)."""
    if len(head) < 0x120 or head[0] != IMAGE_MAGIC:
        return None
    first = (0, _HEADER.size + _EXT_HEADER.size + _SEGMENT.size, len(head) - 32)
    return _app_description(head, [first])


def build_app_desc(version: str, project: str = "esp32-csi-node", idf: str = "v5.2.2") -> bytes:
    """A 256-byte esp_app_desc_t (first bytes of an app's first segment)."""
    desc = struct.pack("<III", APP_DESC_MAGIC, 0, 0) + b"\0" * 4
    desc += version.encode()[:31].ljust(32, b"\0") + project.encode()[:31].ljust(32, b"\0")
    desc += b"12:00:00".ljust(16, b"\0") + b"Jan  1 2026".ljust(16, b"\0")
    desc += idf.encode()[:31].ljust(32, b"\0") + b"\0" * 32
    return desc.ljust(256, b"\0")


def build_image(
    segments: list[tuple[int, bytes]],
    *,
    chip_id: int = ESP32S3_CHIP_ID,
    entry: int = 0x40375000,
    flash_mode: int = 2,
    flash_size_freq: int = 0x3F,
    hash_appended: bool = True,
) -> bytes:
    """Assemble a valid image (header, segments, checksum, optional SHA-256).

    Used by tests and benchmarks to make minimal bootloader/app images that the real esptool and
    the emulated board both accept.
    """
    out = bytearray(_HEADER.pack(IMAGE_MAGIC, len(segments), flash_mode, flash_size_freq, entry))
    out += _EXT_HEADER.pack(
        0xEE, 0, 0, 0, chip_id, 0, 0, 0xFFFF, b"\0" * 4, 1 if hash_appended else 0
    )
    checksum = CHECKSUM_SEED
    for addr, payload in segments:
        payload = bytes(payload) + b"\0" * (-len(payload) % 4)
        out += _SEGMENT.pack(addr, len(payload)) + payload
        checksum ^= _xor_bytes(payload)
    out += b"\0" * (15 - len(out) % 16)
    out.append(checksum)
    if hash_appended:
        out += hashlib.sha256(out).digest()
    return bytes(out)


@dataclass
class Partition:
    """One partition-table entry."""

    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def subtype_name(self) -> str:
        return SUBTYPE_NAMES.get(self.type, {}).get(self.subtype, f"0x{self.subtype:02x}")

    @property
    def type_name(self) -> str:
        return {TYPE_APP: "app", TYPE_DATA: "data"}.get(self.type, f"0x{self.type:02x}")


@dataclass
class PartitionTable:
    """A parsed partition table with lookups by role."""

    partitions: list[Partition] = field(default_factory=list)
    has_md5: bool = False

    def find(self, type_: int, subtype: int) -> Partition | None:
        return next((p for p in self.partitions if p.type == type_ and p.subtype == subtype), None)

    @property
    def nvs(self) -> Partition | None:
        return self.find(TYPE_DATA, 0x02)

    @property
    def otadata(self) -> Partition | None:
        return self.find(TYPE_DATA, 0x00)

    @property
    def apps(self) -> list[Partition]:
        return [p for p in self.partitions if p.type == TYPE_APP]

    def app_slot(self, name: str) -> Partition | None:
        return next((p for p in self.apps if p.subtype_name == name), None)


def parse_partition_table(data: bytes, *, what: str = "partition table") -> PartitionTable:
    """Parse the 0xAA50 entries (and check the MD5 entry when present)."""
    table = PartitionTable()
    for pos in range(0, min(len(data), PARTITION_TABLE_MAX), _PART_ENTRY.size):
        raw = data[pos : pos + _PART_ENTRY.size]
        if len(raw) < _PART_ENTRY.size or raw == b"\xff" * _PART_ENTRY.size:
            break
        if raw[:16] == _MD5_MAGIC:
            if hashlib.md5(data[:pos]).digest() != raw[16:]:
                raise ImageError(f"{what}: MD5 checksum mismatch")
            table.has_md5 = True
            continue
        magic, type_, sub, offset, size, label, flags = _PART_ENTRY.unpack(raw)
        if magic != _PART_MAGIC:
            raise ImageError(
                f"{what}: entry {pos // 32} has bad magic {magic.hex()} (expected aa50)"
            )
        name = label.split(b"\0", 1)[0].decode("ascii", "replace")
        table.partitions.append(Partition(name, type_, sub, offset, size, flags))
    if not table.partitions:
        raise ImageError(f"{what}: no partition entries (blank or not a partition table)")
    return table


def build_partition_table(partitions: list[Partition], *, md5: bool = True) -> bytes:
    """Binary partition table as ESP-IDF's gen_esp32part writes it (padded to 0xC00 with 0xFF)."""
    out = b"".join(
        _PART_ENTRY.pack(
            _PART_MAGIC,
            p.type,
            p.subtype,
            p.offset,
            p.size,
            p.label.encode()[:15].ljust(16, b"\0"),
            p.flags,
        )
        for p in partitions
    )
    if md5:
        out += _MD5_MAGIC + hashlib.md5(out).digest()
    return out.ljust(PARTITION_TABLE_MAX, b"\xff")


def ruview_partitions(flash_size: int = 8 << 20) -> list[Partition]:
    """The RuView CSI node layout (``docs/provisioning.md`` §1): 8 MB default, 4 MB variant."""
    four = flash_size < 8 << 20
    app_size = 0x1D0000 if four else 0x200000
    parts = [
        Partition("nvs", TYPE_DATA, 0x02, 0x9000, 0x6000),
        Partition("otadata", TYPE_DATA, 0x00, 0xF000, 0x2000),
        Partition("phy_init", TYPE_DATA, 0x01, 0x11000, 0x1000),
        Partition("ota_0", TYPE_APP, 0x10, 0x20000, app_size),
        Partition("ota_1", TYPE_APP, 0x11, 0x20000 + app_size, app_size),
    ]
    if not four:
        parts.append(Partition("spiffs", TYPE_DATA, 0x82, 0x420000, 0x1E0000))
    return parts


def otadata_crc(seq: int) -> int:
    """CRC of an otadata entry: esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4) == zlib.crc32(.., ~0)."""
    return zlib.crc32(struct.pack("<I", seq), 0xFFFFFFFF) & 0xFFFFFFFF


def build_otadata(seq: int | None = None) -> bytes:
    """8 KB otadata; ``None`` = blank (boots ota_0), else both sectors select ``(seq-1) % n``."""
    blank = b"\xff" * OTADATA_SIZE
    if seq is None:
        return blank
    entry = _OTA_ENTRY.pack(seq, b"\xff" * 20, 0xFFFFFFFF, otadata_crc(seq))
    sector = entry.ljust(0x1000, b"\xff")
    return sector + sector


def ota_boot_slot(otadata: bytes, n_ota: int) -> int:
    """Which ota_N the bootloader picks: highest valid sequence number, blank -> 0."""
    best = None
    for off in (0, 0x1000):
        seq, _, _, crc = _OTA_ENTRY.unpack_from(otadata, off)
        if seq != 0xFFFFFFFF and crc == otadata_crc(seq) and (best is None or seq > best):
            best = seq
    if best is None or n_ota == 0:
        return 0
    return (best - 1) % n_ota
