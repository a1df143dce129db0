"""The bad-input battery: every ``csi-edge`` subcommand, fed the mistakes users make, must exit
with the documented code (docs/exit-codes.md) and one clear ``Error:`` line (no traceback), and
leave nothing half-written behind.

Commands are enumerated from the CLI group itself, so a new command fails
``test_every_command_is_in_the_battery`` until it has cases here. Runs through
:func:`csi_edge.cli.main` in-process (the same code path as the installed ``csi-edge``).
"""

from __future__ import annotations

import socket

import click
import pytest

from csi_edge.cli import cli, main

# {missing} a path that does not exist, {empty} an empty file, {dir} a folder, {junk} a file that
# is not a capture / model / config, {nocsi} a pcap that holds only non-CSI packets, {firmware} a
# valid firmware set, {existing} an existing output file, {unwritable} a path in a folder that does
# not exist, {busy} a UDP port already bound, {nohost} a host that never resolves.
# Each case is (exit code, arguments); the codes are csi_edge.errors.ExitCode (docs/exit-codes.md):
# 1 bad file/value, 2 usage (click), 3 no usable data, 4 device/port/host unreachable.
BATTERY: dict[str, list[tuple[int, list[str]]]] = {
    "baseline": [(2, ["{missing}"]), (2, ["{dir}"]), (1, ["{empty}"]), (1, ["{junk}"]), (3, ["{nocsi}"]), (4, ["--udp", "127.0.0.1:{busy}", "--duration", "1"]), (1, ["{junk}", "--duration", "-3"])],
    "calibrate": [(2, ["{missing}"]), (2, ["{dir}"]), (1, ["{junk}"]), (3, ["{nocsi}"])],
    "bench": [(1, ["{missing}"]), (1, ["{junk}"]), (2, ["--threads", "abc"]), (2, ["--nodes", "-3"])],
    "board emulate": [(2, ["--bogus"])],
    "calibration build": [(2, ["{missing}", "-m", "{dir}", "-o", "{out}"]), (1, ["{junk}", "-m", "{dir}", "-o", "{out}"]), (2, ["{junk}", "-o", "{out}"]), (2, ["{junk}", "-m", "{dir}", "-o", "{out}", "--windows", "-3"]), (2, ["{junk}", "-m", "{dir}", "-o", "{out}", "--holdout", "abc"])],
    "decode": [(1, ["{missing}"]), (2, ["{dir}"]), (1, ["{junk}"]), (2, ["{junk}", "--format", "nope"]), (2, ["{junk}", "-o", "{unwritable}"]), (1, ["{nocsi}", "-o", "{unwritable}.jsonl"])],
    "demo": [(2, ["--nodes", "-3"]), (2, ["--rate", "abc"]), (2, ["--port", "80"]), (2, ["--layouts", "abc"]), (2, ["--duration", "-3"]), (2, ["--jsonl", "{dir}", "--duration", "1", "--pose", "none", "--vitals-model", "none"])],
    "export": [(2, ["{missing}", "-o", "{out}"]), (2, ["{dir}", "-o", "{out}"]), (1, ["{junk}", "--arch", "csi-edge-pose", "-o", "{existing}"]), (1, ["{junk}", "--arch", "csi-edge-pose", "-o", "{out}", "--config", "window=abc"]), (1, ["{junk}", "--arch", "csi-edge-pose", "-o", "{out}", "--config", "window=-3"]), (2, ["{junk}", "--arch", "csi-edge-pose", "-o", "{out}", "--config", "window"])],
    "flash": [(1, ["--port", "{missing}", "--firmware", "{junk}"]), (1, ["--port", "{missing}", "--firmware", "{missing}"]), (4, ["--port", "{missing}", "--firmware", "{firmware}", "--connect-attempts", "1"]), (2, ["--port", "{missing}", "--baud", "abc"])],
    "ota": [(1, ["{missing}", "127.0.0.1:9"]), (2, ["{dir}", "127.0.0.1:9"]), (1, ["{empty}", "127.0.0.1:9"]), (1, ["{junk}", "127.0.0.1:9"]), (2, ["{junk}"]), (1, ["{junk}", "--inventory", "{missing}"])],
    "provision": [(4, ["--port", "{missing}", "--ssid", "x", "--connect-attempts", "1"]), (4, ["--port", "{missing}", "--show", "--connect-attempts", "1"]), (1, ["--port", "{missing}", "--node-id", "-3"]), (1, ["--port", "{missing}", "--target-port", "abc"]), (1, ["--inventory", "{junk}"]), (1, ["--inventory", "{missing}"]), (1, ["--inventory", "{junk}/fleet.toml"])],
    "quantize": [(2, ["{missing}", "-c", "{junk}"]), (1, ["{dir}", "-c", "{junk}"]), (1, ["{junk}", "-c", "{junk}"]), (2, ["{junk}", "-c", "{missing}"])],
    "record": [(4, ["--udp", "127.0.0.1:{busy}", "-o", "{out}", "--duration", "1"]), (4, ["--serial", "{missing}", "-o", "{out}", "--duration", "1"]), (1, ["--udp", "127.0.0.1:0", "-o", "{unwritable}"]), (2, ["--udp", "127.0.0.1:0", "-o", "{dir}"]), (2, ["--udp", "127.0.0.1:0", "-o", "{out}", "--duration", "-3"]), (2, ["--udp", "abc", "-o", "{out}"]), (1, ["--udp", "127.0.0.1:0", "-o", "{existing}", "--duration", "1"])],
    "run": [(1, ["-c", "{missing}"]), (2, ["-c", "{dir}"]), (1, ["-c", "{junk}"]), (4, ["--udp", "127.0.0.1:{busy}", "--duration", "1", "--pose", "none", "--vitals-model", "none", "--quiet"]), (2, ["--duration", "abc"]), (2, ["--serial", "/dev/ttyX@abc"])],
    "simulate": [(1, ["-o", "{unwritable}", "--duration", "1"]), (2, ["-o", "{dir}", "--duration", "1"]), (2, ["-o", "{out}", "--duration", "-3"]), (2, ["-o", "{out}", "--rate", "abc"]), (2, ["-o", "{out}", "--loss", "2"]), (1, ["-o", "{existing}", "--duration", "1"])],
    "simulate-nodes": [(4, ["--target", "{nohost}:5005", "--duration", "1", "--nodes", "1"]), (2, ["--target", "abc"]), (2, ["--rate", "-3"]), (1, ["--replay", "{missing}"]), (1, ["--replay", "{junk}"]), (2, ["--replay", "{dir}"]), (1, ["--replay", "{empty}"])],
    "ha forget": [(2, []), (1, ["x", "-c", "{missing}"]), (1, ["x", "-c", "{junk}"]), (1, ["x", "--broker", "h:abc"]), (1, ["x", "--gateway-id", "a/b", "--broker", "127.0.0.1:9"]), (4, ["x", "--broker", "127.0.0.1:9"]), (4, ["x", "--broker", "{nohost}"])],
    "service install": [(1, ["--unit-dir", "{existing}", "--config-dir", "{dir}"])],
    "status": [(1, ["-c", "{missing}"]), (1, ["-c", "{junk}"]), (4, ["--url", "http://{nohost}:8080"])],
    "vitals": [(2, ["{missing}"]), (2, ["{dir}"]), (1, ["{empty}"]), (1, ["{junk}"]), (3, ["{nocsi}"]), (2, ["{junk}", "--every", "-3"])],
}  # fmt: skip


