"""Frame times of ESP32-CSI-Tool text captures (docs/text-captures.md §5): the real recordings,
the field parser under fuzzing, and the stamp variants of both producers (zero-padded or not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.capture import read_capture
from csi_edge.codecs.text import TextLineDecoder
from csi_edge.codecs.tooltime import NodeClock, parse_stamp

DATA = Path(__file__).parent / "data"
MENDELAS = sorted((DATA / "labelled" / "mendelas").glob("*.csv"))
TRISTSOU = sorted((DATA / "labelled" / "tristsou").glob("*.csv"))
VALUES = " ".join(str((i % 20) - 10) for i in range(128))
#: a header without local_timestamp: the stamp is then the only clock
NO_LOCAL = "type,role,mac,rssi,real_time_set,real_timestamp,len,CSI_DATA"


def _per_node(path: Path):
    res = read_capture(path)
    f = res.frames
    keys = f.node_keys()
    return res, [
        (f.meta["t_rx"][keys == k], f.meta["local_us"][keys == k]) for k in sorted(set(keys))
    ]


@pytest.mark.parametrize("path", MENDELAS + TRISTSOU, ids=lambda p: p.stem)
def test_real_recordings_decode_to_the_nodes_frame_spacing(path):
    res, nodes = _per_node(path)
    expected_ms = 10.0 if path in MENDELAS else 90.0  # ~100 Hz / ~11 Hz: local_timestamp
    for t, local in nodes:
        gaps = np.diff(t)
        assert np.all(gaps >= 0), path.name  # monotone per node
        assert np.median(gaps) * 1e3 == pytest.approx(expected_ms, rel=0.05), path.name
        # exactly the radio's reception spacing (us), not the print-delayed stamp's
        assert np.allclose(gaps, np.diff(local.astype(np.float64)) * 1e-6, atol=1e-9)
    assert res.notes["time-from-local-timestamp"] == len(res.frames)


def test_mendelas_times_stay_on_the_stamps_clock_across_1000_s_of_uptime():
    # E02 140 cm: real_timestamp goes 999.997 -> 1000.01 (6 significant digits: 10 ms steps)
    path = DATA / "labelled" / "mendelas" / "E02_hand_waving_140cm_trial01.csv"
    _, [(t, local)] = _per_node(path)
    assert t[0] == pytest.approx(996.574, abs=1e-6)  # anchored on the first stamp
    assert t[-1] - t[0] == pytest.approx((int(local[-1]) - int(local[0])) * 1e-6, abs=1e-9)
    assert t[-1] - t[0] == pytest.approx(20.0, abs=0.2) and np.all(np.diff(t) > 0)


def _decode(lines):
    return TextLineDecoder("cap").decode_lines(lines, np.nan)


def _no_local(stamps, real_set=0):
    return [NO_LOCAL] + [
        f"CSI_DATA,STA,11:22:33:44:55:66,-50,{real_set},{s},128,[{VALUES}]" for s in stamps
    ]


def _times(res):
    return res.frames.meta["t_rx"].tolist()


def test_unpadded_microseconds_are_read_once_the_node_shows_them():
    # the old producer, "%li.%li": 15 s + 92838 us, then 15.140763, 16 s + 2001 us
    res = _decode(_no_local(["15.92838", "15.140763", "16.2001", "16.500000"]))
    assert _times(res) == pytest.approx([15.092838, 15.140763, 16.002001, 16.5], abs=1e-9)
    assert res.notes["real-timestamp-unpadded-usec"] == 2
    assert res.notes["time-from-real-timestamp"] == 4


def test_a_chunk_is_seen_whole_before_its_first_stamp_is_read():
    # "1.7313" alone could be decimal; the next line proves the node prints microseconds
    assert _times(_decode(_no_local(["1.7313", "1.140763"]))) == pytest.approx(
        [1.007313, 1.140763], abs=1e-9
    )


def test_zero_padded_microseconds_read_the_same():
    res = _decode(_no_local(["15.092838", "15.140763", "16.002001"]))
    assert _times(res) == pytest.approx([15.092838, 15.140763, 16.002001], abs=1e-9)
    assert "real-timestamp-unpadded-usec" not in res.notes


def test_six_significant_digits_are_decimal_seconds_and_coarse_ones_are_flagged():
    # today's producer (a C++ stream): trailing zeros dropped, 10 ms steps from 1000 s
    res = _decode(_no_local(["447.786", "447.792", "447.8", "999.997", "1000.01", "1.00002e+06"]))
    assert _times(res) == pytest.approx([447.786, 447.792, 447.8, 999.997, 1000.01, 1000020.0])
    assert res.notes["real-timestamp-too-coarse"] == 2  # 1000.01 (10 ms), 1.00002e+06 (10 s)
    assert "real-timestamp-unpadded-usec" not in res.notes


def tool(local, stamp, real_set=0):
    return (
        f"CSI_DATA,AP,48:E7:29:89:3A:50,-28,11,1,5,1,1,1,1,0,0,0,-89,1,6,1,{local},0,102,0,"
        f"{real_set},{stamp},384,[{VALUES}]"
    )


def test_local_timestamp_spaces_frames_on_the_stamps_timeline_through_a_wrap():
    u32 = 1 << 32
    res = _decode(
        [tool(u32 - 15_000, "4294.9"), tool(u32 - 5_000, "4294.99"), tool(5_000, "1.00002e+06")]
    )
    t = _times(res)
    assert t[0] == pytest.approx(4294.9) and np.diff(t) == pytest.approx([0.01, 0.01], abs=1e-9)
    assert res.notes["local-timestamp-wrap"] == 1
    assert res.notes["time-from-local-timestamp"] == 3


def test_a_local_timestamp_that_goes_back_continues_the_timeline():
    res = _decode([tool(5_000_000, "5.2"), tool(5_010_000, "5.21"), tool(1_000, "0.2")])
    t = _times(res)
    assert t[:2] == pytest.approx([5.2, 5.21]) and t[2] >= t[1]
    assert res.notes["local-timestamp-reset"] == 1


def test_a_wall_clock_stamp_anchors_unix_time():
    res = _decode([tool(7_313, "1727141290.716335", 1), tool(17_313, "1727141290.726", 1)])
    assert _times(res) == pytest.approx([1727141290.716335, 1727141290.726335], abs=1e-6)


@pytest.mark.parametrize("stamp", ["-1", "nan", "inf", "abc", "", "1.2.3", "1e", "0x10"])
def test_a_stamp_that_is_no_time_skips_the_line_as_bad_value(stamp):
    res = _decode([tool(1000, stamp)])
    assert len(res.frames) == 0 and res.skipped == {"bad-value": 1}


# -- the field parser, fuzzed ------------------------------------------------------------------


@given(st.text(max_size=30))
@settings(max_examples=400, deadline=None)
def test_parse_stamp_never_raises_and_reads_what_float_reads(text):
    s = parse_stamp(text)
    if s is not None:
        assert s.decimal == float(text.strip().strip('"')) and s.decimal >= 0
        assert s.resolution > 0 and (s.usec is None or s.usec >= 0)


_SEC = st.integers(0, 10**6)
_USEC = st.integers(0, 999_999)


@given(st.lists(st.tuples(_SEC, _USEC), min_size=1, max_size=20))
@settings(max_examples=200, deadline=None)
def test_unpadded_and_padded_prints_decode_to_the_microsecond(times):
    proof = (1, 140763)  # a 6-digit fraction with > 6 significant digits: this node prints us
    for fmt in ("{}.{}", "{}.{:06d}"):
        clock = NodeClock()
        stamps = [parse_stamp(fmt.format(s, u)) for s, u in [proof, *times]]
        for st_ in stamps:
            clock.observe(st_)
        for (s, u), st_ in zip(times, stamps[1:], strict=True):
            t, clock_name, _ = clock.time(st_, -1)
            assert clock_name == "real-timestamp" and t == pytest.approx(s + u * 1e-6, abs=1e-9)


@given(st.floats(0, 1e7, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_six_significant_digit_prints_decode_within_their_resolution(x):
    text = f"{x:g}"  # what a C++ stream prints for a double at its default precision
    clock = NodeClock()
    stamp = parse_stamp(text)
    clock.observe(stamp)
    t, _, quirks = clock.time(stamp, -1)
    assert t == float(text)
    assert abs(t - x) <= 0.5 * clock.resolution(stamp) * (1 + 1e-9) + 1e-12
    assert (x >= 999.9995) == ("real-timestamp-too-coarse" in quirks)


@given(
    st.lists(st.integers(0, (1 << 32) - 1), min_size=1, max_size=40),
    st.integers(1, 5),
    st.sampled_from(["447.786", "15.140763", "1.00002e+06", None]),
)
@settings(max_examples=200, deadline=None)
def test_a_chunk_in_one_pass_times_frames_as_frame_by_frame(local, n_chunks, first):
    # the decoder's vectorised path (every frame has a local_timestamp) against time()
    stamps = [parse_stamp(first) if first else None] + [None] * (len(local) - 1)
    one, many = NodeClock(), NodeClock()
    want = [one.time(s, u)[0] for s, u in zip(stamps, local, strict=True)]
    got = []
    for part in np.array_split(np.arange(len(local)), n_chunks):
        if len(part):
            t, *_ = many.local_times(np.array(local)[part], [stamps[i] for i in part])
            got += t.tolist()
    assert got == pytest.approx(want, abs=1e-6)
    assert (many.wraps, many.last_local) == (one.wraps, one.last_local)


def test_real_time_set_with_a_boot_clock_stamp_leaves_the_host_column_in_charge():
    # today's firmware prints its steady (boot) clock whatever real_time_set says
    res = _decode([tool(7_313, "447.786", 1) + ",1727141290.5"])
    assert _times(res) == [1727141290.5] and res.notes["time-from-host-column"] == 1


@given(st.text(alphabet="0123456789.-+eE naif", max_size=14), st.integers(-(1 << 31), 1 << 32))
@settings(max_examples=300, deadline=None)
def test_any_stamp_and_local_timestamp_give_a_frame_or_a_named_skip(stamp, local):
    res = _decode([tool(local, stamp)])
    assert len(res.frames) + sum(res.skipped.values()) == 1
    if len(res.frames):
        assert np.isfinite(res.frames.meta["t_rx"]).all()
    else:
        assert set(res.skipped) <= {"bad-value", "bad-field-count"}


def test_a_local_timestamp_that_never_moves_leaves_the_stamps_in_charge():
    res = _decode([tool(0, "447.786"), tool(0, "447.792"), tool(0, "447.8")])
    assert _times(res) == pytest.approx([447.786, 447.792, 447.8], abs=1e-9)
    assert res.notes["local-timestamp-stuck"] == 3 and res.notes["time-from-real-timestamp"] == 3
