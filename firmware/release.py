"""Release folders (and zips) that hold more than one candidate per role: pick by flash size.

Why: RuView publishes one folder for both board sizes (``partition-table.bin`` and
``partition-table-4mb.bin``, ``esp32-csi-node.bin`` and ``esp32-csi-node-4mb.bin``) and keeps
other chips' builds in subfolders. Taking the first file by name flashed the 4 MB table with the
8 MB app on an 8 MB board; refusing every folder with two apps refused RuView's own release.

What a candidate is built for, in this order: a size in its file name (``-4mb``, ``_8MB``); for a
partition table, the smallest standard flash its partitions fit; for an app, the flash size in its
image header. Images for another chip are set aside when one for the ESP32-S3 exists (otherwise
they stay, so the check refuses them with "wrong chip"). A board larger than every variant takes
the largest that fits. Between two apps for the same size, the one with "csi" in its name wins
when it is the only one. A choice is refused only when two different files remain for the same
role and flash size; the error lists them and names ``--use FILE``, which picks one (its role
comes from its name and content). Identical copies are not ambiguous.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from csi_edge.errors import InputError
from csi_edge.firmware import espimage

ROLES = ("bootloader", "partition-table", "otadata", "app")
_SIZE_IN_NAME = re.compile(r"(?<![0-9])(1|2|4|8|16|32|64|128)\s*mb(?![a-z0-9])", re.IGNORECASE)
# image header byte 3, high nibble -> flash size (esptool's FLASH_SIZES for ESP32-S3)
_HEADER_SIZES = {i: (1 << i) << 20 for i in range(8)}


class AmbiguousRelease(InputError):
    """Two different files fit the same role and flash size; the message lists them."""


@dataclass
class Candidate:
    name: str  # path inside the folder or zip
    label: str  # how messages name it
    data: bytes
    role: str
    built_for: int | None = None  # flash size in bytes, None when nothing says
    why: str = ""  # what ``built_for`` was read from
    chip_id: int | None = None
    detail: str = ""  # version / project, for listings

    def describe(self) -> str:
        size = f"{self.built_for >> 20} MB ({self.why})" if self.built_for else ""
        chip = ""
        if self.chip_id is not None and self.chip_id != espimage.ESP32S3_CHIP_ID:
            chip = espimage.CHIP_NAMES.get(self.chip_id, f"chip id {self.chip_id}")
        facts = ", ".join(x for x in (self.detail, chip, size) if x)
        return f"{self.name} [{facts}]" if facts else self.name


@dataclass
class Release:
    """Every candidate of a release folder, by role; :meth:`choose` picks one set."""

    source: str
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)

    def add(self, cand: Candidate) -> None:
        _annotate(cand)
        self.candidates.setdefault(cand.role, []).append(cand)

    def sizes(self) -> list[int]:
        """The flash sizes the folder's partition tables are built for (several = variants)."""
        return sorted(
            {c.built_for for c in self.candidates.get("partition-table", []) if c.built_for}
        )

    def choose(
        self, flash_size: int, use: tuple[str, ...] = ()
    ) -> tuple[dict[str, Candidate], list[str]]:
        """One candidate per role for a board with ``flash_size`` bytes, plus notes saying why."""
        picked: dict[str, Candidate] = {}
        notes: list[str] = []
        wanted = _picks(self, use)
        for role in ROLES:
            cands = self.candidates.get(role, [])
            if role in wanted:
                picked[role] = wanted[role]
                continue
            if not cands:
                continue
            pool = _same_chip(cands)
            if role == "app":
                pool = [c for c in pool if not _merged(c)] or pool
            if role == "partition-table":
                pool = _tables_for(pool, flash_size)
            elif role == "app":
                slot = _smallest_slot(picked.get("partition-table"))
                target = (
                    picked["partition-table"].built_for if "partition-table" in picked else None
                )
                pool = _apps_for(pool, slot, target or flash_size)
            else:
                pool = _by_name_size(pool, flash_size)
            pool = _distinct(pool)
            if len(pool) > 1:
                raise AmbiguousRelease(
                    f"{self.source}: {len(pool)} {role} files fit a {flash_size >> 20} MB flash: "
                    + "; ".join(c.describe() for c in pool)
                    + f"; pick one with --use {PurePosixPath(pool[0].name).name}"
                )
            picked[role] = pool[0]
            others = [c for c in cands if c is not pool[0] and c.data != pool[0].data]
            if others:
                notes.append(
                    f"{role}: {pool[0].describe()} chosen for the {flash_size >> 20} MB flash "
                    f"(also in the folder: {'; '.join(c.describe() for c in others)})"
                )
        return picked, notes


