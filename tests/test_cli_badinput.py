"""The bad-input battery: every ``csi-edge`` subcommand, fed the mistakes users make, must exit
non-zero with one clear ``Error:`` line (no traceback) and leave nothing half-written behind.

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
# is not a capture / model / config, {existing} an existing output file, {unwritable} a path in a
# folder that does not exist, {busy} a UDP port already bound, {nohost} a host that never resolves
BATTERY: dict[str, list[list[str]]] = {
    "baseline": [["{missing}"], ["{dir}"], ["{empty}"], ["{junk}"], ["--udp", "127.0.0.1:{busy}", "--duration", "1"], ["{junk}", "--duration", "-3"]],
    "calibrate": [["{missing}"], ["{dir}"], ["{junk}"]],
    "bench": [["{missing}"], ["{junk}"], ["--threads", "abc"], ["--nodes", "-3"]],
    "board emulate": [["--bogus"]],
    "calibration build": [["{missing}", "-o", "{out}"], ["{junk}", "-o", "{out}"], ["{empty}", "-o", "{out}"], ["{junk}", "-o", "{out}", "--windows", "-3"], ["{junk}", "-o", "{out}", "--holdout", "abc"]],
    "decode": [["{missing}"], ["{dir}"], ["{junk}", "--format", "nope"], ["{junk}", "-o", "{unwritable}"]],
    "demo": [["--nodes", "-3"], ["--rate", "abc"], ["--port", "80"], ["--layouts", "abc"], ["--duration", "-3"], ["--jsonl", "{dir}", "--duration", "1", "--pose", "none", "--vitals-model", "none"]],
    "export": [["{missing}", "-o", "{out}"], ["{dir}", "-o", "{out}"], ["{junk}", "--arch", "csi-edge-pose", "-o", "{existing}"], ["{junk}", "--arch", "csi-edge-pose", "-o", "{out}", "--config", "window=abc"], ["{junk}", "--arch", "csi-edge-pose", "-o", "{out}", "--config", "window=-3"], ["{junk}", "--arch", "csi-edge-pose", "-o", "{out}", "--config", "window"]],
    "flash": [["--port", "{missing}", "--firmware", "{junk}"], ["--port", "{missing}", "--firmware", "{missing}"], ["--port", "{missing}", "--baud", "abc"]],
    "ota": [["{missing}", "127.0.0.1:9"], ["{dir}", "127.0.0.1:9"], ["{empty}", "127.0.0.1:9"], ["{junk}", "127.0.0.1:9"], ["{junk}"], ["{junk}", "--inventory", "{missing}"]],
    "provision": [["--port", "{missing}", "--ssid", "x"], ["--port", "{missing}", "--node-id", "-3"], ["--port", "{missing}", "--target-port", "abc"]],
    "quantize": [["{missing}", "-c", "{junk}"], ["{dir}", "-c", "{junk}"], ["{junk}", "-c", "{junk}"], ["{junk}", "-c", "{missing}"]],
    "record": [["--udp", "127.0.0.1:{busy}", "-o", "{out}", "--duration", "1"], ["--serial", "{missing}", "-o", "{out}", "--duration", "1"], ["--udp", "127.0.0.1:0", "-o", "{unwritable}"], ["--udp", "127.0.0.1:0", "-o", "{dir}"], ["--udp", "127.0.0.1:0", "-o", "{out}", "--duration", "-3"], ["--udp", "abc", "-o", "{out}"]],
    "run": [["-c", "{missing}"], ["-c", "{dir}"], ["-c", "{junk}"], ["--udp", "127.0.0.1:{busy}", "--duration", "1", "--pose", "none", "--vitals-model", "none", "--quiet"], ["--duration", "abc"], ["--serial", "/dev/ttyX@abc"]],
    "simulate": [["-o", "{unwritable}", "--duration", "1"], ["-o", "{dir}", "--duration", "1"], ["-o", "{out}", "--duration", "-3"], ["-o", "{out}", "--rate", "abc"], ["-o", "{out}", "--loss", "2"]],
    "simulate-nodes": [["--target", "{nohost}:5005", "--duration", "1", "--nodes", "1"], ["--target", "abc"], ["--rate", "-3"], ["--replay", "{missing}"], ["--replay", "{junk}"], ["--replay", "{dir}"], ["--replay", "{empty}"]],
    "service install": [["--unit-dir", "{existing}", "--config-dir", "{dir}"]],
    "status": [["-c", "{missing}"], ["-c", "{junk}"], ["--url", "http://{nohost}:8080"]],
    "vitals": [["{missing}"], ["{dir}"], ["{empty}"], ["{junk}"], ["{junk}", "--every", "-3"]],
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


CASES = [(name, args) for name, cases in BATTERY.items() for args in cases]


@pytest.mark.parametrize(("name", "args"), CASES, ids=[f"{n}:{' '.join(a)}" for n, a in CASES])
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(name, args, tmp_path, capsys) -> None:
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
