"""Bad input never raises: null estimates with a reason, or a clear CLI message."""

import json
import pathlib

import numpy as np
import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.sim import preset, simulate, write_capture
from csi_edge.vitals import NodeVitals

SHARED = pathlib.Path(__file__).parent / "data"
FALLBACK = pathlib.Path("/work/shared/data")


def _csi(n, rng):
    return (rng.standard_normal((n, 53)) + 1j * rng.standard_normal((n, 53))).astype(
        np.complex64
    ) + 10


def test_too_few_frames_and_no_data():
    nv = NodeVitals()
    assert nv.estimate(0.0).reason == "no-data"
    nv.push(np.array([1.0, 1.05]), _csi(2, np.random.default_rng(0)))
    e = nv.estimate(1.1)
    assert e.breathing_bpm is None and e.reason in ("no-presence", "warming-up")


def test_subcarrier_count_change_nan_and_zero():
    rng = np.random.default_rng(1)
    nv = NodeVitals()
    t = np.arange(200) / 20.0
    nv.push(t, _csi(200, rng))
    nv.push(t[-1] + 0.05 + np.arange(5) / 20, np.ones((5, 64), np.complex64))
    e = nv.estimate()
    assert e.breathing_bpm is None and e.reason == "subcarrier-count-changed"
    assert nv.skipped["subcarrier-count-changed"] == 1
    nv = NodeVitals()
    bad = _csi(10, rng)
    bad[2, 5] = np.nan
    bad[3] = 0
    tt = np.arange(10) / 10.0
    tt[4] = np.nan
    nv.push(tt, bad)
    nv.estimate()  # frames are conditioned (and bad ones counted) when an estimate is asked for
    assert nv.skipped["nan-csi"] == 1 and nv.skipped["all-zero-csi"] == 1
    assert nv.skipped["no-timestamp"] == 1
    nv2 = NodeVitals()
    nv2.push(np.arange(5.0), np.zeros((5, 53), np.complex64))
    assert nv2.estimate(5.0).reason == "bad-frames"


def test_capture_without_timestamps_is_a_clear_message(tmp_path):
    r = simulate(preset("still", 3), seed=0)
    r.frames.meta["t_rx"] = 0.0
    r.frames.meta["local_us"] = -1
    cap, _ = write_capture(r, tmp_path / "nots.pcap")
    out = CliRunner().invoke(cli, ["vitals", str(cap), "--json"])
    assert out.exit_code != 0 and "no receive time" in out.output and "Traceback" not in out.output
    ok = CliRunner().invoke(cli, ["vitals", str(cap), "--json", "--assume-rate", "20"])
    assert ok.exit_code == 0, ok.output


def test_vitals_json_contract_and_edge_packets(tmp_path):
    from csi_edge.codecs.pcap import PcapWriter
    from csi_edge.codecs.ruview import encode_edge_vitals, encode_raw_frame

    r = simulate(preset("still", 12, n_nodes=2), seed=1)
    m = r.frames.meta
    with PcapWriter(tmp_path / "c.pcap") as w:
        for i in range(len(r.frames)):
            src = r.frames.sources[m["src"][i]]
            w.write(
                encode_raw_frame(int(m["node_id"][i]), int(m["seq"][i]), r.frames.raw(i)),
                float(m["t_rx"][i]),
                src,
            )
            if i % 20 == 0 and m["node_id"][i] == 1:
                w.write(
                    encode_edge_vitals(1, presence=True, breathing_bpm=14.5),
                    float(m["t_rx"][i]),
                    src,
                )
    out = CliRunner().invoke(cli, ["vitals", str(tmp_path / "c.pcap"), "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in out.output.splitlines()]
    keys = {
        "t",
        "node",
        "presence",
        "motion",
        "breathing_bpm",
        "breathing_conf",
        "heart_bpm",
        "heart_conf",
    }
    assert all(keys <= set(x) for x in rows)
    for node in ("10.0.0.11#1", "10.0.0.12#2"):
        ts = [x["t"] for x in rows if x["node"] == node]
        assert len(ts) >= 11 and np.max(np.diff(ts)) <= 1.0 + 1e-6
    assert any(
        x.get("edge", {}).get("breathing_bpm") == 14.5 for x in rows if x["node"] == "10.0.0.11#1"
    )
    table = CliRunner().invoke(cli, ["vitals", str(tmp_path / "c.pcap")])
    assert table.exit_code == 0 and "breath" in table.output


def _real_captures():
    root = SHARED if any(SHARED.rglob("*.csv")) else FALLBACK
    return sorted(p for p in root.rglob("*") if p.suffix in (".csv", ".jsonl"))


@pytest.mark.parametrize("path", _real_captures(), ids=lambda p: p.name)
def test_real_captures_run_through_vitals(path):
    out = CliRunner().invoke(cli, ["vitals", str(path), "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(x) for x in out.output.splitlines() if x.startswith("{")]
    assert rows and all(x["presence"] in (True, False, None) for x in rows)


@pytest.mark.parametrize("command", ["vitals", "calibrate"])
def test_file_that_is_not_a_capture_is_a_clear_message(tmp_path, command):
    bad = tmp_path / "notes.txt"
    bad.write_text("garbage, not CSI\n")
    out = CliRunner().invoke(cli, [command, str(bad)])
    # the CaptureError as one line and exit code 1 (a bad file), not a traceback
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.exception
    assert "notes.txt: not a CSI capture" in out.output and "expected a pcap" in out.output
    assert out.output.count("notes.txt") == 1


def test_every_must_be_positive(tmp_path):
    cap, _ = write_capture(simulate(preset("still", 3), seed=0), tmp_path / "c.pcap")
    for every in ("0", "-1"):  # 0 divided by zero; -1 printed a row at t = -1
        out = CliRunner().invoke(cli, ["vitals", str(cap), "--every", every])
        assert out.exit_code == 2 and "--every" in out.output, out.output
