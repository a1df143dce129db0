"""Subcarrier layout, canonical order, I/Q order: against the ESP-IDF table and real captures."""

from __future__ import annotations

import numpy as np
import pytest

from csi_edge.capture import read_capture
from csi_edge.codecs.ruview import RuViewDecoder, encode_raw_frame
from csi_edge.frames import FrameBatch, empty_meta
from csi_edge.layout import (
    HT20_SUBCARRIERS,
    HT40_SUBCARRIERS,
    LLTF_SUBCARRIERS,
    LLTF_VALID,
    layout_for,
    lltf_canonical,
    sections,
    to_canonical,
)

DATA = __import__("pathlib").Path(__file__).parent / "data"


def batch_from(raw: list[np.ndarray], **ppdu) -> FrameBatch:
    meta = empty_meta(len(raw))
    meta["n_pairs"] = [len(r) // 2 for r in raw]
    for k, v in ppdu.items():
        meta[k] = v
    offsets = np.zeros(len(raw) + 1, np.int64)
    np.cumsum([len(r) for r in raw], out=offsets[1:])
    return FrameBatch(meta, np.concatenate(raw).astype(np.int8), offsets, ["t"])


def frame_with_subcarrier_values(order: np.ndarray) -> np.ndarray:
    """A raw buffer whose pair i holds (imag=k, real=2k) for the subcarrier k it carries."""
    k = np.asarray(order)
    return np.stack((k, 2 * k), axis=1).ravel().astype(np.int8)


@pytest.mark.parametrize(
    "n_pairs, ppdu, expect",
    [
        (64, {}, [("lltf", 64)]),
        (128, {}, [("lltf", 64), ("ht-ltf", 64)]),
        (192, {}, [("lltf", 64), ("ht-ltf", 64), ("stbc-ht-ltf", 64)]),
        (
            190,
            {},
            [("lltf", 64), ("ht-ltf", 63), ("stbc-ht-ltf", 63)],
        ),  # 380 bytes: below, HT20 STBC
        (188, {}, [("lltf", 64), ("ht-ltf", 62), ("stbc-ht-ltf", 62)]),  # 376 bytes: above
        (306, {}, [("lltf", 64), ("ht-ltf", 121), ("stbc-ht-ltf", 121)]),  # 612 bytes: HT40 STBC
        (
            192,
            dict(sig_mode=1, bandwidth=1, secondary=2, stbc=0),
            [("lltf", 64), ("ht-ltf", 128)],
        ),  # HT40
        (
            64,
            dict(sig_mode=1, bandwidth=0, secondary=0, stbc=1),
            [("lltf", 64)],
        ),  # printed LLTF only
    ],
)
def test_layout_table(n_pairs, ppdu, expect):
    got = [(s.name, s.n_pairs) for s in sections(n_pairs, **ppdu)]
    assert got == expect


def test_unknown_length_has_no_layout():
    assert layout_for(100) is None and sections(7) == ()


def test_ht20_lltf_lands_in_ascending_order_with_dc_null():
    order = np.r_[0:32, -32:0]  # ESP-IDF: 0~31, -32~-1
    raw = frame_with_subcarrier_values(order)
    out = lltf_canonical(batch_from([raw]))[0]
    assert out.shape == (53,)
    k = LLTF_SUBCARRIERS
    expect = (2 * k + 1j * k).astype(np.complex64)  # imag-first: (imag=k, real=2k)
    expect[~LLTF_VALID] = 0
    assert np.array_equal(out, expect)
    assert out[26] == 0  # DC


def test_secondary_channel_layouts_recentred_on_primary():
    below = frame_with_subcarrier_values(np.arange(64) - 32)
    above = frame_with_subcarrier_values(np.arange(64) - 32)
    b = lltf_canonical(batch_from([below], sig_mode=0, bandwidth=0, secondary=2, stbc=0))[0]
    a = lltf_canonical(batch_from([above], sig_mode=0, bandwidth=0, secondary=1, stbc=0))[0]
    assert np.array_equal(b.imag[LLTF_VALID], LLTF_SUBCARRIERS[LLTF_VALID])
    assert np.array_equal(a, b)


def test_ht_ltf_grids_20_and_40():
    raw20 = np.concatenate([frame_with_subcarrier_values(np.r_[0:32, -32:0])] * 2)
    ht20, present = to_canonical(batch_from([raw20]), "ht-ltf")
    assert present.tolist() == [True] and ht20.shape == (1, 57)
    assert np.array_equal(ht20[0].imag, np.where(HT20_SUBCARRIERS == 0, 0, HT20_SUBCARRIERS))
    raw40 = np.concatenate(
        [
            frame_with_subcarrier_values(np.arange(64) - 32),
            frame_with_subcarrier_values(np.r_[0:64, -64:0]),
        ]
    )
    b40 = batch_from([raw40], sig_mode=1, bandwidth=1, secondary=2, stbc=0)
    ht40, present = to_canonical(b40, "ht-ltf", bandwidth=40)
    assert present.tolist() == [True] and ht40.shape == (1, 117)
    expect = np.where(np.abs(HT40_SUBCARRIERS) <= 1, 0, HT40_SUBCARRIERS)
    # values are int8: subcarriers beyond +-63 do not occur on this grid
    assert np.array_equal(ht40[0].imag, expect)
    assert not to_canonical(b40, "ht-ltf", bandwidth=20)[1][0]  # on the other grid: absent


def test_iq_order_known_complex_value_round_trip():
    """3 + 4j sent as ESP-IDF bytes (imag, real) = (4, 3) at subcarrier +5."""
    order = np.r_[0:32, -32:0]
    raw = np.zeros(128, np.int8)
    pair = int(np.flatnonzero(order == 5)[0])
    raw[2 * pair : 2 * pair + 2] = (4, 3)
    dg = encode_raw_frame(1, 1, raw)
    frames = RuViewDecoder().decode([dg], 0.0, "x").frames
    assert lltf_canonical(frames)[0, 26 + 5] == 3 + 4j
    assert lltf_canonical(frames, iq_order="real-first")[0, 26 + 5] == 4 + 3j
    assert frames.csi(0)[pair] == 3 + 4j and frames.csi(0, "real-first")[pair] == 4 + 3j


def test_first_word_invalid_nulls_first_two_pairs():
    raw = frame_with_subcarrier_values(np.r_[0:32, -32:0])
    raw[:4] = (38, 96, 2, 0)  # garbage first word as in ESP32-CSI-Tool captures
    out = lltf_canonical(batch_from([raw]), first_word_invalid=True)[0]
    assert out[26] == 0 and out[27] == 0 and out[28] != 0


def test_real_ruview_capture_guard_and_dc_bins_are_null_in_canonical_order():
    frames = read_capture(DATA / "ruview" / "pretrain-head400.csi.jsonl").frames
    assert sorted(set(frames.meta["n_pairs"].tolist())) == [64, 128, 192]
    for n_pairs, _idx, cplx in frames.by_length():
        always_zero = set(np.flatnonzero((cplx == 0).all(axis=0)).tolist())
        nulls = set()
        for s in sections(n_pairs):
            nulls |= set(s.null_pairs().tolist())
        # every pair the layout calls guard/DC is zero in the real data (DC of HT fields aside)
        lltf_nulls = set(sections(n_pairs)[0].null_pairs().tolist())
        assert lltf_nulls <= always_zero, n_pairs
        assert always_zero <= nulls, n_pairs
    H = lltf_canonical(frames)
    assert H.shape == (len(frames), 53)
    assert np.all(H[:, ~LLTF_VALID] == 0)
    assert (H[:, LLTF_VALID] != 0).mean() > 0.99  # the data bins carry signal
    ht, present = to_canonical(frames, "ht-ltf")
    assert present.sum() == (frames.meta["n_pairs"] >= 128).sum()
    assert np.all(ht[present][:, HT20_SUBCARRIERS == 0] == 0)


def test_real_csi_tool_capture_lltf_only_with_ppdu_info():
    frames = read_capture(DATA / "esp32-csi-tool" / "example_data.csv").frames
    assert len(frames) == 60 and set(frames.meta["n_pairs"].tolist()) == {64}
    assert set(frames.meta["stbc"].tolist()) == {1} and set(frames.meta["sig_mode"].tolist()) == {1}
    H = lltf_canonical(frames, first_word_invalid=True)
    assert np.all(H[:, 26] == 0)
    assert (H[:, LLTF_VALID][:, 1:] != 0).mean() > 0.95
    assert not to_canonical(frames, "ht-ltf")[1].any()  # HT-LTF not printed


def test_odd_ppdu_fields_still_give_the_frames_lltf():
    """A frame with out-of-range PPDU fields (possible from a text line) falls back to its
    length's layout instead of losing its CSI (the packed lookup key once overflowed)."""
    import numpy as np

    from csi_edge.frames import FrameBatch, empty_meta
    from csi_edge.layout import lltf_canonical

    meta = empty_meta(2)
    meta["n_pairs"] = 64
    meta["sig_mode"] = [-1, -5]
    meta["stbc"] = [-1, 100]
    iq = np.tile(np.arange(128, dtype=np.int8) % 50 + 1, 2)
    batch = FrameBatch(meta, iq, np.array([0, 128, 256]), ["a"])
    out = lltf_canonical(batch)
    assert np.abs(out[0]).sum() > 0
    assert np.array_equal(out[1], out[0])  # same bytes, same grid
