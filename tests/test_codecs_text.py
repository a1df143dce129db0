"""Serial text lines: esp-csi (25/15/30 columns, list or base64), ESP32-CSI-Tool, junk."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.codecs.text import TextLineDecoder
from csi_edge.frames import FrameFormat

DATA = Path(__file__).parent / "data"
VALUES = [(-1) ** i * (i % 50) for i in range(128)]
LIST = '"[' + ",".join(map(str, VALUES)) + ']"'
B64 = base64.b64encode(np.array(VALUES, np.int8).tobytes()).decode()


def classic(data=LIST, n=128, seq=7):
    # type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,
    # fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,
    # rx_state,len,first_word,data
    return f"CSI_DATA,{seq},aa:bb:cc:dd:ee:ff,-61,11,1,7,0,1,1,0,0,0,0,-93,0,11,0,123456,0,84,0,{n},0,{data}"


def c6(data=LIST, n=128):
    # type,seq,mac,rssi,rate,noise_floor,fft_gain,agc_gain,channel,local_timestamp,sig_len,rx_state,len,first_word,data
    return f"CSI_DATA,3,aa:bb:cc:dd:ee:ff,-55,11,-95,20,30,6,777,84,0,{n},0,{data}"


def radar(data=B64, n=128):
    # type,sequence,timestamp,taget_seq,taget,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,
    # aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,
    # sig_len,rx_state,agc_gain,fft_gain,len,first_word,data
    return f"CSI_DATA,42,1000,1,2,aa:bb:cc:dd:ee:ff,-48,11,1,7,1,1,0,0,1,0,0,-91,0,1,2,999,0,84,0,30,20,{n},0,{data}"


def tool(values=VALUES, n=None):
    n = len(values) if n is None else n
    body = "[" + " ".join(map(str, values)) + " ]"
    return f"CSI_DATA,PASSIVE,11:22:33:44:55:66,-52,30,0,0,0,0,0,0,0,0,0,-98,0,8,0,7313,0,38,0,0,0.285197,{n},{body}"


@pytest.mark.parametrize(
    "make, layout",
    [(classic, "esp-csi"), (c6, "esp-csi-c6"), (radar, "esp-radar"), (tool, "esp32-csi-tool")],
)
def test_each_layout_decodes(make, layout):
    dec = TextLineDecoder("/dev/ttyUSB0")
    res = dec.decode_lines([make()], 12.5)
    assert len(res.frames) == 1 and not res.skipped
    assert res.frames.raw(0).tolist() == VALUES
    assert res.frames.meta["n_pairs"][0] == 64 and res.frames.meta["t_rx"][0] == 12.5
    assert dec.layouts == {layout: 1}
    # the line names its transmitter: the node is keyed by source and MAC
    mac = "11:22:33:44:55:66" if make is tool else "aa:bb:cc:dd:ee:ff"
    assert res.frames.sources == [f"/dev/ttyUSB0#{mac}"]


def test_metadata_fields_per_layout():
    dec = TextLineDecoder("s")
    m = dec.decode_lines([classic(), c6(), radar(LIST), tool()], 0.0).frames.meta
    assert m["seq"].tolist() == [7, 3, 42, -1]
    assert m["rssi"].tolist() == [-61, -55, -48, -52]
    assert m["noise"].tolist() == [-93, -95, -91, -98]
    assert m["channel"].tolist() == [11, 6, 1, 8] and m["freq_mhz"].tolist() == [
        2462,
        2437,
        2412,
        2447,
    ]
    assert m["sig_mode"].tolist() == [1, -1, 1, 0]
    assert m["bandwidth"].tolist() == [0, -1, 1, 0] and m["stbc"].tolist() == [0, -1, 1, 0]
    assert m["secondary"].tolist() == [0, -1, 2, 0]
    assert m["local_us"].tolist() == [123456, 777, 999, 7313]
    assert m["fmt"].tolist() == [FrameFormat.ESP_CSI] * 3 + [FrameFormat.CSI_TOOL]


def test_base64_and_list_data_are_the_same_frame():
    res = TextLineDecoder("s").decode_lines([classic(B64), classic(LIST)], 0.0)
    assert np.array_equal(res.frames.raw(0), res.frames.raw(1))


def test_line_time_used_when_no_receive_time():
    res = TextLineDecoder("f").decode_lines([tool(), classic()], np.nan)
    assert res.frames.meta["t_rx"].tolist() == [0.285197, 0.123456]


def test_real_csi_tool_captures():
    lines = (DATA / "esp32-csi-tool" / "example_100hz_pitraffic.csv").read_bytes().splitlines()
    res = TextLineDecoder("pi").decode_lines(lines, np.nan)
    assert sum(line.startswith(b"CSI_DATA") for line in lines) == 834
    # 833 lines carry 128 values; one (line 19) carries 127 for len 128: a torn line
    assert len(res.frames) == 833 and res.skipped == {"header-line": 1, "len-mismatch": 1}
    assert set(res.frames.meta["n_pairs"].tolist()) == {64}
    lines = (DATA / "esp32-csi-tool" / "example_data.csv").read_bytes().splitlines()
    res = TextLineDecoder("d").decode_lines(lines, np.nan)
    # len says 384 but the tool prints only the first 128 values (LLTF): valid, spec §3.2
    assert len(res.frames) == 60 and res.skipped == {"header-line": 1}
    assert np.all(np.diff(res.frames.meta["t_rx"]) >= 0)


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"", "empty-line"),
        (b"   \r", "empty-line"),
        (b"type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,"
         b"noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,first_word,data",
         "header-line"),
        (b"I (1234) wifi:new:<11,0>, old:<1,0>, ap:<255,255>, sta:<11,0>", "log-line"),
        (b"\x1b[0;32mI (99) csi_recv: got ip\x1b[0m", "log-line"),
        (b"RADAR_DADA,1,2,3,0.5,0.1", "radar-data"),
        (b"CSI_DATA,1,aa:bb\xff\xfe,-50", "non-utf8"),
        (b"hello world", "unknown-line"),
        (classic().replace(",-61,11,", ",-61,").encode(), "bad-field-count"),  # fields missing
        (classic().replace(",123456,", ",123456,5,").encode(), "bad-field-count"),  # field extra
        (classic()[:-40].encode(), "truncated"),  # torn: list not closed
        (classic().replace("-61", "x61").encode(), "bad-value"),
        (classic(n=130).encode(), "len-mismatch"),
        (classic(LIST.replace(",-5,", ",-500,")).encode(), "bad-value"),  # not int8
        (radar(B64[:-4] + "!!!!").encode(), "bad-value"),
        (tool(n=130).encode(), "len-mismatch"),
        (tool(VALUES[:127], n=384).encode(), "len-mismatch"),
        (tool(VALUES[:127]).encode(), "len-mismatch"),  # odd count
        (classic(LIST + "x").encode(), "bad-field-count"),  # text glued to the array
        (classic().replace("-61", "9" * 400).encode(), "bad-value"),  # absurdly large number
        (tool().replace("0.285197", "1e999").encode(), "bad-value"),
        (tool().replace("0.285197", "9" * 400 + ".5").encode(), "bad-value"),
    ],
)  # fmt: skip
def test_bad_lines_counted(line, reason):
    res = TextLineDecoder("s").decode_lines([tool(), line, tool()], 0.0)
    assert res.skipped == {reason: 1} and len(res.frames) == 2


def test_interleaved_log_text_before_csi_is_salvaged():
    line = "I (55) wifi: sta ip: 192.168.1.5" + classic()
    res = TextLineDecoder("s").decode_lines([line.encode()], 0.0)
    assert len(res.frames) == 1 and res.frames.raw(0).tolist() == VALUES
    torn_then_full = (classic()[:90] + classic()).encode()  # a torn line glued to the next one
    assert len(TextLineDecoder("s").decode_lines([torn_then_full], 0.0).frames) == 1


LAYOUTS = [classic(), c6(), radar(), radar(LIST), tool()]


@st.composite
def mutated_line(draw):
    s = bytearray(draw(st.sampled_from(LAYOUTS)).encode())
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
        i = draw(st.integers(0, len(s)))
        if op == "cut":
            s = s[:i]
        elif op == "flip" and i < len(s):
            s[i] = draw(st.integers(0, 255))
        elif op == "insert":
            s[i:i] = draw(
                st.sampled_from([b",", b"[", b"]", b'"', b"CSI_DATA,", b"\n", b"\xff", b"1"])
            )
        elif i < len(s):
            del s[i]
    return bytes(s)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200), st.text(max_size=200), mutated_line(), st.sampled_from(LAYOUTS)
        ),
        max_size=12,
    )
)
def test_property_text_decoder_never_raises_and_accounts_every_line(lines):
    res = TextLineDecoder("s").decode_lines(lines, 1.0)
    assert res.n_inputs == len(lines)
    assert len(res.frames.iq) == res.frames.offsets[-1] == 2 * int(res.frames.meta["n_pairs"].sum())
