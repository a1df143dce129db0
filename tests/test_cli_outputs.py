"""Commands that write a file refuse an existing one unless ``--force``: the old file is kept
byte for byte, the message names it and says how to overwrite, the exit code is 1."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli


def _refused(args: list[str], path) -> None:
    before = path.read_bytes()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert f"{path}: already exists; pass --force to overwrite it" in r.output
    assert "Traceback" not in r.output
    assert path.read_bytes() == before, "the existing file was changed"


def test_simulate_refuses_an_existing_capture_or_sidecar_unless_force(tmp_path) -> None:
    cap = tmp_path / "room.pcap"
    first = CliRunner().invoke(cli, ["simulate", "-o", str(cap), "--duration", "2"])
    assert first.exit_code == 0, first.output
    truth = tmp_path / "room.pcap.truth.npz"
    _refused(["simulate", "-o", str(cap), "--duration", "3"], cap)
    cap.unlink()  # the sidecar alone is also someone's data
    _refused(["simulate", "-o", str(cap), "--duration", "3"], truth)
    cap.write_bytes(b"old")
    r = CliRunner().invoke(cli, ["simulate", "-o", str(cap), "--duration", "3", "--force"])
    assert r.exit_code == 0, r.output
    assert cap.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")  # a fresh pcap replaced it


def test_decode_output_refuses_an_existing_file_unless_force(tmp_path) -> None:
    cap = tmp_path / "room.pcap"
    assert CliRunner().invoke(cli, ["simulate", "-o", str(cap), "--duration", "2"]).exit_code == 0
    out = tmp_path / "frames.jsonl"
    out.write_text("keep me\n")
    _refused(["decode", str(cap), "-o", str(out)], out)
    r = CliRunner().invoke(cli, ["decode", str(cap), "-o", str(out), "--force"])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("{")


def test_calibration_build_refuses_an_existing_set(tmp_path) -> None:
    out = tmp_path / "cal.npz"
    out.write_bytes(b"keep me")
    junk = tmp_path / "junk.pcap"
    junk.write_text("not read: the output is checked first\n")
    _refused(["calibration", "build", str(junk), "-m", str(tmp_path), "-o", str(out)], out)
    # numpy adds .npz to a name without it: that is the file checked
    _refused(["calibration", "build", str(junk), "-m", str(tmp_path), "-o", str(tmp_path / "cal")], out)


@pytest.mark.slow
def test_record_refuses_an_existing_file_and_force_records_over_it(tmp_path) -> None:
    out = tmp_path / "session.pcap"
    out.write_bytes(b"keep me")
    _refused(["record", "--udp", "127.0.0.1:0", "-o", str(out), "--duration", "1"], out)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "csi_edge", "record", "--udp", f"127.0.0.1:{port}", "-o", str(out),
         "--duration", "2", "--force", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    # nothing was sent: an empty capture (just the pcap header) replaced the old bytes
    assert out.read_bytes()[:4] == bytes.fromhex("d4c3b2a1"), "--force did not replace the file"