def _annotate(c: Candidate) -> None:
    base = PurePosixPath(c.name).name
    m = _SIZE_IN_NAME.search(base)
    if c.data[:1] == bytes([espimage.IMAGE_MAGIC]) and len(c.data) >= 24:
        c.chip_id = struct.unpack_from("<H", c.data, 12)[0]
    if m:
        c.built_for, c.why = int(m.group(1)) << 20, "file name"
    if c.role == "partition-table":
        try:
            table = espimage.parse_partition_table(c.data, what=c.label)
        except espimage.ImageError:
            return  # checked (and refused) if it is chosen
        end = max((p.offset + p.size for p in table.partitions), default=0)
        fits = next((s for s in _HEADER_SIZES.values() if s >= end), None)
        if c.built_for is None or (fits and c.built_for < end):
            c.built_for, c.why = fits, "its partitions"
    elif c.role == "app" and c.chip_id is not None:
        if c.built_for is None:
            c.built_for = _HEADER_SIZES.get(c.data[3] >> 4)
            c.why = "image header"
        desc = espimage.app_description_from_head(c.data[:0x10000])
        if desc is not None:
            c.detail = f"{desc.project_name} {desc.version}"


def _picks(rel: Release, use: tuple[str, ...]) -> dict[str, Candidate]:
    out: dict[str, Candidate] = {}
    every = [c for cands in rel.candidates.values() for c in cands]
    for name in use:
        hits = [c for c in every if c.name == name or PurePosixPath(c.name).name == name]
        if len(hits) != 1:
            known = ", ".join(sorted(c.name for c in every))
            why = "matches several files" if hits else "is not in the folder"
            raise InputError(f"--use {name}: {why} {rel.source} (its files: {known})")
        out[hits[0].role] = hits[0]
    return out


def _merged(c: Candidate) -> bool:
    """A merged image (bootloader at 0, partition table at 0x8000) beside the separate files is
    the same release in one file, not another app; ``-f`` on that file flashes it alone."""
    pt = espimage.PARTITION_TABLE_OFFSET
    return len(c.data) > pt + 32 and c.data[pt : pt + 2] == b"\xaa\x50"


def _same_chip(cands: list[Candidate]) -> list[Candidate]:
    s3 = [c for c in cands if c.chip_id == espimage.ESP32S3_CHIP_ID]
    others = [c for c in cands if c.chip_id is not None and c.chip_id != espimage.ESP32S3_CHIP_ID]
    return [c for c in cands if c not in others] if s3 else cands


def _tables_for(cands: list[Candidate], flash_size: int) -> list[Candidate]:
    fitting = [c for c in cands if c.built_for is None or c.built_for <= flash_size]
    if not fitting:
        return _smallest(cands)[:1]  # none fits: the size check refuses it, naming the flash
    exact = [c for c in fitting if c.built_for == flash_size]
    if exact:
        return exact
    largest = max(c.built_for or 0 for c in fitting)
    return [c for c in fitting if (c.built_for or 0) == largest]


def _smallest(cands: list[Candidate]) -> list[Candidate]:
    least = min(c.built_for or 0 for c in cands)
    return [c for c in cands if (c.built_for or 0) == least]


def _smallest_slot(table: Candidate | None) -> int | None:
    if table is None:
        return None
    try:
        apps = espimage.parse_partition_table(table.data, what=table.label).apps
    except espimage.ImageError:
        return None
    return min((p.size for p in apps), default=None)


def _apps_for(cands: list[Candidate], slot: int | None, flash_size: int) -> list[Candidate]:
    if len(cands) == 1:
        return cands  # the only app: the checks say what is wrong with it, if anything
    fitting = [c for c in cands if slot is None or len(c.data) <= slot] or cands
    sized = [c for c in fitting if c.built_for == flash_size]
    unsized = [c for c in fitting if c.why != "file name"]  # header sizes are often left at 8 MB
    pool = sized or unsized or fitting
    if len(_distinct(pool)) > 1:
        named = [c for c in pool if "csi" in PurePosixPath(c.name).name.lower()]
        if len(named) == 1:
            return named
    return pool


def _by_name_size(cands: list[Candidate], flash_size: int) -> list[Candidate]:
    named = [c for c in cands if c.why == "file name" and c.built_for == flash_size]
    if named:
        return named
    return [c for c in cands if c.why != "file name"] or cands


def _distinct(cands: list[Candidate]) -> list[Candidate]:
    out: list[Candidate] = []
    for c in cands:
        if all(c.data != o.data for o in out):
            out.append(c)
    return out
