"""csi-edge baseline: per-node baselines, resumable, refused when the room is not still."""

import json

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.sim import preset, simulate, write_capture
from csi_edge.vitals.baseline import Baseline, load_baseline


def test_calibrate_accumulates_and_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path / "state"))
    empty, _ = write_capture(simulate(preset("empty", 35), seed=1), tmp_path / "empty.pcap")
    person, _ = write_capture(simulate(preset("still", 35), seed=1), tmp_path / "person.pcap")
    run = CliRunner()
    out = run.invoke(cli, ["baseline", str(person)])
    assert out.exit_code != 0 and "not still" in out.output
    assert not (tmp_path / "state").exists() or not list((tmp_path / "state").rglob("*.json"))
    r1 = json.loads(run.invoke(cli, ["baseline", str(empty), "--json"]).output.splitlines()[0])
    assert r1["accepted"] and not r1["complete"]
    # the same capture again is counted once: nothing is added
    again = json.loads(run.invoke(cli, ["baseline", str(empty), "--json"]).output.splitlines()[0])
    assert again["accepted"] and again["still_s"] == 0 and not again["complete"]
    assert "counted once" in again["message"]
    more, _ = write_capture(simulate(preset("empty", 35), seed=2), tmp_path / "empty2.pcap")
    r2 = json.loads(run.invoke(cli, ["baseline", str(more), "--json"]).output.splitlines()[0])
    assert r2["complete"]
    b = load_baseline("10.0.0.11#1")
    assert b.runs == 2 and b.still_s >= 60 and b.motion_level and b.profile is not None
    assert Baseline.default().motion_level is None


def test_calibrated_baseline_used_and_corrupt_file_named(tmp_path):
    cal = tmp_path / "c"
    cal.mkdir()
    (cal / "10_0_0_11_1.json").write_text("{not json")
    cap, _ = write_capture(simulate(preset("still", 5), seed=2), tmp_path / "s.pcap")
    out = CliRunner().invoke(cli, ["baseline", str(cap), "--dir", str(cal)])
    assert out.exit_code != 0 and "10_0_0_11_1.json" in out.output
    (cal / "10_0_0_11_1.json").write_text("[1]")  # valid JSON, not an object
    out = CliRunner().invoke(cli, ["baseline", str(cap), "--dir", str(cal)])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.exception
    assert "10_0_0_11_1.json: not a csi-edge baseline" in out.output
    (cal / "10_0_0_11_1.json").write_text("{not json")
    out = CliRunner().invoke(cli, ["vitals", str(cap), "--dir", str(cal), "--json"])
    assert out.exit_code == 0
    out = CliRunner().invoke(cli, ["calibrate"])
    assert out.exit_code != 0 and "--udp" in out.output


def test_calibrate_udp_address_mistakes_are_clear(tmp_path):
    out = CliRunner().invoke(cli, ["baseline", "--udp", "host:abc", "--dir", str(tmp_path)])
    assert out.exit_code == 2 and "numeric port" in out.output
    # an address this machine does not have: the OSError becomes a message naming --udp
    out = CliRunner().invoke(
        cli, ["baseline", "--udp", "192.0.2.1:5005", "--duration", "0.1", "--dir", str(tmp_path)]
    )
    assert out.exit_code == 4 and "--udp 192.0.2.1:5005: cannot listen" in out.output


def test_calibrate_unwritable_baseline_dir_is_a_clear_message(tmp_path):
    empty, _ = write_capture(simulate(preset("empty", 35), seed=1), tmp_path / "empty.pcap")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    out = CliRunner().invoke(cli, ["baseline", str(empty), "--dir", str(not_a_dir)])
    assert out.exit_code == 1 and isinstance(out.exception, SystemExit), out.exception
    assert "10_0_0_11_1.json: cannot save the baseline" in out.output


def test_old_name_calibrate_still_works_and_says_what_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path / "state"))
    empty, _ = write_capture(simulate(preset("empty", 35), seed=1), tmp_path / "empty.pcap")
    out = CliRunner().invoke(cli, ["calibrate", str(empty), "--json"])
    assert out.exit_code == 0, out.output
    assert "`csi-edge calibrate` is now `csi-edge baseline`" in out.stderr
    assert json.loads(out.stdout.splitlines()[0])["accepted"]
    # stored where `run` looks, whatever the current folder
    assert list((tmp_path / "state" / "baselines").glob("*.json"))


def test_state_dir_is_found_from_any_folder(tmp_path, monkeypatch):
    from csi_edge.paths import baselines_dir, state_dir

    monkeypatch.delenv("CSI_EDGE_STATE_DIR", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert state_dir() == tmp_path / "xdg" / "csi-edge"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/csi-edge")
    assert state_dir().as_posix() == "/var/lib/csi-edge"
    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path / "mine"))
    assert baselines_dir() == tmp_path / "mine" / "baselines"


@pytest.mark.slow
def test_baseline_over_udp_says_what_it_heard(tmp_path):
    import asyncio
    import socket
    import threading
    import time

    from csi_edge.sources.simnode import SimFleet
    from tests.conftest import free_port

    port = free_port(socket.SOCK_DGRAM)
    fleet = SimFleet.uniform(1, rate_hz=50, target=("127.0.0.1", port), jitter=0.0)
    def send() -> None:
        time.sleep(0.5)  # the command binds first
        asyncio.run(fleet.run(2.0))

    sender = threading.Thread(target=send)
    sender.start()
    args = ["--udp", f"127.0.0.1:{port}", "--duration", "3", "--json", "--dir", str(tmp_path)]
    out = CliRunner().invoke(cli, ["baseline", *args])
    sender.join()
    assert f"listened 3 s on 127.0.0.1:{port}: {fleet.sent} datagram(s) from 1 sender(s)" in out.output
    rows = [json.loads(x) for x in out.output.splitlines() if x.startswith("{")]
    assert [r["node"] for r in rows] == ["127.0.0.1#1"]
