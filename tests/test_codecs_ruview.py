"""RuView ADR-018 UDP family: encoders, the vectorised decoder, bad input, property tests."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csi_edge.codecs import ruview as rv
from csi_edge.codecs.ruview import RuViewDecoder
from csi_edge.frames import FrameFormat

RNG = np.random.default_rng(7)


def csi(n_pairs: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-40, 40, 2 * n_pairs).astype(np.int8)


def test_worked_example_header_bytes_round_trip():
    """Spec §1.1: node 2, 1 antenna, 64 pairs, 2437 MHz, seq 18, RSSI -45, noise -92."""
    data = csi(64)
    frame = rv.encode_raw_frame(2, 18, data, freq_mhz=2437, rssi=-45, noise=-92)
    assert frame[:20] == bytes.fromhex(
        "01 00 11 c5 02 01 40 00 85 09 00 00 12 00 00 00 d3 a4 00 00"
    )
    assert len(frame) == 20 + 128
    res = RuViewDecoder().decode([frame], 1234.5, "192.168.1.20")
    m = res.frames.meta[0]
    assert (m["node_id"], m["seq"], m["rssi"], m["noise"], m["freq_mhz"], m["channel"], m["n_pairs"]) == (
        2, 18, -45, -92, 2437, 6, 64,
    )  # fmt: skip
    assert m["t_rx"] == 1234.5 and m["fmt"] == FrameFormat.RUVIEW_RAW
    assert res.frames.sources == ["192.168.1.20"]
    assert np.array_equal(res.frames.raw(0), data)


def test_batch_of_mixed_lengths_sources_and_times():
    lengths = [64, 128, 192, 64, 0, 128]
    dgs = [
        rv.encode_raw_frame(i % 3, 100 + i, csi(n, i), freq_mhz=2412 + 5 * i)
        for i, n in enumerate(lengths)
    ]
    t = np.arange(len(dgs)) * 0.05 + 10
    srcs = ["10.0.0.1", "10.0.0.2"] * 3
    res = RuViewDecoder().decode(dgs, t, srcs)
    assert len(res.frames) == 6 and res.n_inputs == 6
    assert res.frames.meta["n_pairs"].tolist() == lengths
    assert res.frames.meta["seq"].tolist() == list(range(100, 106))
    assert res.frames.meta["channel"].tolist() == [1, 2, 3, 4, 5, 6]
    assert np.allclose(res.frames.meta["t_rx"], t)
    assert [res.frames.sources[s] for s in res.frames.meta["src"]] == srcs
    for i, n in enumerate(lengths):
        assert np.array_equal(res.frames.raw(i), csi(n, i))
    assert res.frames.node_keys().tolist()[:2] == ["10.0.0.1#0", "10.0.0.2#1"]


def test_batched_decode_equals_one_by_one():
    dgs = [rv.encode_raw_frame(i % 4, i, csi([64, 128, 192][i % 3], i)) for i in range(300)]
    whole = RuViewDecoder().decode(dgs, 1.0, "a")
    dec = RuViewDecoder()
    singles = [dec.decode([d], 1.0, "a") for d in dgs]
    assert np.array_equal(whole.frames.iq, np.concatenate([s.frames.iq for s in singles]))
    assert np.array_equal(whole.frames.meta, np.concatenate([s.frames.meta for s in singles]))


def test_every_sibling_packet_decodes_to_named_fields():
    dgs = [
        rv.encode_edge_vitals(3, presence=True, motion=True, breathing_bpm=14.25, heart_bpm=72.5, rssi=-40, n_persons=1,
                              motion_energy=0.5, presence_score=2.0, timestamp_ms=99),
        rv.encode_feature_vector(3, 7, 123456, [0.1 * i for i in range(8)]),
        rv.encode_fused_vitals(3, flags=8, breathing_bpm=12, heart_bpm=60, mmwave_hr=61.0, distance_cm=150.0, targets=2),
        rv.encode_wasm_events(3, 1, [(1, 0.5), (2, -3.0), (9, 7.25)]),
        rv.encode_feature_state(3, 11, 777, motion=0.25, heartbeat_bpm=70.0, quality_flags=5),
        rv.encode_mesh_health(b"abcdefgh", 5, channel=11, noise=-90, pkt_yield=42),
        rv.encode_mesh_anomaly(b"abcdefgh", 6, reason=3, anomaly=0.75),
    ]  # fmt: skip
    res = RuViewDecoder().decode(dgs, 5.0, "10.0.0.3")
    kinds = [p.kind for p in res.packets]
    assert kinds == ["edge_vitals", "feature_vector", "fused_vitals", "wasm_events", "feature_state",
                     "mesh_health", "mesh_anomaly_alert"]  # fmt: skip
    v, fv, fu, w, fs, mh, ma = (p.fields for p in res.packets)
    assert v["presence"] and v["motion"] and not v["fall"]
    assert v["breathing_bpm"] == pytest.approx(14.25) and v["heart_bpm"] == pytest.approx(72.5)
    assert (v["rssi"], v["n_persons"], v["timestamp_ms"]) == (-40, 1, 99)
    assert (
        fv["seq"] == 7 and fv["timestamp_us"] == 123456 and fv["features"][3] == pytest.approx(0.3)
    )
    assert (
        fu["mmwave_presence"]
        and fu["mmwave_hr"] == 61.0
        and fu["targets"] == 2
        and fu["distance_cm"] == 150.0
    )
    assert w["slot"] == 1 and w["events"] == [[1, 0.5], [2, -3.0], [9, 7.25]]
    assert fs["seq"] == 11 and fs["heartbeat_bpm"] == 70.0 and fs["quality_flags"] == 5
    assert (
        mh["channel"] == 11
        and mh["pkt_yield"] == 42
        and mh["noise"] == -90
        and mh["node"] == "abcdefgh"
    )
    assert ma["reason"] == 3 and ma["anomaly"] == 0.75
    assert all(p.node_id == 3 for p in res.packets[:5])
    assert res.packet_counts["wasm_events"] == 1 and len(res.frames) == 0


def test_fused_vitals_and_wasm_events_told_apart_by_length():
    # 8 WASM events are 48 bytes, like fused vitals: the event count decides (spec §1)
    wasm48 = rv.encode_wasm_events(1, 0, [(i, float(i)) for i in range(8)])
    assert len(wasm48) == 48
    fused = rv.encode_fused_vitals(1, breathing_bpm=15.0)
    res = RuViewDecoder().decode([wasm48, fused], 0.0, "x")
    assert [p.kind for p in res.packets] == ["wasm_events", "fused_vitals"]


def test_crc_checked_for_feature_state_and_mesh():
    good_fs = rv.encode_feature_state(1, 1, 1)
    good_mesh = rv.encode_mesh_health()
    bad_fs = good_fs[:20] + bytes([good_fs[20] ^ 1]) + good_fs[21:]
    bad_mesh = good_mesh[:30] + bytes([good_mesh[30] ^ 0x80]) + good_mesh[31:]
    res = RuViewDecoder().decode([good_fs, bad_fs, good_mesh, bad_mesh], 0.0, "x")
    assert res.packet_counts == {"feature_state": 1, "mesh_health": 1}
    assert res.skipped["crc-mismatch"] == 2
    assert zlib.crc32(b"123456789") == 0xCBF43926 and zlib.crc32(b"\x00") == 0xD202EF8D


def test_compressed_csi_decoded_against_previous_raw_frame():
    a, b, c = csi(64, 1), csi(64, 1).copy(), csi(64, 1).copy()
    b[10:20] += 3
    c[0] -= 1
    raw_a, raw_b = rv.encode_raw_frame(5, 1, a), rv.encode_raw_frame(5, 2, b)
    comp_b = rv.encode_compressed(5, 6, b.tobytes(), a.tobytes())
    comp_c = rv.encode_compressed(5, 6, c.tobytes(), b.tobytes())
    assert comp_b is not None and len(comp_b) < len(raw_b)
    dec = RuViewDecoder()
    # usual wire order: raw B, then compressed B (delta against A)
    res = dec.decode([raw_a, raw_b, comp_b], 0.0, "n")
    (p,) = res.packets
    assert (
        p.kind == "compressed_csi"
        and p.fields["matches_raw"]
        and p.fields["reference"] == "previous-raw"
    )
    assert bytes.fromhex(p.fields["csi_hex"]) == b.tobytes()
    # compressed C overtakes its raw frame, in a later batch: decoded against the latest raw (B)
    res2 = dec.decode([comp_c], 1.0, "n")
    assert bytes.fromhex(res2.packets[0].fields["csi_hex"]) == c.tobytes()
    assert res2.packets[0].fields["reference"] == "last-raw"


def test_compressed_bad_input_counted():
    a = csi(64, 3)
    comp = rv.encode_compressed(
        1, 6, (a + 1).astype(np.int8).tobytes(), a.tobytes(), only_if_smaller=False
    )
    fresh = RuViewDecoder()
    assert fresh.decode([comp], 0.0, "n").skipped == {"no-previous-frame": 1}
    other_node = RuViewDecoder()
    r = other_node.decode(
        [rv.encode_raw_frame(2, 0, a), comp], 0.0, "n"
    )  # node 2's frame, node 1's delta
    assert r.skipped["no-previous-frame"] == 1
    dec = RuViewDecoder()
    dec.decode([rv.encode_raw_frame(1, 0, a)], 0.0, "n")
    bad_rle = comp[:10] + bytes([comp[10], 0]) + comp[12:]  # run length 0
    short_rle = comp[:8] + struct.pack("<H", len(comp) - 12) + comp[10:-2]
    r = dec.decode([bad_rle, short_rle, comp[:-1], comp + b"\0"], 0.0, "n")
    assert r.skipped == {"bad-rle": 2, "truncated": 1, "oversized": 1}


@pytest.mark.parametrize(
    "datagram, reason",
    [
        (b"", "truncated"),
        (b"\x01\x00\x11", "truncated"),
        (rv.encode_raw_frame(1, 1, csi(64))[:19], "truncated"),
        (rv.encode_raw_frame(1, 1, csi(64))[:-1], "truncated"),
        (rv.encode_raw_frame(1, 1, csi(64)) + bytes(2000), "oversized"),
        (
            struct.pack("<IBBHIIbbH", rv.MAGIC_RAW, 1, 1, 1100, 2437, 0, -50, -90, 0) + bytes(2200),
            "oversized",
        ),
        (
            struct.pack("<IBBHIIbbH", rv.MAGIC_RAW, 1, 0, 64, 2437, 0, -50, -90, 0) + bytes(128),
            "bad-header",
        ),
        (b"\xde\xad\xbe\xef" + bytes(40), "bad-magic"),
        (struct.pack("<I", 0xC5110007) + bytes(40), "unsupported-packet"),
        (rv.encode_edge_vitals(1)[:31], "truncated"),
        (rv.encode_edge_vitals(1) + b"\0", "oversized"),
        (rv.encode_feature_vector(1, 1, 1, [0] * 8)[:40], "truncated"),
        (rv.encode_fused_vitals(1)[:47], "truncated"),
        (rv.encode_feature_state(1, 1, 1)[:59], "truncated"),
        (rv.encode_mesh_health()[:40], "truncated"),
        (rv.encode_mesh(0x09, b"hello"), "unsupported-mesh-type"),
        (rv.encode_mesh(0x06, b"short"), "truncated"),
    ],
)
def test_bad_datagrams_counted_by_reason(datagram, reason):
    good = rv.encode_raw_frame(9, 1, csi(64))
    res = RuViewDecoder().decode([good, datagram, good], 0.0, "10.0.0.9")
    assert res.skipped == {reason: 1}
    assert len(res.frames) == 2 and res.n_inputs == 3  # a bad datagram never blocks the others


def test_max_frame_2068_bytes_and_header_only_frame():
    big = rv.encode_raw_frame(1, 1, csi(1024))
    assert len(big) == rv.MAX_FRAME_LEN == 2068
    res = RuViewDecoder().decode([big, rv.encode_raw_frame(1, 2, b"")], 0.0, "x")
    assert res.frames.meta["n_pairs"].tolist() == [1024, 0] and not res.skipped


def test_iq_order_is_validated():
    with pytest.raises(ValueError, match="iq_order"):
        RuViewDecoder().decode([b""], 0.0, "x", iq_order="bogus")


# --- property tests ---------------------------------------------------------------------------
VALID = [
    rv.encode_raw_frame(1, 5, csi(64)),
    rv.encode_raw_frame(2, 6, csi(128)),
    rv.encode_raw_frame(3, 7, csi(192)),
    rv.encode_edge_vitals(1, breathing_bpm=12),
    rv.encode_feature_vector(1, 2, 3, [0.5] * 8),
    rv.encode_fused_vitals(1),
    rv.encode_wasm_events(1, 2, [(1, 1.0)]),
    rv.encode_compressed(1, 6, csi(64, 1).tobytes(), csi(64, 1).tobytes()),
    rv.encode_feature_state(1, 2, 3),
    rv.encode_mesh_health(),
    rv.encode_mesh_anomaly(),
]


@st.composite
def mutated(draw):
    base = bytearray(draw(st.sampled_from(VALID)))
    op = draw(st.sampled_from(["flip", "cut", "extend", "set16"]))
    if op == "flip" and base:
        i = draw(st.integers(0, len(base) - 1))
        base[i] ^= draw(st.integers(1, 255))
    elif op == "cut":
        base = base[: draw(st.integers(0, len(base)))]
    elif op == "extend":
        base += draw(st.binary(max_size=64))
    elif len(base) >= 8:
        i = draw(st.integers(0, len(base) - 2))
        base[i : i + 2] = struct.pack("<H", draw(st.integers(0, 65535)))
    return bytes(base)


datagram = st.one_of(st.binary(max_size=300), st.sampled_from(VALID), mutated())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(datagram, max_size=20), st.integers(0, 3))
def test_property_decoder_never_raises_and_accounts_every_datagram(dgs, n_sources):
    sources = [f"10.0.0.{i % (n_sources + 1)}" for i in range(len(dgs))]
    res = RuViewDecoder().decode(dgs, np.arange(len(dgs), dtype=float), sources)
    assert res.n_inputs == len(dgs)
    assert len(res.frames.iq) == res.frames.offsets[-1] == 2 * int(res.frames.meta["n_pairs"].sum())
    for i in range(len(res.frames)):  # every frame's CSI is the tail of some input datagram
        assert any(
            d.endswith(res.frames.raw(i).tobytes()) or res.frames.raw(i).tobytes() in d for d in dgs
        )
