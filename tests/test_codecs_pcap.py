"""pcap/pcapng reading (every link type, IPv4/IPv6, skips) and the classic-pcap writer."""

from __future__ import annotations

import os
import struct
import tempfile

import dpkt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.capture import CaptureError, read_capture
from csi_edge.codecs import ruview as rv
from csi_edge.codecs.pcap import PcapError, PcapWriter, iter_pcap, read_pcap

FRAMES = [
    rv.encode_raw_frame(i % 3 + 1, i, np.full(2 * n, i, np.int8))
    for i, n in enumerate([64, 128, 192, 64, 64])
]


# --- hand-built packets -----------------------------------------------------------------------
def ip4_udp(payload: bytes, src="10.1.2.3", dport=5005, proto=17, frag=0x4000) -> bytes:
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    body = udp if proto == 17 else b"\x00" * 20 + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, frag, 64, proto, 0,
                      bytes(map(int, src.split("."))), bytes([10, 1, 2, 99]))  # fmt: skip
    return hdr + body


def ip6_udp(payload: bytes, nxt=17) -> bytes:
    udp = struct.pack("!HHHH", 40000, 5005, 8 + len(payload), 0) + payload
    src = bytes.fromhex("fe800000000000000000000000000001")
    if nxt == 44:  # fragment header in front of the UDP header
        udp = struct.pack("!BBHI", 17, 0, 1, 7) + udp
    return struct.pack("!IHBB16s16s", 0x60000000, len(udp), nxt, 64, src, bytes(16)) + udp


def classic_pcap(linktype: int, packets: list[bytes], t0=1000.0, snaplen=65535) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for i, p in enumerate(packets):
        cap = p[:snaplen]
        out += struct.pack("<IIII", int(t0) + i, 250000, len(cap), len(p)) + cap
    return out


