"""``csi-edge demo`` and ``csi-edge simulate-nodes`` run as users run them (real processes)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from tests.conftest import running_gateway

CLI = [sys.executable, "-m", "csi_edge"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_demo_json_every_simulated_frame_reaches_the_gateway():
    r = run(
        "demo", "--nodes", "3", "--rate", "40", "--duration", "2", "--layouts", "64,128", "--json"
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert set(s["nodes"]) == {"127.0.0.1#1", "127.0.0.1#2", "127.0.0.1#3"}
    assert s["frames"] == s["simulated"]["sent"] > 0
    assert s["skipped"] == {}
    assert s["packets"]["edge_vitals"] >= 3
    for node in s["nodes"].values():
        assert node["lost"] == node["duplicates"] == node["reboots"] == 0
        assert set(node["subcarriers"]) == {"64", "128"}
        assert 20 < node["rate_hz"] < 60 and node["online"]  # measured: 40 Hz sent
    assert "frames from 3 node(s)" in r.stderr  # the live view went to stderr, once a second


@pytest.mark.slow
def test_demo_plain_view_and_same_id_nodes_told_apart_by_address():
    r = run(
        "demo", "--nodes", "2", "--same-id", "--duration", "1.5", "--loss", "0.2", "--seed", "3",
        "--scenario", "still",  # content from the channel simulator: same transport
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "127.0.0.1#1" in out and "127.0.0.2#1" in out
    assert out.count("frames from 2 node(s)") >= 2  # a plain line per second, then the final table
    header = next(line for line in out.splitlines() if line.startswith("node "))
    for col in ("frames", "rate Hz", "lost", "dups", "reboots", "RSSI", "layouts"):
        assert col in header


@pytest.mark.slow
def test_simulate_nodes_against_a_gateway():
    async def main():
        async with running_gateway() as ingest:
            port = ingest.sources[0].address[1]
            proc = await asyncio.create_subprocess_exec(
                *CLI, "simulate-nodes", "--target", f"127.0.0.1:{port}", "--nodes", "2",
                "--rate", "50", "--duration", "2.6", "--reboot-every", "0.4", "--json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await proc.communicate()
        return proc.returncode, stdout.decode(), stderr.decode(), ingest.summary()

    code, stdout, stderr, summary = asyncio.run(main())
    assert code == 0, stderr
    sent = json.loads(stdout)
    assert summary["frames"] == sent["sent"]
    for nid in (1, 2):
        node = summary["nodes"][f"127.0.0.1#{nid}"]
        # rebooted at 0.4 s, silent for 2 s, back at 2.4 s: the gateway sees the restart
        assert node["reboots"] == 1 and sent["nodes"][f"node#{nid}"]["reboots"] >= 1
        assert node["lost"] == node["duplicates"] == 0


def test_bad_options_give_clear_errors():
    cases = {
        ("simulate-nodes", "--layouts", "64,abc", "--duration", "1"): "comma-separated pair counts",
        ("simulate-nodes", "--layouts", "4096"): "1..1024",
        ("simulate-nodes", "--target", "127.0.0.1:0"): "must not be 0",
        ("demo", "--port", "80", "--duration", "1"): "1024..65535",
    }
    for args, message in cases.items():
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_simulate_nodes_replays_a_capture_to_a_gateway(tmp_path):
    import numpy as np

    from csi_edge.codecs.pcap import write_pcap
    from csi_edge.codecs.ruview import encode_raw_frame

    frames = [encode_raw_frame(5, k, np.full(128, k % 100, np.int8)) for k in range(50)]
    cap = tmp_path / "five.pcap"
    write_pcap(cap, frames, [1.7e9 + 0.05 * k for k in range(50)], ["10.0.0.9"] * 50)

    async def main():
        async with running_gateway() as ingest:
            proc = await asyncio.create_subprocess_exec(
                *CLI, "simulate-nodes", "--replay", str(cap), "--speed", "0", "--json",
                "--target", f"127.0.0.1:{ingest.sources[0].address[1]}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await proc.communicate()
        return proc.returncode, stdout.decode(), stderr.decode(), ingest.summary()

    code, stdout, stderr, summary = asyncio.run(main())
    assert code == 0, stderr
    assert json.loads(stdout)["sent"] == 50
    node = summary["nodes"]["127.0.0.1#5"]
    assert node["frames"] == 50 and node["lost"] == 0 and node["subcarriers"] == {"64": 50}
    r = run("simulate-nodes", "--replay", str(tmp_path / "missing.pcap"))
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr
    # a capture damaged past its first bytes fails while replaying: still a clear message
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(cap.read_bytes()[:6])
    r = CliRunner().invoke(cli, ["simulate-nodes", "--replay", str(damaged), "--speed", "0"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception
    assert "damaged.pcap: pcap global header truncated" in r.output
