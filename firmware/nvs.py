"""NVS partition images: build them with esp-idf-nvs-partition-gen, read them back by hand.

Building goes through Espressif's own generator in-process (same functions its CLI calls, with the
size from its ``check_size``), so the bytes are identical to
``python -m esp_idf_nvs_partition_gen generate config.csv nvs.bin 0x6000``.

Reading is hand-written: no published library parses an NVS partition image back into key/values
(the generator only writes; ESP-IDF's reader is C code on the chip). Format (ESP-IDF docs, "NVS
internals"): 4096-byte pages; 32-byte header (state, sequence number, version, CRC-32 of bytes
4..28); a 32-byte bitmap with 2 bits of state per entry (11 empty, 10 written, 00 erased); 126
entries of 32 bytes (namespace index, type, span, chunk index, CRC-32, 16-byte key, 8-byte data).
Strings and blobs continue in the following ``span - 1`` entries; version-2 blobs are split into
BLOB_DATA chunks tied together by a BLOB_IDX entry.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

from csi_edge.errors import InputError

PAGE_SIZE = 4096
ENTRIES_PER_PAGE = 126
_PAGE_ACTIVE, _PAGE_FULL, _PAGE_FREEING = 0xFFFFFFFE, 0xFFFFFFFC, 0xFFFFFFF8
_PRIMITIVE = {
    0x01: ("u8", "<B"),
    0x11: ("i8", "<b"),
    0x02: ("u16", "<H"),
    0x12: ("i16", "<h"),
    0x04: ("u32", "<I"),
    0x14: ("i32", "<i"),
    0x08: ("u64", "<Q"),
    0x18: ("i64", "<q"),
}
_SZ, _BLOB_V1, _BLOB_DATA, _BLOB_IDX = 0x21, 0x41, 0x42, 0x48


class NvsError(InputError):
    """The NVS image cannot be built or read."""


@dataclass(frozen=True)
class NvsValue:
    """A typed NVS value: ``type`` is u8/i8/.../u64, ``string`` or ``blob``."""

    type: str
    value: int | str | bytes


def _crc(data: bytes) -> int:
    # ESP-IDF uses esp_rom_crc32_le(0xffffffff, ...), which is zlib's CRC-32 seeded with ~0.
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def build_image(namespaces: dict[str, dict[str, NvsValue]], size: int = 0x6000) -> bytes:
    """Complete NVS partition image with every namespace and key given, in the given order."""

    if size % PAGE_SIZE or size < 3 * PAGE_SIZE:
        raise NvsError(f"NVS partition size 0x{size:x} must be a multiple of 0x1000 and >= 0x3000")
    return rewrite_image(b"\xff" * size, namespaces).data


def _write_value(nvs, key: str, val: NvsValue, ns_index: int) -> None:  # noqa: ANN001 - gen.NVS
    """One typed entry through the generator's NVS object.

    Calls the object's ``write_entry`` method, not the module-level ``write_entry`` wrapper: the
    wrapper injects dummy ``sta.apinfo``/``sta.pmk``/``sta.apsw`` entries whenever it sees
    ``sta.ssid`` or ``sta.pswd`` (that is how duplicates got onto boards)."""
    if len(key) > 15:
        raise NvsError(f"NVS key {key!r} is longer than 15 characters")
    if val.type == "string":
        nvs.write_entry(key, str(val.value), "string", ns_index)
    elif val.type == "blob":
        nvs.write_entry(key, bytes(val.value).hex(), "hex2bin", ns_index)
    elif val.type in {t for t, _ in _PRIMITIVE.values()}:
        nvs.write_entry(key, str(int(val.value)), val.type, ns_index)
    else:
        raise NvsError(f"NVS key {key!r}: unsupported type {val.type!r}")


@dataclass(frozen=True)
class RawItem:
    """One written entry as it sits in flash: the header plus its data entries (``span`` x 32 bytes)."""

    ns_index: int
    type: int
    span: int
    chunk: int
    key: str
    raw: bytes

    @property
    def blob_chunk_range(self) -> range:
        """For a BLOB_IDX entry: the chunk indexes it ties together."""
        count, start = self.raw[28], self.raw[29]
        return range(start, start + count)


@dataclass
class RewriteResult:
    """A rewritten NVS image and what happened to the entries found on the board."""

    data: bytes
    kept: int  # entries of other owners copied byte for byte
    replaced: list[str]  # "ns/key" the caller owns, found on the board and rewritten
    dropped: list[str]  # stale copies left behind by an earlier tool (duplicates, orphan chunks)


def _written_items(data: bytes) -> list[RawItem]:
    """Every written, CRC-valid entry in the order the chip reads them (page sequence, slot)."""
    pages = []
    for p in range(len(data) // PAGE_SIZE):
        page = data[p * PAGE_SIZE : (p + 1) * PAGE_SIZE]
        state, seq = struct.unpack_from("<II", page, 0)
        if state not in (_PAGE_ACTIVE, _PAGE_FULL, _PAGE_FREEING):
            continue
        if _crc(page[4:28]) != struct.unpack_from("<I", page, 28)[0]:
            continue
        pages.append((seq, p, page))
    items: list[RawItem] = []
    for _seq, _p, page in sorted(pages):
        bitmap, i = page[32:64], 0
        while i < ENTRIES_PER_PAGE:
            if (bitmap[i // 4] >> ((i % 4) * 2)) & 3 != 0b10:
                i += 1
                continue
            ent = page[64 + 32 * i : 96 + 32 * i]
            span = ent[2]
            if span == 0 or i + span > ENTRIES_PER_PAGE:
                i += 1
                continue
            if _crc(ent[0:4] + ent[8:32]) == struct.unpack_from("<I", ent, 4)[0]:
                key = ent[8:24].split(b"\0", 1)[0].decode("utf-8", "replace")
                raw = page[64 + 32 * i : 64 + 32 * (i + span)]
                items.append(RawItem(ent[0], ent[1], span, ent[3], key, raw))
            i += span
    return items


def _current_items(items: list[RawItem]) -> tuple[list[RawItem], list[RawItem]]:
    """Split into (entries the chip would use, stale ones). Of several copies of one key the
    last written wins, as ESP-IDF's own start-up recovery keeps the newer copy; BLOB_DATA chunks
    not tied to the surviving BLOB_IDX are orphans."""
    last: dict[tuple[int, str, str, int], int] = {}
    for n, it in enumerate(items):
        if it.ns_index == 0:
            slot = ("ns", it.chunk)
        elif it.type == _BLOB_DATA:
            slot = ("chunk", it.chunk)
        else:
            slot = ("value", 0)
        last[(it.ns_index, it.key, *slot)] = n
    blob_idx = {(it.ns_index, it.key): it for it in items if it.type == _BLOB_IDX}
    keep, stale = [], []
    for n, it in enumerate(items):
        if it.ns_index == 0:
            slot = ("ns", it.chunk)
        elif it.type == _BLOB_DATA:
            slot = ("chunk", it.chunk)
        else:
            slot = ("value", 0)
        ok = last[(it.ns_index, it.key, *slot)] == n
        if ok and it.type == _BLOB_DATA:
            idx = blob_idx.get((it.ns_index, it.key))
            ok = idx is not None and it.chunk in idx.blob_chunk_range
        (keep if ok else stale).append(it)
    return keep, stale


def rewrite_image(old: bytes, owned: dict[str, dict[str, NvsValue]]) -> RewriteResult:
    """Read-modify-write of a whole NVS partition.

    Every entry on the board that is not in ``owned`` (all namespaces, blobs included, e.g. the
    Wi-Fi driver's ``nvs.net80211``) is copied byte for byte, keeping its namespace index;
    entries for the keys in ``owned`` are replaced by freshly generated ones. The generator's
    own objects lay out pages, headers and the reserved page (so a blank ``old`` gives exactly
    the bytes of ``esp_idf_nvs_partition_gen generate``); copying raw entries is done by hand
    because the generator can only encode values, not carry existing entries over.
    """
    from esp_idf_nvs_partition_gen import nvs_partition_gen as gen

    size = len(old)
    if size % PAGE_SIZE or size < 3 * PAGE_SIZE:
        raise NvsError(f"NVS partition size 0x{size:x} must be a multiple of 0x1000 and >= 0x3000")
    keep, stale = _current_items(_written_items(old))
    ns_index = {it.key: it.raw[24] for it in keep if it.ns_index == 0}
    owned_keys = {(ns, key) for ns, entries in owned.items() for key in entries}
    index_ns = {v: k for k, v in ns_index.items()}
    replaced = sorted(
        {
            f"{index_ns[it.ns_index]}/{it.key}"
            for it in keep
            if it.ns_index and (index_ns.get(it.ns_index), it.key) in owned_keys
        }
    )
    copy = [
        it
        for it in keep
        if it.ns_index
        and (index_ns.get(it.ns_index), it.key) not in owned_keys
        and it.ns_index in index_ns
    ]
    dropped = [f"{index_ns.get(it.ns_index, it.ns_index)}/{it.key}" for it in stale]
    dropped += [
        f"{it.ns_index}/{it.key} (no namespace)"
        for it in keep
        if it.ns_index and it.ns_index not in index_ns
    ]

    usable, _read_only = gen.check_size(hex(size))
    out = io.BytesIO()
    nvs = gen.nvs_open(out, usable, gen.Page.VERSION2)

    def put_raw(it: RawItem) -> None:
        if nvs.cur_page.entry_num + it.span > ENTRIES_PER_PAGE:
            nvs.create_new_page()
        nvs.cur_page.write_entry_to_buf(it.raw, it.span, nvs)

    try:
        for it in sorted((it for it in keep if it.ns_index == 0), key=lambda it: it.raw[24]):
            put_raw(it)  # the board's namespace table, indexes unchanged
        for ns, entries in owned.items():
            if ns not in ns_index:
                free = sorted(set(range(1, 255)) - set(ns_index.values()))
                if not free:
                    raise NvsError("no free NVS namespace index left")
                ns_index[ns] = free[0]
                nvs.set_namespace_idx_unsafe(free[0])
                try:
                    nvs.cur_page.write_primitive_data(ns, free[0], "u8", 0, nvs)
                except gen.PageFullError:
                    nvs.create_new_page().write_primitive_data(ns, free[0], "u8", 0, nvs)
            for key, val in entries.items():
                _write_value(nvs, key, val, ns_index[ns])
        for it in copy:
            put_raw(it)
        gen.nvs_close(nvs)
    except (gen.InputError, gen.InsufficientSizeError) as e:
        raise NvsError(f"NVS partition of 0x{size:x} bytes is too small: {e}") from e
    data = out.getvalue()
    if len(data) != size:
        raise NvsError(f"generator produced {len(data)} bytes, expected {size}")
    return RewriteResult(data, len(copy), replaced, dropped)


def to_csv(namespaces: dict[str, dict[str, NvsValue]]) -> str:
    """The generator's CSV for the same content (for users who flash by hand, and for tests)."""
    lines = ["key,type,encoding,value"]
    for ns, entries in namespaces.items():
        lines.append(f"{ns},namespace,,")
        for key, val in entries.items():
            if val.type == "blob":
                lines.append(f"{key},data,hex2bin,{bytes(val.value).hex()}")
            elif val.type == "string":
                text = str(val.value).replace('"', '""')
                lines.append(f'{key},data,string,"{text}"')
            else:
                lines.append(f"{key},data,{val.type},{int(val.value)}")
    return "\n".join(lines) + "\n"


@dataclass
class NvsReadResult:
    """Decoded namespaces plus what could not be used (bad CRCs, corrupt pages)."""

    namespaces: dict[str, dict[str, NvsValue]]
    blank: bool
    problems: list[str]


def read_image(data: bytes) -> NvsReadResult:
    """Decode an NVS partition image into ``{namespace: {key: NvsValue}}``.

    A blank (all 0xFF) partition reads as no namespaces. A partition with no valid page but
    non-blank content raises NvsError: it is not an NVS partition (or it is corrupt) and must not
    be treated as "empty configuration".
    """
    if len(data) % PAGE_SIZE:
        raise NvsError(f"NVS image length {len(data)} is not a multiple of {PAGE_SIZE}")
    problems: list[str] = []
    pages = []
    for p in range(len(data) // PAGE_SIZE):
        page = data[p * PAGE_SIZE : (p + 1) * PAGE_SIZE]
        state, seq = struct.unpack_from("<II", page, 0)
        if state == 0xFFFFFFFF:
            if page != b"\xff" * PAGE_SIZE:
                problems.append(f"page {p}: uninitialised header but data present")
            continue
        if state not in (_PAGE_ACTIVE, _PAGE_FULL, _PAGE_FREEING):
            problems.append(f"page {p}: invalid page state 0x{state:08x}")
            continue
        if _crc(page[4:28]) != struct.unpack_from("<I", page, 28)[0]:
            problems.append(f"page {p}: header CRC mismatch")
            continue
        pages.append((seq, p, page))
    blank = not pages and data == b"\xff" * len(data)
    if not pages and not blank:
        raise NvsError("no valid NVS page (" + "; ".join(problems[:3]) + ")")

    ns_names: dict[int, str] = {}
    items: dict[tuple[int, str], NvsValue] = {}
    chunks: dict[tuple[int, str, int], bytes] = {}
    indexes: dict[tuple[int, str], tuple[int, int, int]] = {}
    for _seq, pno, page in sorted(pages):
        bitmap = page[32:64]
        i = 0
        while i < ENTRIES_PER_PAGE:
            st = (bitmap[i // 4] >> ((i % 4) * 2)) & 3
            if st != 0b10:
                i += 1
                continue
            ent = page[64 + 32 * i : 96 + 32 * i]
            ns, typ, span, chunk = ent[0], ent[1], ent[2], ent[3]
            key = ent[8:24].split(b"\0", 1)[0].decode("utf-8", "replace")
            where = f"page {pno} entry {i} ({key!r})"
            if span == 0 or i + span > ENTRIES_PER_PAGE:
                problems.append(f"{where}: bad span {span}")
                i += 1
                continue
            if _crc(ent[0:4] + ent[8:32]) != struct.unpack_from("<I", ent, 4)[0]:
                problems.append(f"{where}: entry CRC mismatch")
                i += span
                continue
            if typ in _PRIMITIVE:
                name, fmt = _PRIMITIVE[typ]
                value = struct.unpack_from(fmt, ent, 24)[0]
                if ns == 0:
                    ns_names[value] = key
                else:
                    items[(ns, key)] = NvsValue(name, value)
            elif typ in (_SZ, _BLOB_V1, _BLOB_DATA):
                size, dcrc = struct.unpack_from("<HxxI", ent, 24)
                payload = page[96 + 32 * i : 96 + 32 * i + size]
                if len(payload) != size or size > (span - 1) * 32 or _crc(payload) != dcrc:
                    problems.append(f"{where}: data CRC mismatch")
                elif typ == _SZ:
                    items[(ns, key)] = NvsValue(
                        "string", payload.split(b"\0", 1)[0].decode("utf-8", "replace")
                    )
                elif typ == _BLOB_V1:
                    items[(ns, key)] = NvsValue("blob", payload)
                else:
                    chunks[(ns, key, chunk)] = payload
            elif typ == _BLOB_IDX:
                size, count, start = struct.unpack_from("<IBB", ent, 24)
                indexes[(ns, key)] = (size, count, start)
            else:
                problems.append(f"{where}: unknown type 0x{typ:02x}")
            i += span
    for (ns, key), (size, count, start) in indexes.items():
        parts = [chunks.get((ns, key, start + c)) for c in range(count)]
        if any(p is None for p in parts) or sum(len(p) for p in parts) != size:
            problems.append(f"blob {key!r}: missing or short chunks")
            continue
        items[(ns, key)] = NvsValue("blob", b"".join(parts))
    result: dict[str, dict[str, NvsValue]] = {}
    for (ns, key), val in items.items():
        name = ns_names.get(ns)
        if name is None:
            problems.append(f"key {key!r} belongs to unknown namespace index {ns}")
            continue
        result.setdefault(name, {})[key] = val
    return NvsReadResult(result, blank, problems)