ETH = b"\x02" * 6 + b"\x04" * 6
LINK = {
    1: lambda ip: ETH + (b"\x08\x00" if ip[0] >> 4 == 4 else b"\x86\xdd") + ip,
    113: lambda ip: (
        struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800 if ip[0] >> 4 == 4 else 0x86DD) + ip
    ),
    276: lambda ip: (
        struct.pack("!HHIHBB8s", 0x0800 if ip[0] >> 4 == 4 else 0x86DD, 0, 1, 1, 0, 6, b"\x02" * 8)
        + ip
    ),
    101: lambda ip: ip,
    228: lambda ip: ip,
    0: lambda ip: struct.pack("<I", 2 if ip[0] >> 4 == 4 else 30) + ip,
    108: lambda ip: struct.pack(">I", 2 if ip[0] >> 4 == 4 else 24) + ip,
}


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --- tests ------------------------------------------------------------------------------------
@pytest.mark.parametrize("linktype", ["raw", "ethernet"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_writer_reader_round_trip(tmp_path, linktype, nanosecond):
    p = tmp_path / "c.pcap"
    t = [1_700_000_000.123456 + 0.05 * i for i in range(len(FRAMES))]
    srcs = ["192.168.1.20", "192.168.1.21", "fd00::5", "192.168.1.20", "192.168.1.21"]
    with PcapWriter(p, linktype=linktype, nanosecond=nanosecond) as w:
        for d, ti, s in zip(FRAMES, t, srcs, strict=True):
            w.write(d, ti, s)
        w.write(rv.encode_edge_vitals(1, breathing_bpm=12.0), t[-1] + 1, "192.168.1.20")
    res = read_pcap(p)
    assert len(res.frames) == 5 and res.packet_counts == {"edge_vitals": 1} and not res.skipped
    assert [res.frames.sources[i] for i in res.frames.meta["src"]] == srcs
    assert np.allclose(res.frames.meta["t_rx"], t, atol=1e-6, rtol=0)
    assert res.frames.meta["seq"].tolist() == list(range(5))
    for i, d in enumerate(FRAMES):
        assert res.frames.raw(i).tobytes() == d[20:]


def test_dpkt_reads_what_we_write(tmp_path):
    """Interoperability: an independent reader sees valid IPv4/UDP with correct checksums."""
    p = tmp_path / "c.pcap"
    with PcapWriter(p, linktype="ethernet") as w:
        for i, d in enumerate(FRAMES):
            w.write(d, 100.0 + i, "192.168.1.20", 41000)
    with open(p, "rb") as f:
        got = []
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            hdr = bytes(ip)[:20]
            assert sum(struct.unpack("!10H", hdr)) % 0xFFFF == 0  # header checksum verifies
            assert ip.udp.sport == 41000 and ip.udp.dport == 5005
            got.append((ts, ip.udp.data))
    assert [g[1] for g in got] == FRAMES and got[0][0] == 100.0


@pytest.mark.parametrize("linktype", sorted(LINK))
def test_every_link_type_ipv4_and_ipv6(tmp_path, linktype):
    packets = [
        LINK[linktype](ip4_udp(FRAMES[0])),
        LINK[linktype](ip6_udp(FRAMES[1]) if linktype != 228 else ip4_udp(FRAMES[1])),
    ]
    res = read_pcap(write(tmp_path, "l.pcap", classic_pcap(linktype, packets)))
    assert len(res.frames) == 2 and not res.skipped, res.skipped
    assert (
        res.frames.raw(0).tobytes() == FRAMES[0][20:]
        and res.frames.raw(1).tobytes() == FRAMES[1][20:]
    )
    assert res.frames.meta["t_rx"].tolist() == [1000.25, 1001.25]


def test_vlan_tagged_ethernet(tmp_path):
    pkt = ETH + b"\x81\x00\x00\x05\x08\x00" + ip4_udp(FRAMES[2])
    res = read_pcap(write(tmp_path, "v.pcap", classic_pcap(1, [pkt])))
    assert len(res.frames) == 1 and res.frames.meta["n_pairs"][0] == 192


def test_big_endian_and_nanosecond_headers(tmp_path):
    data = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 101)
    ip = ip4_udp(FRAMES[0])
    data += struct.pack(">IIII", 5, 500_000_000, len(ip), len(ip)) + ip
    res = read_pcap(write(tmp_path, "be.pcap", data))
    assert res.frames.meta["t_rx"].tolist() == [5.5] and len(res.frames) == 1


def test_pcapng_from_dpkt_and_by_hand(tmp_path):
    p = tmp_path / "a.pcapng"
    with open(p, "wb") as f:
        w = dpkt.pcapng.Writer(f, snaplen=65535, linktype=1)
        for i, d in enumerate(FRAMES):
            w.writepkt(LINK[1](ip4_udp(d)), ts=50.0 + i)
    res = read_capture(p)
    assert len(res.frames) == 5 and res.frames.meta["t_rx"].tolist() == [
        50.0,
        51.0,
        52.0,
        53.0,
        54.0,
    ]

    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_raw_ns = block(
        1, struct.pack("<HHI", 101, 0, 0) + struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4
    )
    idb_eth = block(1, struct.pack("<HHI", 1, 0, 0))
    ip0, ip1 = ip4_udp(FRAMES[0]), LINK[1](ip6_udp(FRAMES[3]))
    ts = 7_250_000_000  # ns on interface 0
    epb0 = block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(ip0), len(ip0)) + ip0)
    epb1 = block(6, struct.pack("<IIIII", 1, 0, 3_000_000, len(ip1), len(ip1)) + ip1)
    spb = block(3, struct.pack("<I", len(ip0)) + ip0)
    res = read_pcap(write(tmp_path, "h.pcapng", shb + idb_raw_ns + idb_eth + epb0 + epb1 + spb))
    assert len(res.frames) == 3 and not res.skipped
    t = res.frames.meta["t_rx"]
    assert t[0] == pytest.approx(7.25) and t[1] == pytest.approx(3.0) and np.isnan(t[2])


@pytest.mark.parametrize(
    "packet, reason",
    [
        (ip4_udp(FRAMES[0], proto=6), "not-udp"),
        (ip4_udp(FRAMES[0], frag=0x2000), "ip-fragment"),  # first fragment (MF set)
        (ip4_udp(FRAMES[0], frag=0x0010), "ip-fragment"),  # later fragment
        (ip6_udp(FRAMES[0], nxt=44), "ip-fragment"),
        (ip6_udp(FRAMES[0], nxt=0), "ipv6-ext-header"),
        (b"\x45\x00", "truncated-capture"),
        (b"\x70" + bytes(40), "not-ip"),
    ],
)
def test_network_layer_skips(tmp_path, packet, reason):
    res = read_pcap(write(tmp_path, "s.pcap", classic_pcap(101, [ip4_udp(FRAMES[0]), packet])))
    assert res.skipped == {reason: 1} and len(res.frames) == 1


