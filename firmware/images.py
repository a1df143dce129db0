"""Firmware sources for ``csi-edge flash``: find the parts, their offsets, and check them.

Accepted sources (``docs/provisioning.md`` §2):

* an ESP-IDF build directory (``flasher_args.json``, in the folder or its ``build/``);
* an ESP Web Tools ``manifest.json`` (``builds[].chipFamily``, ``parts[{path, offset}]``);
* a release folder or ``.zip`` of bootloader / partition-table / otadata / app binaries (any of
  the above inside a zip is honoured too); with variants per flash size (RuView's
  ``partition-table-4mb.bin`` beside ``partition-table.bin``) the board's flash size picks the
  set (``release.py``);
* a single merged image (bootloader at 0, partition table at 0x8000), or an app image alone (it
  goes to the board's ota_0 partition, read from the board's own partition table).

Checks before anything is written: image magic 0xE9 and chip id 9 (ESP32-S3), checksums, a valid
partition table with nvs/otadata/ota_0, the app fits its partition, everything fits the flash, no
two parts overlap. A new app always comes with otadata (8192 x 0xFF when the source lacks it),
or a node that last ran ota_1 would keep booting the old image.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from csi_edge.errors import InputError
from csi_edge.firmware import espimage
from csi_edge.firmware import release as release_mod

ROLES = ("bootloader", "partition-table", "otadata", "app", "merged", "data")
FLASH_SIZES = {f"{n}MB": n << 20 for n in (1, 2, 4, 8, 16, 32, 64, 128)}


class FirmwareError(InputError):
    """The firmware source is unusable; the message names the file and what was expected."""


@dataclass
class Part:
    offset: int | None  # None: app-only source, offset comes from the board's partition table
    data: bytes
    name: str
    role: str


#: name suffix of the parts :func:`check` adds itself (dropped before a re-check)
ADDED = "(blank, added)"


def blank_otadata(table: espimage.PartitionTable) -> Part:
    """An erased otadata partition: the bootloader then boots ota_0 (an old ota_1 image cannot
    keep booting after a new app is written)."""
    return Part(
        table.otadata.offset,  # type: ignore[union-attr]
        b"\xff" * espimage.OTADATA_SIZE,
        f"ota_data_initial.bin {ADDED}",
        "otadata",
    )


@dataclass
class Firmware:
    """What will be written, plus what the source says about flash settings and the app."""

    source: str
    parts: list[Part]
    flash_mode: str | None = None
    flash_freq: str | None = None
    flash_size: str | None = None
    table: espimage.PartitionTable | None = None
    app: espimage.ImageInfo | None = None
    notes: list[str] = field(default_factory=list)
    #: a release folder's candidates; :func:`check` picks the set for the board's flash size
    release: release_mod.Release | None = None
    use: tuple[str, ...] = ()  # files the user picked with --use
    chosen_notes: list[str] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        return self.app.app.version if self.app and self.app.app else None

    def part(self, role: str) -> Part | None:
        return next((p for p in self.parts if p.role == role), None)


def parse_flash_size(text: str) -> int:
    key = text.strip().upper()
    if key not in FLASH_SIZES:
        raise FirmwareError(f"flash size {text!r} is not one of {', '.join(FLASH_SIZES)}")
    return FLASH_SIZES[key]


# ---------------------------------------------------------------- loading
class _Files:
    """A folder or a zip, seen as relative POSIX paths -> bytes on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.zip: zipfile.ZipFile | None = None
        if root.is_file():
            try:
                self.zip = zipfile.ZipFile(root)
            except zipfile.BadZipFile as e:
                raise FirmwareError(f"{root}: not a zip archive ({e})") from None
            self.names = [n for n in self.zip.namelist() if not n.endswith("/")]
        else:
            self.names = [
                p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file()
            ]

    def read(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (self.root / name).read_bytes()
        except (KeyError, FileNotFoundError, IsADirectoryError):
            raise FirmwareError(f"{self.label(name)}: file not found") from None

    def label(self, name: str) -> str:
        return f"{self.root}!{name}" if self.zip is not None else str(self.root / name)

    def find(self, basename: str) -> str | None:
        hits = sorted((n for n in self.names if PurePosixPath(n).name == basename), key=len)
        return hits[0] if hits else None


def load(source: str | Path, use: tuple[str, ...] = ()) -> Firmware:
    """Load a firmware source (see module docstring); raises FirmwareError.

    ``use`` names files of a release folder to take over the other candidates (``--use``)."""
    fw = _load(source)
    if use:
        if fw.release is None:
            raise FirmwareError(
                f"--use {use[0]}: {source} is not a release folder or zip; --use picks files in one"
            )
        fw.use = tuple(use)
    return fw


def _load(source: str | Path) -> Firmware:
    path = Path(source)
    if not path.exists():
        raise FirmwareError(f"{path}: no such file or directory")
    if path.is_file() and path.name.endswith(".json"):
        return _from_json(_Files(path.parent), path.name, str(path))
    if path.is_file() and not zipfile.is_zipfile(path):
        return _single(path.read_bytes(), str(path))
    files = _Files(path)
    for marker in ("flasher_args.json", "manifest.json"):
        hit = files.find(marker)
        if hit is not None:
            return _from_json(files, hit, str(path))
    return _release(files, str(path))


def _from_json(files: _Files, name: str, source: str) -> Firmware:
    label = files.label(name)
    try:
        doc = json.loads(files.read(name))
    except json.JSONDecodeError as e:
        raise FirmwareError(f"{label}: not valid JSON ({e})") from None
    base = str(PurePosixPath(name).parent)
    rel = (lambda p: p) if base in ("", ".") else (lambda p: f"{base}/{p}")
    if "flash_files" in doc:
        chip = str(doc.get("extra_esptool_args", {}).get("chip", "esp32s3")).lower()
        if chip not in ("esp32s3", "esp32-s3"):
            raise FirmwareError(
                f"wrong chip: {label} is a build for {chip}, this tool flashes ESP32-S3"
            )
        settings = doc.get("flash_settings", {})
        parts = []
        for off, fname in doc["flash_files"].items():
            parts.append(
                Part(
                    _int(off, label, "flash_files"),
                    files.read(rel(fname)),
                    files.label(rel(fname)),
                    "",
                )
            )
        fw = Firmware(
            source,
            parts,
            settings.get("flash_mode"),
            settings.get("flash_freq"),
            settings.get("flash_size"),
        )
    elif "builds" in doc:
        builds = doc.get("builds") or []
        fams = [str(b.get("chipFamily", "?")) for b in builds]
        build = next(
            (b for b in builds if str(b.get("chipFamily", "")).upper() == "ESP32-S3"), None
        )
        if build is None:
            raise FirmwareError(
                f"wrong chip: {label} has builds for {', '.join(fams) or 'no chip'}, "
                "none for ESP32-S3 (builds[].chipFamily)"
            )
        parts = []
        for i, p in enumerate(build.get("parts", [])):
            ppath = str(p.get("path", ""))
            if re.match(r"^[a-z]+://", ppath):
                raise FirmwareError(
                    f"{label}: builds[].parts[{i}].path is a URL ({ppath}); "
                    "download the files next to the manifest first"
                )
            parts.append(
                Part(
                    _int(p.get("offset"), label, f"parts[{i}].offset"),
                    files.read(rel(ppath)),
                    files.label(rel(ppath)),
                    "",
                )
            )
        if not parts:
            raise FirmwareError(f"{label}: the ESP32-S3 build lists no parts")
        fw = Firmware(source, parts)
    else:
        raise FirmwareError(
            f"{label}: neither an ESP-IDF flasher_args.json (flash_files) nor an "
            "ESP Web Tools manifest (builds)"
        )
    for p in fw.parts:
        p.role = _role_by_content(p)
    return fw


def _int(value: object, label: str, fieldname: str) -> int:
    try:
        return value if isinstance(value, int) else int(str(value), 0)
    except ValueError:
        raise FirmwareError(
            f"{label}: {fieldname} {value!r} is not an offset like 0x8000"
        ) from None


def _role_by_content(p: Part) -> str:
    if (
        p.offset == 0
        and len(p.data) > espimage.PARTITION_TABLE_OFFSET + 32
        and p.data[espimage.PARTITION_TABLE_OFFSET : espimage.PARTITION_TABLE_OFFSET + 2]
        == b"\xaa\x50"
    ):
        return "merged"
    if p.offset == 0:
        return "bootloader"
    if p.data[:2] == b"\xaa\x50":
        return "partition-table"
    if p.offset == espimage.PARTITION_TABLE_OFFSET:
        return "partition-table"
    if len(p.data) == espimage.OTADATA_SIZE and (
        p.data[:4] == b"\xff" * 4 or "ota" in p.name.lower()
    ):
        return "otadata"
    if p.data[:1] == bytes([espimage.IMAGE_MAGIC]) or (p.offset or 0) >= 0x10000:
        return "app"  # a non-image here is still checked as an app (and rejected by its magic)
    return "data"


_PATTERNS = [
    ("bootloader", re.compile(r"bootloader.*\.bin$")),
    ("partition-table", re.compile(r"partition.*\.bin$|partitions?\.bin$")),
    ("otadata", re.compile(r"ota_?data.*\.bin$")),
]


def _release(files: _Files, source: str) -> Firmware:
    """Collect every candidate per role; which set is written depends on the board's flash
    size, so :func:`check` chooses (see ``release.py``)."""
    bins = [n for n in files.names if n.lower().endswith(".bin")]
    if not bins:
        raise FirmwareError(
            f"{source}: no .bin files (expected bootloader, partition table and app)"
        )
    rel = release_mod.Release(source)
    rest = []
    for n in bins:
        base = PurePosixPath(n).name.lower()
        role = next((r for r, pat in _PATTERNS if pat.search(base)), None)
        if role:
            rel.add(release_mod.Candidate(n, files.label(n), files.read(n), role))
        else:
            rest.append(n)
    apps = [n for n in rest if files.read(n)[:1] == bytes([espimage.IMAGE_MAGIC])]
    if not apps and len(rest) == 1:
        apps = rest  # the only candidate: checked (and refused with the reason) like any app
    if not apps:
        raise FirmwareError(
            f"{source}: no app image (a .bin starting with 0xE9 besides the bootloader)"
        )
    for n in apps:
        rel.add(release_mod.Candidate(n, files.label(n), files.read(n), "app"))
    missing = [r for r in ("bootloader", "partition-table") if r not in rel.candidates]
    if missing:
        raise FirmwareError(
            f"{source}: missing {' and '.join(missing)} binary "
            "(expected bootloader.bin and partition-table.bin next to the app)"
        )
    return Firmware(source, [], release=rel)


def _choose(fw: Firmware, flash_size: int) -> None:
    """Build ``fw.parts`` from the release candidates chosen for ``flash_size``."""
    assert fw.release is not None
    try:
        picked, notes = fw.release.choose(flash_size, fw.use)
    except InputError as e:
        raise FirmwareError(str(e)) from None
    table_c = picked["partition-table"]
    table = _table(table_c.data, table_c.label)
    ota0 = table.app_slot("ota_0") or table.app_slot("factory")
    od = table.otadata
    offsets = {
        "bootloader": 0x0,
        "partition-table": espimage.PARTITION_TABLE_OFFSET,
        "app": ota0.offset if ota0 else 0x20000,
        "otadata": od.offset if od else 0xF000,
    }
    fw.parts = [
        Part(offsets[role], picked[role].data, picked[role].label, role)
        for role in ("bootloader", "partition-table", "app", "otadata")
        if role in picked
    ]
    fw.notes = [n for n in fw.notes if n not in fw.chosen_notes] + notes
    fw.chosen_notes = notes


def _single(data: bytes, source: str) -> Firmware:
    if data[:1] != bytes([espimage.IMAGE_MAGIC]):
        raise FirmwareError(
            f"{source}: bad image magic 0x{data[:1].hex() or '??'} (expected 0xe9: "
            "not an ESP32 firmware image)"
        )
    pt = espimage.PARTITION_TABLE_OFFSET
    if len(data) > pt + 32 and data[pt : pt + 2] == b"\xaa\x50":
        return Firmware(source, [Part(0x0, data, source, "merged")])
    fw = Firmware(source, [Part(None, data, source, "app")])
    fw.notes.append(f"{source} is an app image alone: it goes to the board's ota_0 partition")
    return fw


def _table(data: bytes, label: str) -> espimage.PartitionTable:
    try:
        return espimage.parse_partition_table(data, what=label)
    except espimage.ImageError as e:
        raise FirmwareError(str(e)) from None


# ---------------------------------------------------------------- checking
def _image(data: bytes, label: str) -> espimage.ImageInfo:
    try:
        info = espimage.parse_image(data, what=label)
    except espimage.ImageError as e:
        raise FirmwareError(str(e)) from None
    if info.chip_id != espimage.ESP32S3_CHIP_ID:
        raise FirmwareError(
            f"wrong chip: {label} is built for {info.chip_name}, this tool flashes ESP32-S3"
        )
    return info


def check(
    fw: Firmware, flash_size: int, board_table: espimage.PartitionTable | None = None
) -> Firmware:
    """Validate ``fw`` for a board with ``flash_size`` bytes; fills ``table``/``app``, adds otadata.

    ``board_table`` is the partition table already on the board (used for an app-only source).
    """
    if fw.release is not None:
        _choose(fw, flash_size)
    merged = fw.part("merged")
    if merged is not None:
        _split_merged(fw, merged)
    boot = fw.part("bootloader")
    if boot is not None:
        _image(boot.data, f"bootloader {boot.name}")
    pt = fw.part("partition-table")
    table = fw.table if merged is not None else _table(pt.data, pt.name) if pt else board_table
    if table is None:
        raise FirmwareError(
            f"{fw.source}: no partition table in the source and none readable on the board"
        )
    fw.table = table
    for need, label in ((table.nvs, "nvs"), (table.otadata, "otadata")):
        if need is None:
            raise FirmwareError(
                f"partition table {pt.name if pt else '(board)'}: no {label} partition"
            )
    slot = table.app_slot("ota_0") or table.app_slot("factory")
    if slot is None:
        raise FirmwareError(
            f"partition table {pt.name if pt else '(board)'}: no ota_0 (or factory) app partition"
        )
    for p in table.partitions:
        if p.offset + p.size > flash_size:
            raise FirmwareError(
                f"partition {p.label} ends at 0x{p.offset + p.size:x}, beyond the "
                f"{flash_size >> 20} MB flash (wrong --flash-size or wrong partition table)"
            )
    app = fw.part("app")
    if app is not None:
        if app.offset is None:
            app.offset = slot.offset
        fw.app = _image(app.data, f"app {app.name}")
        target = next((p for p in table.apps if p.offset == app.offset), None)
        if target is None:
            raise FirmwareError(
                f"app {app.name} is at 0x{app.offset:x}, which is not the start of an app partition"
            )
        smallest = min((p for p in table.apps), key=lambda p: p.size)
        for part in (target, smallest):
            if len(app.data) > part.size:
                raise FirmwareError(
                    f"image too big for its partition: app {app.name} is {len(app.data)} bytes "
                    f"({len(app.data) / 2**20:.2f} MB), partition {part.label} holds {part.size} bytes "
                    f"({part.size / 2**20:.2f} MB)"
                )
        if fw.part("otadata") is None and merged is None:
            fw.parts.append(blank_otadata(table))
            note = "otadata added (blank: boots ota_0) so the board cannot keep booting an old ota_1 image"
            if note not in fw.notes:
                fw.notes.append(note)
    spans = sorted((p.offset or 0, (p.offset or 0) + len(p.data), p.name) for p in fw.parts)
    for (a0, a1, an), (b0, _b1, bn) in zip(spans, spans[1:], strict=False):
        if b0 < a1:
            raise FirmwareError(f"{an} (0x{a0:x}-0x{a1:x}) overlaps {bn} at 0x{b0:x}")
    for _start, end, name in spans:
        if end > flash_size:
            raise FirmwareError(f"{name} ends at 0x{end:x}, beyond the {flash_size >> 20} MB flash")
    return fw


def _split_merged(fw: Firmware, merged: Part) -> None:
    """Check the pieces of a merged image in place (it is still written as one blob)."""
    data = merged.data
    _image(data[: espimage.PARTITION_TABLE_OFFSET], f"bootloader in {merged.name}")
    table = _table(
        data[
            espimage.PARTITION_TABLE_OFFSET : espimage.PARTITION_TABLE_OFFSET
            + espimage.PARTITION_TABLE_MAX
        ],
        f"partition table in {merged.name}",
    )
    fw.table = table
    slot = table.app_slot("ota_0") or table.app_slot("factory")
    if slot is not None and len(data) > slot.offset:
        fw.app = _image(data[slot.offset : slot.offset + slot.size], f"app in {merged.name}")
    if len(data) < (table.otadata.offset if table.otadata else 0) + espimage.OTADATA_SIZE:
        # the merged image stops before otadata: blank it separately so ota_0 boots
        fw.parts.append(blank_otadata(table))


def describe(fw: Firmware) -> list[dict[str, object]]:
    return [
        {"offset": f"0x{p.offset or 0:x}", "size": len(p.data), "role": p.role, "file": p.name}
        for p in sorted(fw.parts, key=lambda p: p.offset or 0)
    ]
