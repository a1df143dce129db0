"""pcap / pcapng captures of the nodes' UDP traffic: a fast reader and a classic-pcap writer.

Reading (what ``tcpdump -w`` on a gateway produces):

* classic pcap (µs and ns timestamps, both byte orders) and pcapng (SHB/IDB/EPB/SPB/OPB,
  ``if_tsresol``/``if_tsoffset``, several interfaces with different link types);
* link types Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL and SLL2, raw IP
  (101/12/14/228/229), BSD loopback NULL and LOOP;
* IPv4 and IPv6 carrying UDP. Everything else is counted, not dropped silently: ``not-ip``,
  ``not-udp``, ``ip-fragment`` (a fragment whose datagram never completed; complete IPv4 and
  IPv6 fragment sets are reassembled, e.g. the ~1.6 kB HE frames of ESP32-C6 nodes),
  ``ipv6-ext-header``, ``truncated-capture`` (cut by the snap length), ``other-port``
  (with ``port=``), ``unsupported-linktype``, ``truncated-record``, ``corrupt-record``.

The UDP payloads go to :meth:`csi_edge.codecs.ruview.RuViewDecoder.decode_block` without being
copied out one by one: the file is memory-mapped, record offsets are found by one tight loop
(the only sequential step: each record's length says where the next begins), and every header
field of every record is then gathered with numpy. Source names are the sender's IP address.

Hand-written rather than dpkt: dpkt builds a Python object per packet (~10 µs each), 20x too
slow for the 1M-frames/s target; the formats are small and fixed.

Writing: :class:`PcapWriter` writes classic pcap with LINKTYPE_RAW (IPv4/IPv6 + UDP) or
Ethernet framing, µs or ns timestamps; Wireshark and tcpdump read it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import mmap
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from csi_edge.codecs.result import DecodeResult
from csi_edge.codecs.ruview import RuViewDecoder
from csi_edge.codecs.writer import FileWriter
from csi_edge.errors import InputError
from csi_edge.skips import SkipCounter

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_TYPES = (LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6)

#: Largest record we believe; larger means the file is corrupt (can't find the next record).
MAX_RECORD = 1 << 20
_REC_DTYPE = {
    e: np.dtype([("sec", e + "u4"), ("frac", e + "u4"), ("incl", e + "u4"), ("orig", e + "u4")])
    for e in "<>"
}


def is_pcap(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


# ---------------------------------------------------------------------------------------------
# reading
class PcapError(InputError):
    """The file is not a pcap/pcapng capture (bad global header)."""


def iter_pcap(
    path: str | os.PathLike,
    *,
    decoder: RuViewDecoder | None = None,
    port: int | None = None,
    chunk_records: int = 262_144,
) -> Iterator[DecodeResult]:
    """Decode a pcap/pcapng file chunk by chunk (about ``chunk_records`` records per result).

    Raises :class:`PcapError` if the file is empty or has no pcap/pcapng header; damage after
    the header (a cut last record, a corrupt length) is counted in ``skipped`` instead.
    """
    decoder = decoder or RuViewDecoder()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise PcapError(f"{path}: empty file")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        head = mm[:4]
        if head in PCAP_MAGICS:
            records = _classic_records(mm, path, chunk_records * 256)
        elif head == PCAPNG_MAGIC:
            records = _pcapng_records(mm, path, chunk_records)
        else:
            raise PcapError(f"{path}: not a pcap/pcapng file (magic {head.hex()})")
        buf = np.frombuffer(mm, np.uint8)
        frags = Reassembler()
        for data_starts, caplens, linktypes, t, rec_skips in records:
            yield _decode_records(
                buf, data_starts, caplens, linktypes, t, rec_skips, decoder, port, frags
            )
        del buf
        if frags.pending:
            res = DecodeResult()
            res.skipped.skip("ip-fragment", f"{path}: datagram(s) never completed", frags.pending)
            yield res
    finally:
        # a caller may still hold a view; the map then closes when it is collected
        with contextlib.suppress(BufferError):
            mm.close()


def read_pcap(path: str | os.PathLike, *, port: int | None = None) -> DecodeResult:
    """Decode a whole pcap/pcapng file into one :class:`DecodeResult`."""
    return DecodeResult.concat(iter_pcap(path, port=port))


def _classic_records(mm: mmap.mmap, path, chunk_bytes: int):
    """Yield (data_starts, caplens, linktype, t_rx, skips) per ~``chunk_bytes`` of records."""
    if len(mm) < 24:
        raise PcapError(f"{path}: pcap global header truncated ({len(mm)} of 24 bytes)")
    endian, tres = PCAP_MAGICS[mm[:4]]
    _vmaj, _vmin, _tz, _sig, _snap, network = struct.unpack_from(endian + "HHiIII", mm, 4)
    linktype = network & 0x0FFFFFFF  # upper bits: FCS length flags
    incl_of = struct.Struct(endian + "I").unpack_from
    n = len(mm)
    buf = np.frombuffer(mm, np.uint8)
    mv = memoryview(mm)  # unpack_from reads a memoryview ~1.7x faster than the mmap itself
    rdt = _REC_DTYPE[endian]
    p = 24
    while p < n:
        starts: list[int] = []
        append = starts.append
        skips = SkipCounter()
        lim = min(n - 16, p + chunk_bytes)
        # The one sequential loop (a record's incl_len says where the next one starts), kept
        # to the bare minimum; lengths are checked afterwards, vectorised.
        while p <= lim:
            append(p)
            p += 16 + incl_of(mv, p + 8)[0]
        st = np.array(starts, np.int64)
        rec = np.ascontiguousarray(sliding_window_view(buf, 16)[st]).view(rdt).ravel()
        caplens = rec["incl"].astype(np.int64)
        bad = (caplens > MAX_RECORD) | (st + 16 + caplens > n)
        stop = False
        if bad.any():
            i = int(np.argmax(bad))
            if caplens[i] > MAX_RECORD:
                skips.skip(
                    "corrupt-record", f"{path}: record at byte {st[i]} claims {caplens[i]} bytes"
                )
            else:
                skips.skip("truncated-record", f"{path}: last record cut at byte {n}")
            st, caplens, rec, stop = st[:i], caplens[:i], rec[:i], True
        elif p < n and p > n - 16:
            skips.skip("truncated-record", f"{path}: {n - p} trailing bytes")
            stop = True
        t = rec["sec"].astype(np.float64) + rec["frac"].astype(np.float64) * tres
        del rec
        yield st + 16, caplens, np.full(len(st), linktype, np.int64), t, skips
        if stop:
            break
    mv.release()
    del buf


def _pcapng_records(mm: mmap.mmap, path, chunk: int):
    """Yield per-chunk packet records of a pcapng file (block walk in Python)."""
    n = len(mm)
    p = 0
    endian = "<"
    ifaces: list[tuple[int, float, float]] = []  # (linktype, ts resolution, ts offset)
    while True:
        starts, caps, lts, ts = [], [], [], []
        skips = SkipCounter()
        while p + 12 <= n and len(starts) < chunk:
            btype = struct.unpack_from(endian + "I", mm, p)[0]
            if mm[p : p + 4] == PCAPNG_MAGIC:
                bom = mm[p + 8 : p + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    if p == 0:
                        raise PcapError(f"{path}: pcapng section header has a bad byte-order magic")
                    skips.skip("corrupt-record", f"{path}: bad section header at byte {p}")
                    p = n
                    break
                btype = 0x0A0D0D0A
                ifaces = []
            blen = struct.unpack_from(endian + "I", mm, p + 4)[0]
            if blen < 12 or blen % 4 or blen > MAX_RECORD + 64:
                if p == 0:
                    raise PcapError(f"{path}: pcapng section header has a bad length {blen}")
                skips.skip("corrupt-record", f"{path}: block at byte {p} has length {blen}")
                p = n
                break
            if p + blen > n:
                skips.skip("truncated-record", f"{path}: last block cut at byte {n}")
                p = n
                break
            if btype == 1 and blen >= 20:  # interface description
                lt = struct.unpack_from(endian + "H", mm, p + 8)[0]
                ifaces.append((lt, *_idb_options(mm, p + 16, p + blen - 4, endian)))
            elif btype in (6, 2) and blen >= 32:  # enhanced / obsolete packet block
                if btype == 6:
                    iface, hi, lo, cap = struct.unpack_from(endian + "IIII", mm, p + 8)
                else:
                    iface, _drops, hi, lo, cap = struct.unpack_from(endian + "HHIII", mm, p + 8)
                if iface >= len(ifaces) or 28 + cap > blen - 4:
                    skips.skip("corrupt-record", f"{path}: packet block at byte {p}")
                else:
                    lt, res, off = ifaces[iface]
                    starts.append(p + 28)
                    caps.append(cap)
                    lts.append(lt)
                    ts.append(((hi << 32) | lo) * res + off)
            elif btype == 3 and blen >= 16:  # simple packet block: interface 0, no timestamp
                orig = struct.unpack_from(endian + "I", mm, p + 8)[0]
                if not ifaces:
                    skips.skip(
                        "corrupt-record", f"{path}: simple packet block before any interface"
                    )
                else:
                    starts.append(p + 12)
                    caps.append(min(orig, blen - 16))
                    lts.append(ifaces[0][0])
                    ts.append(float("nan"))
            p += blen
        if 0 < n - p < 12:
            skips.skip("truncated-record", f"{path}: {n - p} trailing bytes")
            p = n
        if not starts and not skips:
            return
        yield (
            np.array(starts, np.int64),
            np.array(caps, np.int64),
            np.array(lts, np.int64),
            np.array(ts, np.float64),
            skips,
        )
        if p >= n:
            return


def _idb_options(mm, p: int, end: int, endian: str) -> tuple[float, float]:
    """(timestamp resolution in s, offset in s) from an IDB's options."""
    res, off = 1e-6, 0.0
    while p + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", mm, p)
        if code == 0:
            break
        if code == 9 and length >= 1 and p + 5 <= end:
            v = mm[p + 4]
            res = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0**-v
        elif code == 14 and length >= 8 and p + 12 <= end:
            off = float(struct.unpack_from(endian + "q", mm, p + 4)[0])
        p += 4 + (length + 3) // 4 * 4
    return res, off


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted unique values; hash-based first pass where numpy has it (few distinct sources)."""
    try:
        return np.sort(np.unique(a, sorted=False))
    except TypeError:  # numpy < 2.3
        return np.unique(a)


def _be16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    last = len(buf) - 1
    return buf[np.minimum(pos, last)].astype(np.int64) << 8 | buf[np.minimum(pos + 1, last)]


def _decode_records(
    buf, data, caplen, linktype, t, skips: SkipCounter, decoder: RuViewDecoder, port, frags=None
):
    """Link/IP/UDP headers of every record (vectorised), then the payloads to the decoder."""
    n = len(data)
    last = len(buf) - 1
    l3 = np.zeros(n, np.int64)  # offset of the IP header inside the record
    ipver = np.zeros(n, np.int64)  # 4, 6, or 0 = not IP (or unknown)
    reason = np.zeros(n, np.int8)  # index into REASONS; 0 = ok so far
    REASONS = [
        "",
        "unsupported-linktype",
        "not-ip",
        "not-udp",
        "ip-fragment",
        "ipv6-ext-header",
        "truncated-capture",
        "other-port",
        "bad-udp",
    ]
    R = {r: i for i, r in enumerate(REASONS)}

    def fail(mask, name):
        reason[(reason == 0) & mask] = R[name]

    def et_to_ver(et):
        return np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0))

    for lt in np.unique(linktype).tolist():
        g = np.flatnonzero(linktype == lt)
        d, c = data[g], caplen[g]
        if lt == LINKTYPE_ETHERNET:
            off = np.full(len(g), 14, np.int64)
            et = _be16(buf, d + 12)
            for _ in range(2):  # up to two VLAN tags (802.1Q, 802.1ad QinQ)
                tagged = (et == 0x8100) | (et == 0x88A8)
                et = np.where(tagged, _be16(buf, d + off + 2), et)
                off = off + 4 * tagged
            ver, short = et_to_ver(et), c < off
        elif lt == LINKTYPE_LINUX_SLL:
            off = np.full(len(g), 16, np.int64)
            ver, short = et_to_ver(_be16(buf, d + 14)), c < 16
        elif lt == LINKTYPE_LINUX_SLL2:
            off = np.full(len(g), 20, np.int64)
            ver, short = et_to_ver(_be16(buf, d)), c < 20
        elif lt in _RAW_TYPES:
            off = np.zeros(len(g), np.int64)
            ver, short = (buf[np.minimum(d, last)] >> 4).astype(np.int64), c < 1
            ver = np.where((ver == 4) | (ver == 6), ver, 0)
        elif lt in (LINKTYPE_NULL, LINKTYPE_LOOP):
            off = np.full(len(g), 4, np.int64)
            b = buf[np.minimum(d[:, None] + np.arange(4), last)].astype(np.int64)
            fam_le = b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16 | b[:, 3] << 24
            fam_be = b[:, 3] | b[:, 2] << 8 | b[:, 1] << 16 | b[:, 0] << 24
            fam = fam_be if lt == LINKTYPE_LOOP else np.where(fam_le < 256, fam_le, fam_be)
            ver = np.where(fam == 2, 4, np.where(np.isin(fam, (10, 24, 28, 30)), 6, 0))
            short = c < 4
        else:
            reason[g] = R["unsupported-linktype"]
            continue
        sub = reason[g]
        sub[(sub == 0) & short] = R["truncated-capture"]
        sub[(sub == 0) & (ver == 0)] = R["not-ip"]
        reason[g] = sub
        l3[g], ipver[g] = off, ver

    ip = data + l3
    v4, v6 = (ipver == 4) & (reason == 0), (ipver == 6) & (reason == 0)
    fail(v4 & (caplen < l3 + 20), "truncated-capture")
    fail(v6 & (caplen < l3 + 40), "truncated-capture")
    v4, v6 = v4 & (reason == 0), v6 & (reason == 0)
    b0 = buf[np.minimum(ip, last)].astype(np.int64)
    ihl = np.where(v4, (b0 & 15) * 4, 40)
    fail(v4 & ((b0 >> 4 != 4) | (ihl < 20)), "not-ip")
    proto = np.where(v4, buf[np.minimum(ip + 9, last)], buf[np.minimum(ip + 6, last)]).astype(
        np.int64
    )
    frag = _be16(buf, ip + 6) & 0x3FFF
    is_frag = (reason == 0) & ((v4 & (frag != 0)) | (v6 & (proto == 44)))
    fail(is_frag, "ip-fragment")
    fail(v6 & np.isin(proto, (0, 43, 60, 51, 135)), "ipv6-ext-header")
    fail((v4 | v6) & (proto != 17), "not-udp")
    l4 = ip + ihl
    fail(caplen < l4 + 8 - data, "truncated-capture")
    ulen = _be16(buf, l4 + 4)
    fail(ulen < 8, "bad-udp")
    fail(l4 + ulen > data + caplen, "truncated-capture")
    if port is not None:
        fail(_be16(buf, l4 + 2) != port, "other-port")
    extra: list[tuple[bytes, float, str]] = []  # datagrams completed by reassembly
    if frags is not None and is_frag.any():
        for i in np.flatnonzero(is_frag).tolist():
            rec = buf[data[i] + l3[i] : data[i] + caplen[i]].tobytes()
            done = frags.add(rec, int(ipver[i]), float(t[i]))
            if done is not None:
                extra.append(done)
    ok = np.flatnonzero(reason == 0)
    for i, name in enumerate(REASONS):
        if not i or (name == "ip-fragment" and frags is not None):
            continue  # fragments are the reassembler's inputs; it counts the ones never completed
        k = int((reason == i).sum())
        if k:
            skips.skip(name, "", k)
    # source addresses -> names
    src_idx = np.zeros(len(ok), np.uint32)
    table: list[str] = []
    is4 = ipver[ok] == 4
    if is4.any():
        a = buf[(ip[ok][is4] + 12)[:, None] + np.arange(4)].astype(np.uint32)
        packed = a[:, 0] << 24 | a[:, 1] << 16 | a[:, 2] << 8 | a[:, 3]
        uniq = _unique(packed)
        src_idx[is4] = np.searchsorted(uniq, packed).astype(np.uint32) + len(table)
        table += [str(ipaddress.IPv4Address(int(u))) for u in uniq.tolist()]
    if (~is4).any():
        rows = buf[(ip[ok][~is4] + 8)[:, None] + np.arange(16)]
        uniq, inv = np.unique(rows, axis=0, return_inverse=True)
        src_idx[~is4] = inv.ravel().astype(np.uint32) + len(table)
        table += [str(ipaddress.IPv6Address(bytes(u))) for u in uniq]
    res = decoder.decode_block(buf, l4[ok] + 8, ulen[ok] - 8, t[ok], src_idx, table)
    res.skipped.update(skips)
    for reason_name, k in frags.take_skips().items() if frags is not None else ():
        res.skipped.skip(reason_name, "reassembled datagram", k)
    if extra:  # reassembled datagrams: decoded apart, then merged back in time order
        whole = decoder.decode(
            [e[0] for e in extra], np.array([e[1] for e in extra]), [e[2] for e in extra]
        )
        res = DecodeResult.concat([res, whole])
        res.frames = res.frames[np.argsort(res.frames.meta["t_rx"], kind="stable")]
    return res


class Reassembler:
    """IPv4 / IPv6 fragment reassembly (RFC 791 / 8200), keyed by (src, dst, id, protocol).

    Fragments are rare here (a frame above ~1472 bytes), so this is plain Python per fragment.
    At most ``max_pending`` datagrams are held; the oldest is dropped (its fragments counted as
    ``ip-fragment``) when more arrive. Overlapping fragments are taken first-come.
    """

    def __init__(self, max_pending: int = 1024) -> None:
        self.max_pending = max_pending
        self._parts: dict[tuple, dict] = {}
        self._skips: dict[str, int] = {}

    @property
    def pending(self) -> int:
        """Fragments held for datagrams that have not completed."""
        return sum(len(v["pieces"]) for v in self._parts.values())

    def take_skips(self) -> dict[str, int]:
        out, self._skips = self._skips, {}
        return out

    def _skip(self, reason: str, n: int = 1) -> None:
        self._skips[reason] = self._skips.get(reason, 0) + n

    def add(self, ip: bytes, version: int, t: float):
        """Add one fragment (bytes from the IP header on); the UDP datagram when complete."""
        try:
            if version == 4:
                ihl = (ip[0] & 15) * 4
                total, ident, ff = struct.unpack_from("!HHH", ip, 2)
                proto = ip[9]
                src, dst = ip[12:16], ip[16:20]
                payload = ip[ihl:total]
                offset, more = (ff & 0x1FFF) * 8, bool(ff & 0x2000)
            else:
                plen = struct.unpack_from("!H", ip, 4)[0]
                src, dst = ip[8:24], ip[24:40]
                proto, _r, off_m, ident = struct.unpack_from("!BBHI", ip, 40)
                payload = ip[48 : 40 + plen]
                offset, more = (off_m >> 3) * 8, bool(off_m & 1)
        except (struct.error, IndexError):
            self._skip("truncated-capture")
            return None
        key = (version, src, dst, ident, proto)
        entry = self._parts.get(key)
        if entry is None:
            if len(self._parts) >= self.max_pending:
                oldest = next(iter(self._parts))
                self._skip("ip-fragment", len(self._parts.pop(oldest)["pieces"]))
            entry = self._parts[key] = {"pieces": {}, "total": None}
        entry["pieces"].setdefault(offset, payload)
        if not more:
            entry["total"] = offset + len(payload)
        total = entry["total"]
        if total is None:
            return None
        data = bytearray(total)
        covered = 0
        for off in sorted(entry["pieces"]):
            piece = entry["pieces"][off]
            if off > covered:
                return None  # a hole: wait for more
            data[off : off + len(piece)] = piece[: max(0, total - off)]
            covered = max(covered, off + len(piece))
        if covered < total:
            return None
        del self._parts[key]
        if proto != 17:
            self._skip("not-udp")
            return None
        ulen = struct.unpack_from("!H", data, 4)[0] if len(data) >= 8 else 0
        if ulen < 8 or ulen > len(data):
            self._skip("bad-udp")
            return None
        return bytes(data[8:ulen]), t, str(ipaddress.ip_address(src))


# ---------------------------------------------------------------------------------------------
# writing
class PcapWriter(FileWriter):
    """Write UDP datagrams as a classic pcap file (LINKTYPE_RAW or Ethernet framing).

    ::

        with PcapWriter("capture.pcap") as w:
            w.write(datagram, t_rx, src_ip="192.168.1.20", src_port=40000)

    ``nanosecond=True`` writes the ns-resolution magic. IPv4 header checksums are computed;
    UDP checksums are 0 ("none", legal for IPv4). IPv6 sources are written as IPv6 packets.
    """

    def __init__(
        self,
        file: str | os.PathLike | BinaryIO,
        *,
        linktype: str = "raw",
        nanosecond: bool = False,
        snaplen: int = 262_144,
        dst_ip: str = "192.168.1.10",
        dst_port: int = 5005,
    ) -> None:
        if linktype not in ("raw", "ethernet"):
            raise ValueError("linktype must be 'raw' or 'ethernet'")
        super().__init__(file)
        self.ethernet = linktype == "ethernet"
        self.nanosecond = nanosecond
        self.dst_ip, self.dst_port = dst_ip, dst_port
        self._scale = 1_000_000_000 if nanosecond else 1_000_000
        self._ip_id = 0
        self._addr_cache: dict[str, tuple[int, bytes]] = {}
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        network = LINKTYPE_ETHERNET if self.ethernet else LINKTYPE_RAW
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, network))

    def _addr(self, ip: str) -> tuple[int, bytes]:
        cached = self._addr_cache.get(ip)
        if cached is None:
            a = ipaddress.ip_address(ip)
            cached = self._addr_cache[ip] = (a.version, a.packed)
        return cached

    def write(self, datagram: bytes, t: float, src_ip: str = "192.168.1.20", src_port: int = 40000,
              dst_ip: str | None = None, dst_port: int | None = None) -> None:  # fmt: skip
        """Append one UDP datagram received at unix time ``t``."""
        ver, src = self._addr(src_ip)
        dver, dst = self._addr(dst_ip or self.dst_ip)
        udp = struct.pack("!HHHH", src_port, dst_port or self.dst_port, 8 + len(datagram), 0)
        if ver == 4 and dver == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            hdr = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                28 + len(datagram),
                self._ip_id,
                0x4000,
                64,
                17,
                0,
                src,
                dst,
            )
            hdr = hdr[:10] + struct.pack("!H", _ip_checksum(hdr)) + hdr[12:]
            ethertype = 0x0800
        else:
            if dver == 4:
                dst = socket.inet_pton(socket.AF_INET6, "::ffff:" + (dst_ip or self.dst_ip))
            if ver == 4:
                src = socket.inet_pton(socket.AF_INET6, "::ffff:" + src_ip)
            hdr = struct.pack("!IHBB16s16s", 0x60000000, 8 + len(datagram), 17, 64, src, dst)
            ethertype = 0x86DD
        pkt = hdr + udp + datagram
        if self.ethernet:
            pkt = (
                b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
                + struct.pack("!H", ethertype)
                + pkt
            )
        whole = int(t)
        frac = round((t - whole) * self._scale)
        if frac >= self._scale:
            whole, frac = whole + 1, frac - self._scale
        self._f.write(struct.pack("<IIII", whole, frac, len(pkt), len(pkt)) + pkt)
        self.count += 1


def _ip_checksum(hdr: bytes) -> int:
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def write_pcap(path: str | Path, datagrams, t, sources, **kw) -> int:
    """Write ``datagrams`` received at ``t`` (one per datagram) from IPs ``sources``."""
    with PcapWriter(path, **kw) as w:
        for d, ti, s in zip(datagrams, t, sources, strict=True):
            w.write(d, float(ti), s)
        return w.count