def ip4_fragments(payload: bytes, size: int = 1480, ident: int = 77) -> list[bytes]:
    udp = struct.pack("!HHHH", 40000, 5005, 8 + len(payload), 0) + payload
    out = []
    for off in range(0, len(udp), size):
        piece = udp[off : off + size]
        ff = (off // 8) | (0x2000 if off + size < len(udp) else 0)
        out.append(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(piece), ident, ff, 64, 17, 0,
                               bytes([10, 1, 2, 3]), bytes([10, 1, 2, 99])) + piece)  # fmt: skip
    return out


def ip6_fragments(payload: bytes, size: int = 1448, ident: int = 9) -> list[bytes]:
    udp = struct.pack("!HHHH", 40000, 5005, 8 + len(payload), 0) + payload
    src = bytes.fromhex("fd000000000000000000000000000007")
    out = []
    for off in range(0, len(udp), size):
        piece = udp[off : off + size]
        fh = struct.pack("!BBHI", 17, 0, off | (1 if off + size < len(udp) else 0), ident)
        out.append(
            struct.pack("!IHBB16s16s", 0x60000000, 8 + len(piece), 44, 64, src, bytes(16))
            + fh
            + piece
        )
    return out


def test_fragmented_datagrams_are_reassembled(tmp_path):
    big = rv.encode_raw_frame(4, 99, np.arange(2048).astype(np.int8))  # 2068 bytes: > 1 MTU
    f4 = ip4_fragments(big, size=800)
    f6 = ip6_fragments(big)
    assert len(f4) == 3 and len(f6) == 2
    packets = [
        f4[2],
        ip4_udp(FRAMES[0]),
        f4[0],
        f4[0],
        f6[1],
        f4[1],
        f6[0],
    ]  # shuffled, a duplicate
    res = read_pcap(write(tmp_path, "frag.pcap", classic_pcap(101, packets)))
    assert len(res.frames) == 3 and not res.skipped, res.skipped
    assert np.all(np.diff(res.frames.meta["t_rx"]) >= 0)
    whole = [i for i in range(3) if res.frames.meta["n_pairs"][i] == 1024]
    assert len(whole) == 2
    for i in whole:
        assert res.frames.raw(i).tobytes() == big[20:]
    assert {res.frames.sources[res.frames.meta["src"][i]] for i in whole} == {"10.1.2.3", "fd00::7"}
    res = read_pcap(
        write(tmp_path, "partial.pcap", classic_pcap(101, f4[:2] + [ip4_udp(FRAMES[0])]))
    )
    assert len(res.frames) == 1 and res.skipped == {"ip-fragment": 2}


def test_other_skips_arp_snaplen_port_linktype(tmp_path):
    arp = ETH + b"\x08\x06" + bytes(28)
    res = read_pcap(
        write(tmp_path, "arp.pcap", classic_pcap(1, [arp, LINK[1](ip4_udp(FRAMES[0]))]))
    )
    assert res.skipped == {"not-ip": 1} and len(res.frames) == 1
    res = read_pcap(
        write(tmp_path, "snap.pcap", classic_pcap(101, [ip4_udp(FRAMES[1])], snaplen=96))
    )
    assert res.skipped == {"truncated-capture": 1}
    p = write(
        tmp_path, "port.pcap", classic_pcap(101, [ip4_udp(FRAMES[0]), ip4_udp(FRAMES[0], dport=53)])
    )
    assert read_pcap(p, port=5005).skipped == {"other-port": 1}
    assert read_pcap(p).skipped == {}
    res = read_pcap(write(tmp_path, "radiotap.pcap", classic_pcap(127, [bytes(60)])))
    assert res.skipped == {"unsupported-linktype": 1}