def _commands() -> list[str]:
    """Every leaf command as 'name' or 'group sub', read from the CLI group."""
    ctx = click.Context(cli)
    out = []
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += [f"{name} {sub}" for sub in cmd.list_commands(ctx)]
        else:
            out.append(name)
    return out


def test_every_command_is_in_the_battery() -> None:
    missing = sorted(set(_commands()) - set(BATTERY))
    assert not missing, f"add bad-input cases for: {missing}"


CASES = [(name, code, args) for name, cases in BATTERY.items() for code, args in cases]


@pytest.fixture(scope="module")
def inputs_kept(tmp_path_factory) -> dict[str, str]:
    """Inputs that take a moment to build, shared by the cases (never written by them)."""
    from csi_edge.codecs.pcap import PcapWriter
    from csi_edge.codecs.ruview import encode_edge_vitals
    from csi_edge.firmware import testkit

    root = tmp_path_factory.mktemp("kept")
    nocsi = root / "vitals-only.pcap"
    with PcapWriter(nocsi) as w:
        for i in range(5):
            w.write(encode_edge_vitals(1, presence=True, breathing_bpm=14.5), 1.0 + i, "10.0.0.9")
    return {"nocsi": str(nocsi), "firmware": str(testkit.write_release(root / "fw"))}


@pytest.mark.parametrize(
    ("name", "code", "args"), CASES, ids=[f"{n}:{' '.join(a)}" for n, _, a in CASES]
)
def test_bad_input_is_one_clear_line_and_its_exit_code(
    name, code, args, tmp_path, capsys, inputs_kept
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "empty.bin").write_bytes(b"")
    (inputs / "junk.txt").write_text("this is not a capture, a model or a config\n" * 4)
    (inputs / "existing.bin").write_bytes(b"keep me")
    (inputs / "folder").mkdir()
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    out = tmp_path / "out"
    out.mkdir()
    subst = {
        "missing": str(inputs / "no-such-file.pcap"),
        "empty": str(inputs / "empty.bin"),
        "dir": str(inputs / "folder"),
        "junk": str(inputs / "junk.txt"),
        "existing": str(inputs / "existing.bin"),
        "unwritable": str(tmp_path / "no-such-folder" / "x.out"),
        "out": str(out / "result"),
        "busy": str(busy.getsockname()[1]),
        "nohost": "no-such-host.invalid",
        **inputs_kept,
    }
    argv = [*name.split(), *(a.format(**subst) for a in args)]
    before = sorted(p.name for p in inputs.rglob("*"))
    try:
        with pytest.raises(SystemExit) as ex:
            main(argv)
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert ex.value.code not in (0, None), f"exit 0 for {argv}: {err}"
    assert ex.value.code == code, f"exit {ex.value.code}, expected {code} for {argv}:\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if ex.value.code == 2:  # click's usage error: Usage / Try / one Error line
        lines = [ln for ln in lines if not ln.startswith(("Usage:", "Try "))]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, f"expected one Error: line for {argv}, got:\n{err}"
    assert len(errors[0]) > len("Error: ") + 10, errors[0]
    assert sorted(p.name for p in inputs.rglob("*")) == before, "an input was changed"
    assert (inputs / "existing.bin").read_bytes() == b"keep me"
    assert not list(out.iterdir()), f"half-written output left behind: {list(out.iterdir())}"
    assert not (tmp_path / "no-such-folder").exists()
