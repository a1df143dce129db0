"""The text capture variants people really keep (issue #11), each built line by line, plus the
real UTF-16 passive capture and a raw serial monitor log."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.capture import detect_format, read_capture
from csi_edge.codecs.text import DATA_NAMES, KNOWN_COLUMNS, STANDARD_HEADERS, TextLineDecoder
from csi_edge.frames import FrameFormat

DATA = Path(__file__).parent / "data"
LABELLED = DATA / "esp32-csi-tool-labelled"
VALUES = [(-1) ** i * (i % 50) for i in range(128)]
V384 = [(i % 200) - 100 for i in range(384)]
MAC = "aa:bb:cc:dd:ee:ff"


def quoted(values, sep=","):
    return '"[' + sep.join(map(str, values)) + ']"'


def classic(data=None, n=128, local=123456, seq=7):
    data = quoted(VALUES) if data is None else data
    return f"CSI_DATA,{seq},{MAC},-61,11,1,7,0,1,1,0,0,0,0,-93,0,11,0,{local},0,84,0,{n},0,{data}"


def radar(data=None, n=128):
    data = quoted(VALUES) if data is None else data
    return (
        f"CSI_DATA,42,1000,1,2,{MAC},-48,11,1,7,1,1,0,0,1,0,0,-91,0,1,2,999,0,84,0,30,20,"
        f"{n},0,{data}"
    )


def tool_line(body, n=128, role="STA", real_set=0, real_ts="0.285197"):
    return (
        f"CSI_DATA,{role},11:22:33:44:55:66,-52,30,0,0,0,0,0,0,0,0,0,-98,0,8,0,7313,0,38,0,"
        f"{real_set},{real_ts},{n},{body}"
    )


def decode(lines, t=np.nan, source="cap.csv"):
    dec = TextLineDecoder(source)
    return dec, dec.decode_lines(lines, t)


# --- 1. esp-csi csi_recv: host wall clock appended, HT40 384 values, negative local_timestamp
def test_host_clock_appended_ht40_and_negative_local_timestamp():
    line = classic(quoted(V384), n=384, local=-2147000000) + ",21:43:01.755"
    dec, res = decode([line.encode(), classic().encode() + b",21:43:01.855"])
    f = res.frames
    assert len(f) == 2 and not res.skipped
    assert f.raw(0).tolist() == V384 and f.meta["n_pairs"].tolist() == [192, 64]
    assert f.meta["local_us"][0] == -2147000000 & 0xFFFFFFFF  # the u32 the node counted
    assert f.meta["t_rx"].tolist() == pytest.approx([78181.755, 78181.855])  # seconds of day
    assert f.extra == {"col25": pytest.approx(np.array(["21:43:01.755", "21:43:01.855"], object))}
    assert res.notes == {"negative-local-timestamp": 1, "time-from-host-column": 2}
    assert dec.layouts == {"esp-csi": 2}


def test_host_clock_rolls_over_midnight_and_reads_iso_and_unix():
    _, res = decode([classic() + ",23:59:59.900", classic() + ",00:00:00.100"])
    t = res.frames.meta["t_rx"]
    assert t[1] - t[0] == pytest.approx(0.2)
    _, res = decode([classic() + ",2024-09-24T01:28:10.500", classic() + ",1727141290.25"])
    assert res.frames.meta["t_rx"].tolist() == pytest.approx([1727141290.5, 1727141290.25])
    # a receive time given by the caller (a live serial port) wins over any column
    _, res = decode([classic() + ",1727141290.25"], t=5.0)
    assert res.frames.meta["t_rx"].tolist() == [5.0]


# --- 2. esp-csi with a class column appended after the data array
def test_class_column_after_the_data():
    header = STANDARD_HEADERS["esp-csi"] + ",class"
    dec, res = decode([header, classic() + ",walk", classic() + ",sit"], t=1.0)
    assert len(res.frames) == 2 and res.skipped == {"header-line": 1}
    assert res.frames.extra["class"].tolist() == ["walk", "sit"]
    assert dec.layouts == {"esp-csi+header": 2}


# --- 3. esp-csi with a label column inserted before first_word, data quoted without brackets
def test_label_before_first_word_and_unbracketed_data():
    header = STANDARD_HEADERS["esp-csi"].replace(",len,first_word,", ",len,label,first_word,")
    row = classic(data='"' + ",".join(map(str, VALUES)) + '"').replace(
        ",84,0,128,0,", ",84,0,128,walk,0,"
    )
    _, res = decode([header, row], t=1.0)
    assert len(res.frames) == 1 and res.frames.raw(0).tolist() == VALUES
    assert res.frames.extra == {"label": np.array(["walk"], object)}
    m = res.frames.meta
    assert (m["seq"][0], m["rssi"][0], m["noise"][0], m["channel"][0]) == (7, -61, -93, 11)


# --- 4. ESP32-CSI-Tool: array quoted with spaces inside, CRLF, no header
def test_tool_quoted_space_array_crlf_no_header(tmp_path):
    line = tool_line(quoted(VALUES, " ")) + "\r\n"
    p = tmp_path / "sta.csv"
    p.write_bytes(line.encode() * 5)
    assert detect_format(p) == "text"
    res = read_capture(p)
    assert len(res.frames) == 5 and not res.skipped
    assert res.frames.raw(0).tolist() == VALUES
    assert res.frames.meta["fmt"].tolist() == [FrameFormat.CSI_TOOL] * 5
    assert res.frames.node_keys()[0] == "sta.csv#11:22:33:44:55:66"


def test_tool_lltf_only_print_is_counted_and_real_clock_wins():
    _, res = decode([tool_line(quoted(VALUES, " "), n=384, real_set=1, real_ts="1727141290.5")
                     + ",1700000000.0"])  # fmt: skip
    # the stamp anchors the node's wall clock; its local_timestamp spaces the frames
    assert len(res.frames) == 1
    assert res.notes == {"lltf-only-print": 1, "time-from-local-timestamp": 1}
    assert res.frames.meta["t_rx"][0] == pytest.approx(1727141290.5)  # node's wall clock wins


# --- 5. the real UTF-16 LE (BOM) passive capture: trailing unix-time column, many MACs
def test_real_utf16_passive_capture():
    path = LABELLED / "utf16-passive-csi-raw-head300.csv"
    assert path.read_bytes()[:2] == b"\xff\xfe"
    assert detect_format(path) == "text"
    res = read_capture(path)
    f = res.frames
    assert len(f) == 300 and res.skipped == {"header-line": 1}  # every record is a frame
    assert res.notes["file-encoding-utf-16"] == 1 and res.notes["time-from-host-column"] == 300
    assert set(f.meta["n_pairs"].tolist()) == {64}
    # the header's trailing cell is a value, not a name: the column is kept as col26
    assert f.extra["col26"][0] == "1727141290.7163355"
    assert np.all((f.meta["t_rx"] > 1727141290) & (f.meta["t_rx"] < 1727141400))
    keys = f.node_keys()
    macs = {line.split(",")[2].lower() for line in path.read_text("utf-16").splitlines()[1:]}
    assert {k.split("#", 1)[1] for k in keys} == macs and len(macs) == 258
    # one transmitter's frames stay its own: F0:61:C0:42:43:62 is one node
    groups = dict(f.node_groups())
    mine = groups["utf16-passive-csi-raw-head300.csv#f0:61:c0:42:43:62"]
    assert len(mine) > 1 and set(keys[mine]) == {keys[mine[0]]}


def test_real_serial_monitor_log_only_csi_lines_are_frames():
    path = LABELLED / "empty_01_full_log.txt"
    res = read_capture(path)
    lines = path.read_bytes().split(b"\n")[:-1]  # CRLF line ends (a Windows monitor)
    assert len(res.frames) == sum(line.startswith(b"CSI_DATA") for line in lines) == 149
    assert res.skipped["log-line"] == 88 and res.skipped["header-line"] == 1
    assert sum(res.skipped.values()) + len(res.frames) == len(lines)  # every line accounted


# --- 6. esp-radar console_test: 31 fields under the 30-column header (a device tag appended)
def test_console_test_row_with_device_tag():
    dec, res = decode([STANDARD_HEADERS["esp-radar"], radar() + ",dev-A"], t=2.0)
    assert len(res.frames) == 1 and res.skipped == {"header-line": 1}
    assert res.frames.extra["col30"].tolist() == ["dev-A"]
    assert res.frames.extra["timestamp"].tolist() == ["1000"]  # its own clock, kept as printed
    assert res.frames.meta["rssi"][0] == -48 and dec.layouts == {"esp-radar": 1}


def test_a_line_that_does_not_fit_the_header_falls_back_to_its_layout():
    c6 = f"CSI_DATA,3,{MAC},-55,11,-95,20,30,6,777,84,0,128,0,{quoted(VALUES)}"
    dec, res = decode([STANDARD_HEADERS["esp-csi"], c6], t=1.0)
    assert len(res.frames) == 1 and dec.layouts == {"esp-csi-c6": 1}


def test_only_true_inconsistencies_are_skipped():
    bad = [
        classic(n=130),  # esp-csi: len must equal the count
        tool_line(quoted(VALUES[:126], " "), n=384),  # 126 of 384 is no known print
        classic().replace(MAC, "aa:bb:cc:dd:ee"),  # a torn MAC
        classic().replace(",123456,", ",-9999999999,"),  # not an int32 either
    ]
    _, res = decode(bad, t=1.0)
    assert len(res.frames) == 0
    assert res.skipped == {"len-mismatch": 2, "bad-value": 2}


# --- header permutations: any order of known columns plus unknown extra ones ----------------
KNOWN = STANDARD_HEADERS["esp-csi"].split(",")[1:-1]  # all but type and data
VALUE_OF = {
    "id": "7",
    "mac": MAC,
    "rssi": "-61",
    "noise_floor": "-93",
    "channel": "11",
    "sig_mode": "1",
    "bandwidth": "1",
    "stbc": "1",
    "secondary_channel": "2",
    "local_timestamp": "123456",
    "len": "128",
}
extra_name = st.text(string.ascii_lowercase, min_size=3, max_size=8).filter(
    lambda n: n not in KNOWN_COLUMNS and n not in DATA_NAMES
)


@settings(max_examples=150, deadline=None)
@given(
    order=st.permutations(KNOWN),
    extras=st.lists(st.tuples(extra_name, st.text(string.ascii_letters, min_size=1, max_size=6)),
                    max_size=4, unique_by=lambda x: x[0]),
    spots=st.lists(st.integers(0, 40), min_size=5, max_size=5),
)  # fmt: skip
def test_property_any_header_order_with_unknown_columns(order, extras, spots):
    cols = list(order)
    for (name, _), at in zip(extras, spots, strict=False):
        cols.insert(at % (len(cols) + 1), name)
    cols.insert(spots[-1] % (len(cols) + 1), "data")
    values = dict(VALUE_OF, **dict(extras), data=quoted(VALUES))
    header = ",".join(["type", *cols])
    row = ",".join(["CSI_DATA", *(values.get(c, "0") for c in cols)])
    _, res = decode([header, row], t=3.0, source="/dev/ttyUSB0")
    assert res.skipped == {"header-line": 1} and len(res.frames) == 1, (header, row)
    m = res.frames.meta[0]
    assert (m["seq"], m["rssi"], m["noise"], m["channel"], m["local_us"]) == (
        7,
        -61,
        -93,
        11,
        123456,
    )
    assert (m["sig_mode"], m["bandwidth"], m["stbc"], m["secondary"]) == (1, 1, 1, 2)
    assert res.frames.raw(0).tolist() == VALUES
    assert {k: v[0] for k, v in res.frames.extra.items()} == dict(extras)
    assert res.frames.sources == [f"/dev/ttyUSB0#{MAC}"]


def test_decode_writes_extra_columns_to_jsonl_and_npz(tmp_path, capsys):
    import json

    from csi_edge.cli import main

    p = tmp_path / "labelled.csv"
    header = STANDARD_HEADERS["esp-csi"] + ",class"
    p.write_text("\n".join([header, classic() + ",walk", classic() + ",sit"]) + "\n")
    for out in (tmp_path / "o.jsonl", tmp_path / "o.npz"):
        with pytest.raises(SystemExit) as e:
            main(["decode", str(p), "-o", str(out)])
        assert e.value.code == 0
    rows = [json.loads(s) for s in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["extra"] for r in rows] == [{"class": "walk"}, {"class": "sit"}]
    assert rows[0]["node"] == f"labelled.csv#{MAC}"
    z = np.load(tmp_path / "o.npz")
    assert z["extra_columns"].tolist() == ["class"] and z["extra"][:, 0].tolist() == ["walk", "sit"]


def test_text_file_without_csi_exits_3_with_the_counts(tmp_path, capsys):
    from csi_edge.cli import main

    p = tmp_path / "torn.csv"
    p.write_text(STANDARD_HEADERS["esp-csi"] + "\n" + classic()[:80] + "\n" + classic(n=5) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["decode", str(p)])
    err = capsys.readouterr().err
    assert e.value.code == 3 and "torn.csv" in err
    assert "header-line 1" in err and "len-mismatch 1" in err and "bad-field-count 1" in err


token = st.one_of(
    st.integers(-130, 130).map(str),
    st.sampled_from(
        ["", " ", ",", "x", "1.5", "-", str(-(1 << 62) + 12345), "99999999999999999999"]
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(token, max_size=8).map(" ".join), max_size=6))
def test_property_chunk_value_parse_equals_line_by_line(texts):
    from csi_edge.codecs.text import parse_many, parse_values

    got, want = parse_many(texts), [parse_values(t) for t in texts]
    assert [g if isinstance(g, str) else g.tolist() for g in got] == [
        w if isinstance(w, str) else w.tolist() for w in want
    ]


HEADERS = [*STANDARD_HEADERS.values(), STANDARD_HEADERS["esp-csi"] + ",class",
           STANDARD_HEADERS["esp-csi"].replace(",len,first_word,", ",len,label,first_word,")]  # fmt: skip
ROWS = [classic(), classic() + ",walk", radar() + ",dev-A", tool_line(quoted(VALUES, " "))]


@st.composite
def mutated(draw):
    s = bytearray(draw(st.sampled_from(HEADERS + ROWS)).encode())
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(s)))
        op = draw(st.sampled_from(["cut", "flip", "insert"]))
        if op == "cut":
            s = s[:i]
        elif op == "flip" and i < len(s):
            s[i] = draw(st.integers(0, 255))
        else:
            s[i:i] = draw(st.sampled_from([b",", b"[", b"]", b'"', b" ", b"\r", b"-", b"9"]))
    return bytes(s)


@settings(max_examples=200, deadline=None)
@given(st.lists(mutated(), max_size=10))
def test_property_headers_and_rows_mixed_never_raise_and_every_line_is_accounted(lines):
    _, res = decode(lines, t=1.0)
    assert res.n_inputs == len(lines)
    assert len(res.frames.iq) == res.frames.offsets[-1] == 2 * int(res.frames.meta["n_pairs"].sum())
    assert all(len(c) == len(res.frames) for c in res.frames.extra.values())