def test_damaged_files(tmp_path):
    good = classic_pcap(101, [ip4_udp(d) for d in FRAMES])
    res = read_pcap(write(tmp_path, "cut.pcap", good[:-10]))
    assert len(res.frames) == 4 and res.skipped == {"truncated-record": 1}
    res = read_pcap(write(tmp_path, "tail.pcap", good + b"\x01\x02"))
    assert len(res.frames) == 5 and res.skipped == {"truncated-record": 1}
    corrupt = bytearray(good)
    second = 24 + 16 + len(ip4_udp(FRAMES[0]))
    corrupt[second + 8 : second + 12] = struct.pack("<I", 0x7FFFFFFF)
    res = read_pcap(write(tmp_path, "corrupt.pcap", bytes(corrupt)))
    assert len(res.frames) == 1 and res.skipped == {"corrupt-record": 1}
    for name, data in [("empty.pcap", b""), ("short.pcap", good[:10]), ("junk.pcap", b"\x00" * 64)]:
        with pytest.raises(PcapError):
            list(iter_pcap(write(tmp_path, name, data)))
    with pytest.raises(CaptureError, match="empty"):
        read_capture(tmp_path / "empty.pcap")
    with pytest.raises(CaptureError, match="pcap global header truncated"):
        read_capture(tmp_path / "short.pcap", fmt="pcap")


def test_chunked_reading_equals_whole(tmp_path):
    p = tmp_path / "many.pcap"
    with PcapWriter(p) as w:
        for i in range(2000):
            w.write(
                rv.encode_raw_frame(i % 4, i, np.full(128 + 128 * (i % 3), i % 100, np.int8)),
                i * 0.01,
                f"10.0.0.{i % 4}",
            )
    chunks = list(iter_pcap(p, chunk_records=100))
    assert len(chunks) > 3
    whole = read_pcap(p)
    joined = type(whole).concat(chunks)
    assert np.array_equal(joined.frames.iq, whole.frames.iq) and len(whole.frames) == 2000
    assert joined.frames.node_keys().tolist() == whole.frames.node_keys().tolist()


def _read_mutated(base: bytes, flips, cut: int, name: str):
    """(bytes, read_pcap result) of ``base`` with ``flips`` [(position, value)] applied, then cut
    to ``cut`` bytes."""
    data = bytearray(base)
    for pos, val in flips:
        data[pos] = val
    data = bytes(data[:cut])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        return data, read_pcap(path)


# --- property test: mutated files -------------------------------------------------------------
BASE = classic_pcap(
    1, [LINK[1](ip4_udp(d)) for d in FRAMES] + [LINK[1](ip4_udp(rv.encode_feature_state(1, 1, 1)))]
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(24, len(BASE) - 1), st.integers(0, 255)), max_size=6),
    st.integers(24, len(BASE)),
)
def test_property_pcap_reader_on_mutated_files(flips, cut):
    data, res = _read_mutated(BASE, flips, cut, "m.pcap")  # never raises past a valid header
    assert len(res.frames.iq) == res.frames.offsets[-1]
    # every record is decoded, counted as a packet, or skipped; a damaged length can make the walk
    # see records inside others (each at least a 16-byte header) until damage stops it
    assert res.n_inputs <= len(data) // 16 + 2
    only_payload = all(pos >= 24 + 16 + 42 for pos, _ in flips) and cut == len(BASE)
    if not flips and cut == len(BASE):
        assert len(res.frames) == len(FRAMES) and res.packet_counts == {"feature_state": 1}
    elif only_payload and all(pos < 24 + 16 + 42 + 20 for pos, _ in flips):
        assert res.n_inputs == len(FRAMES) + 1  # header bytes of the first frame's datagram only


def _pcapng_base() -> bytes:
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(
        1,
        struct.pack("<HHI", 101, 0, 0)
        + struct.pack("<HHB3x", 9, 1, 9)
        + struct.pack("<HHq", 14, 8, 5)
        + b"\0" * 4,
    )
    for i, d in enumerate(FRAMES[:3]):
        ip = ip4_udp(d)
        out += block(6, struct.pack("<IIIII", 0, 0, i, len(ip), len(ip)) + ip)
    return out


NG = _pcapng_base()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(28, len(NG) - 1), st.integers(0, 255)), max_size=6),
    st.integers(28, len(NG)),
)
def test_property_pcapng_reader_on_mutated_files(flips, cut):
    _, res = _read_mutated(NG, flips, cut, "m.pcapng")
    assert len(res.frames.iq) == res.frames.offsets[-1]
    assert res.n_inputs <= len(NG) // 12 + 2
    if not flips and cut == len(NG):
        assert len(res.frames) == 3 and not res.skipped
