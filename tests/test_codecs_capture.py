"""Format detection, csi-edge recordings, and ``csi-edge decode`` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from csi_edge.capture import CaptureError, detect_format, iter_capture, read_capture
from csi_edge.cli import cli, main
from csi_edge.codecs import ruview as rv
from csi_edge.codecs.pcap import PcapWriter
from csi_edge.codecs.recording import RecordingWriter, escape, iter_recording, unescape
from csi_edge.errors import NoDataError

DATA = Path(__file__).parent / "data"
JSONL = DATA / "ruview" / "pretrain-head400.csi.jsonl"
TOOL = DATA / "esp32-csi-tool" / "example_100hz_pitraffic.csv"
TOOL_LINE = TOOL.read_bytes().splitlines()[1]
TOOL_MAC = "11:22:33:44:55:66"  # the transmitter every line of TOOL names


def run_main(capsys, *args) -> tuple[int, str]:
    """``csi-edge ARGS`` through :func:`csi_edge.cli.main` (the real error path): exit code,
    stderr."""
    with pytest.raises(SystemExit) as e:
        main([*map(str, args)])
    return e.value.code, capsys.readouterr().err


@pytest.fixture
def pcap_file(tmp_path) -> Path:
    """Two nodes on one IP (both node id 1 and 2), with a lost frame, a duplicate and a reboot."""
    p = tmp_path / "two.pcap"
    seqs = {1: [0, 1, 2, 4, 5, 5, 6], 2: [10, 11, 12, 0, 1]}
    t = 1000.0
    with PcapWriter(p) as w:
        for node, ss in seqs.items():
            for s in ss:
                t += 0.05 if s != 0 or node == 1 else 5.0
                w.write(
                    rv.encode_raw_frame(node, s, np.ones(128 if s % 2 else 256, np.int8)),
                    t,
                    "10.0.0.7",
                )
        w.write(rv.encode_edge_vitals(1), t, "10.0.0.7")
        w.write(b"garbage!", t, "10.0.0.7")
    return p


def test_detects_every_format(tmp_path, pcap_file):
    rec = tmp_path / "serial.rec"
    with RecordingWriter(rec) as w:
        w.write(1.0, "/dev/ttyUSB0", TOOL_LINE)
    log = tmp_path / "boot.log"
    log.write_bytes(b"I (12) boot: ESP-IDF v5.1\n" + TOOL_LINE + b"\n")
    assert detect_format(pcap_file) == "pcap"
    assert detect_format(JSONL) == "jsonl"
    assert detect_format(TOOL) == "text"
    assert detect_format(log) == "text"
    assert detect_format(rec) == "recording"


def test_format_override_and_unknown_format(tmp_path):
    copy = tmp_path / "rec.dat"
    shutil.copy(JSONL, copy)
    assert len(read_capture(copy, fmt="jsonl").frames) == 368
    with pytest.raises(CaptureError, match="unknown format 'bogus'"):
        read_capture(copy, fmt="bogus")
    # wrong format forced: every line counted, then "no data" naming the file and the counts
    with pytest.raises(NoDataError, match=r"rec\.dat: no CSI frames as text.*unknown-line 400"):
        read_capture(copy, fmt="text")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        read_capture(tmp_path / "empty.csv", fmt="text")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"hello, this is a README\nnothing to see\n", "not a CSI capture"),
        (bytes(range(256)) * 4, "not a CSI capture"),
    ],
)
def test_not_a_capture_is_one_clear_error(tmp_path, content, message):
    p = tmp_path / "thing.bin"
    p.write_bytes(content)
    with pytest.raises(CaptureError, match=message) as e:
        read_capture(p)
    assert str(p) in str(e.value) and "expected" in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        read_capture(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="directory"):
        read_capture(tmp_path)


def test_recording_is_lossless(tmp_path):
    nasty = [b"CSI_DATA,\ttab\\back", b"\xff\xfe\x00 non-utf8 \r", b"", TOOL_LINE, b"x" * 3000]
    p = tmp_path / "r.rec"
    with RecordingWriter(p) as w:
        for i, line in enumerate(nasty):
            w.write(1700000000.123456789 + i, "/dev/tty\tUSB0" if i % 2 else "COM3", line)
    (rows,) = list(iter_recording(p))
    assert [r[2] for r in rows] == nasty
    assert [r[0] for r in rows] == [1700000000.123456789 + i for i in range(5)]
    assert rows[1][1] == "/dev/tty\tUSB0" and rows[0][1] == "COM3"
    assert all(
        b"\n" not in escape(b) and unescape(escape(b)) == b for b in nasty + [bytes(range(256))]
    )
    res = read_capture(p)
    assert len(res.frames) == 1 and res.frames.sources == [f"/dev/tty\tUSB0#{TOOL_MAC}"]
    assert res.frames.meta["t_rx"][0] == rows[3][0]  # the receive time, not the line's own clock
    assert res.skipped == {"non-utf8": 1, "bad-field-count": 1, "unknown-line": 1, "empty-line": 1}


def test_recording_with_two_sources_in_time_order_and_bad_record(tmp_path):
    p = tmp_path / "r.rec"
    with RecordingWriter(p) as w:
        for i in range(6):
            w.write(10.0 + i, f"/dev/ttyUSB{i % 2}", TOOL_LINE)
    with open(p, "ab") as f:
        f.write(b"not\ta-valid-record\n")
    res = read_capture(p)
    assert len(res.frames) == 6 and res.skipped == {"bad-record": 1}
    assert np.all(np.diff(res.frames.meta["t_rx"]) > 0)
    assert sorted(set(res.frames.node_keys().tolist())) == [
        f"/dev/ttyUSB0#{TOOL_MAC}",
        f"/dev/ttyUSB1#{TOOL_MAC}",
    ]


def test_iter_capture_chunks(pcap_file):
    chunks = list(iter_capture(JSONL, chunk_frames=100))
    assert len(chunks) >= 2 and sum(len(c.frames) for c in chunks) == 368


# --- CLI ----------------------------------------------------------------------------------------
def run(*args):
    return CliRunner().invoke(cli, ["decode", *map(str, args)], catch_exceptions=False)


def test_cli_summary_json_contract(pcap_file):
    r = run(pcap_file, "--summary", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert set(doc) == {"frames", "nodes", "packets", "skipped", "notes"}
    assert (
        doc["frames"] == 12
        and doc["packets"] == {"edge_vitals": 1}
        and doc["skipped"] == {"bad-magic": 1}
    )
    n1, n2 = doc["nodes"]["10.0.0.7#1"], doc["nodes"]["10.0.0.7#2"]
    assert set(n1) == {
        "node_id",
        "frames",
        "lost",
        "duplicates",
        "reboots",
        "rate_hz",
        "subcarriers",
    }
    assert (n1["node_id"], n1["frames"], n1["lost"], n1["duplicates"], n1["reboots"]) == (
        1,
        7,
        1,
        1,
        0,
    )
    assert (n2["frames"], n2["reboots"]) == (5, 1)
    assert n1["subcarriers"] == {"64": 3, "128": 4} and n1["rate_hz"] > 0


def test_cli_real_captures_summary():
    doc = json.loads(run(JSONL, "--json").stdout)
    assert doc["frames"] == 368 and len(doc["nodes"]) == 2
    assert sum(n["subcarriers"]["192"] for n in doc["nodes"].values()) == 4
    doc = json.loads(run(TOOL, "--json").stdout)
    assert doc["frames"] == 833 and doc["skipped"] == {"header-line": 1, "len-mismatch": 1}
    assert 50 < doc["nodes"][f"example_100hz_pitraffic.csv#{TOOL_MAC}"]["rate_hz"] < 120


def test_cli_npz_and_jsonl_outputs(tmp_path, pcap_file):
    out = tmp_path / "o.npz"
    assert run(pcap_file, "-o", out).exit_code == 0
    z = np.load(out)
    assert z["lltf"].shape == (12, 53) and z["meta"]["seq"].tolist()[:3] == [0, 1, 2]
    assert z["iq"].dtype == np.int8 and z["offsets"][-1] == len(z["iq"])
    assert z["node_keys"].tolist()[0] == "10.0.0.7#1" and str(z["iq_order"]) == "imag-first"
    assert json.loads(z["packets"][0])["type"] == "edge_vitals"
    out = tmp_path / "o.jsonl"
    assert run(JSONL, "-o", out, "--iq-order", "real-first").exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 400 and sum(r["type"] == "csi" for r in rows) == 368
    first = next(r for r in rows if r["type"] == "csi")
    raw = bytes.fromhex(json.loads(JSONL.read_text().splitlines()[0])["iq_hex"])
    b = np.frombuffer(raw, np.int8).reshape(-1, 2)
    assert first["csi"] == b.tolist()  # real-first: [re, im] == the bytes in wire order
    assert first["iq_order"] == "real-first" and first["n_pairs"] == 64


def test_cli_user_errors(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("just some notes\n")
    code, err = run_main(capsys, "decode", bad)
    assert code == 1 and "not a CSI capture" in err and "Traceback" not in err
    empty = tmp_path / "e.pcap"
    empty.write_bytes(b"")
    code, err = run_main(capsys, "decode", empty)
    assert code == 1 and "empty" in err
    code, err = run_main(capsys, "decode", JSONL, "-o", tmp_path / "x.csv")
    assert code == 2 and ".jsonl or .npz" in err
    code, err = run_main(capsys, "decode", JSONL, "-o", tmp_path / "no" / "dir" / "x.npz")
    assert code == 1 and "cannot write" in err and "Traceback" not in err


def test_cli_format_override(tmp_path, capsys):
    odd = tmp_path / "capture.bin"
    shutil.copy(JSONL, odd)
    doc = json.loads(run(odd, "--format", "jsonl", "--json").stdout)
    assert doc["frames"] == 368
    # wrong on purpose: every line counted, and no CSI at all is exit 3 naming the counts
    code, err = run_main(capsys, "decode", odd, "--format", "text", "--json")
    assert code == 3 and "no CSI frames as text" in err and "unknown-line 400" in err
