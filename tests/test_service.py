"""The gateway as a service: systemd notify and watchdog, the banner and the no-frames hint,
SIGHUP reload, `csi-edge status`, `csi-edge service install` — against a real `csi-edge run`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

CLI = [sys.executable, "-m", "csi_edge"]
ROOT = Path(__file__).resolve().parents[1]


def send_frames(port: int, nodes: int = 2, rate: float = 50.0, duration: float = 2.0) -> int:
    """Simulated nodes sending real ADR-018 datagrams to 127.0.0.1:port; returns frames sent."""
    from csi_edge.sources.simnode import SimFleet

    fleet = SimFleet.uniform(nodes, rate_hz=rate, target=("127.0.0.1", port), jitter=0.0)
    asyncio.run(fleet.run(duration))
    return fleet.sent


def _get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait(pred, timeout=30.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except (OSError, ValueError):
            pass
        time.sleep(every)
    return False


class Gateway:
    """`csi-edge run` in a subprocess, stderr collected line by line."""

    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            CLI + args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.err: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def stderr(self) -> str:
        return "\n".join(self.err)

    def stop(self, sig=signal.SIGTERM, timeout=30) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        self._t.join(5)
        return self.proc.returncode, out


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(60)
    yield path, sock
    sock.close()


def _recv_until(sock, key: str, got: list[str]) -> None:
    while True:
        msg = sock.recv(4096).decode()
        got.extend(msg.split("\n"))
        if any(line.startswith(key) for line in msg.split("\n")):
            return


def test_systemd_gets_ready_watchdog_and_stopping_in_order(notify_socket):
    path, sock = notify_socket
    udp = free_port(socket.SOCK_DGRAM)
    gw = Gateway(
        ["run", "--udp", f"127.0.0.1:{udp}", "--pose", "none", "--vitals-model", "none", "--quiet"],
        env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"},
    )
    got: list[str] = []
    try:
        _recv_until(sock, "READY=1", got)
        assert any(x.startswith("STATUS=") for x in got)  # READY comes with a status line
        send_frames(udp, nodes=1, duration=1.0)
        pings = 0
        while pings < 3:
            _recv_until(sock, "WATCHDOG=1", got)
            pings += 1
    finally:
        code, _ = gw.stop()
    _recv_until(sock, "STOPPING=1", got)
    assert code == 0, gw.stderr()
    keys = [x.split("=")[0] for x in got if x.split("=")[0] in ("READY", "WATCHDOG", "STOPPING")]
    assert keys[0] == "READY" and keys[-1] == "STOPPING" and keys.count("WATCHDOG") >= 3
    assert keys.count("READY") == 1 and keys.count("STOPPING") == 1
    banner = gw.stderr()
    assert f"listening: udp 127.0.0.1:{udp}" in banner and "models: pose off" in banner
    assert "state:" in banner and "baselines:" in banner


def test_abstract_socket_and_no_socket():
    from csi_edge.app.systemd import Notifier

    assert Notifier("").notify("READY=1") is False  # NOTIFY_SOCKET unset: a no-op
    name = f"csi-edge-test-{os.getpid()}"
    recv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    recv.bind("\0" + name)
    recv.settimeout(5)
    try:
        n = Notifier("@" + name)
        assert n.reloading() and n.ready("ok")
        first = recv.recv(1024).decode().split("\n")
        assert first[0] == "RELOADING=1" and first[1].startswith("MONOTONIC_USEC=")
        assert recv.recv(1024) == b"READY=1\nSTATUS=ok"
    finally:
        recv.close()


def _gateway(cfg_changes=None):
    from csi_edge.config import GatewayConfig
    from csi_edge.service import build_gateway

    cfg = GatewayConfig()
    cfg.ingest.udp = ["127.0.0.1:0"]
    cfg.models.pose = cfg.models.vitals = ""
    cfg.sinks.console = False
    for k, v in (cfg_changes or {}).items():
        setattr(cfg.sinks, k, v)
    return build_gateway(cfg)


def test_watchdog_is_withheld_once_reports_stop():
    from csi_edge.app.daemon import Daemon

    d = Daemon(_gateway())
    assert d.progressing()  # first report not due yet
    d.heartbeat.publish([])
    assert d.progressing()
    d.heartbeat.last = time.monotonic() - 60  # a stuck report loop / blocked event loop
    assert not d.progressing()


@pytest.mark.slow
def test_no_frames_warning_names_the_likely_causes(monkeypatch, caplog):
    import logging

    import csi_edge.app.daemon as daemon_mod

    monkeypatch.setattr(daemon_mod, "STARTUP_GRACE_S", 1.5)
    gw = _gateway()

    async def main(garbage: bool):
        d = daemon_mod.Daemon(gw, out=open(os.devnull, "w"))  # noqa: SIM115
        task = asyncio.ensure_future(d.run(2.5))
        await asyncio.sleep(0.3)
        if garbage:
            port = gw.ingest.sources[0].address[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(5):
                    s.sendto(b"not a csi frame at all", ("127.0.0.1", port))
        await task

    with caplog.at_level(logging.WARNING, logger="csi_edge.service"):
        asyncio.run(main(garbage=False))
    msgs = [r.getMessage() for r in caplog.records if "no frames" in r.getMessage()]
    assert len(msgs) == 1 and "target IP" in msgs[0] and "firewall" in msgs[0]
    caplog.clear()
    gw = _gateway()
    with caplog.at_level(logging.WARNING, logger="csi_edge.service"):
        asyncio.run(main(garbage=True))
    msgs = [r.getMessage() for r in caplog.records if "no CSI frames" in r.getMessage()]
    assert len(msgs) == 1 and "5 datagram(s)" in msgs[0] and "format" in msgs[0]


def _config(path: Path, udp: int, http: int, extra: str = "") -> None:
    path.write_text(
        f'report_interval_s = 0.5\n[ingest]\nudp = ["127.0.0.1:{udp}"]\n'
        f'[models]\npose = ""\nvitals = ""\n'
        f'[sinks]\nconsole = false\nhttp = "127.0.0.1:{http}"\n{extra}'
    )


def _accounted(base: str) -> int:
    """Frames the gateway counted plus datagrams the kernel dropped and the gateway counted
    (a loaded CI machine can fill the socket buffer while the gateway starts its workers)."""
    h = _get_json(base + "health")[1]
    return h["frames"] + (h["kernel_drops"] or 0)


@pytest.mark.slow
def test_sighup_reload_keeps_sources_and_node_state_and_rejects_a_bad_config(tmp_path):
    udp, http = free_port(socket.SOCK_DGRAM), free_port()
    cfg = tmp_path / "gateway.toml"
    jsonl = tmp_path / "out" / "reports.jsonl"
    _config(cfg, udp, http)
    gw = Gateway(["run", "-c", str(cfg)])
    base = f"http://127.0.0.1:{http}/"
    try:
        # the first report means the loop runs with its sources bound (a 503 comes earlier,
        # while it starts: frames sent then go to a port nobody listens on yet)
        assert _wait(
            lambda: _get_json(base + "health")[1].get("status") not in (None, "starting")
        ), gw.stderr()
        sent = send_frames(udp, nodes=2, duration=1.5)
        assert _wait(lambda: _accounted(base) == sent), (
            sent,
            _get_json(base + "health"),
            gw.stderr(),
        )
        before = _get_json(base + "health")[1]["nodes"]

        # 1. a valid change: a JSONL sink appears, the offline timeout changes, sources stay
        _config(cfg, udp, http, f'jsonl = "{jsonl}"\n')
        cfg.write_text(cfg.read_text().replace("[ingest]", "[ingest]\noffline_after_s = 30.0"))
        gw.proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: "reloaded:" in gw.stderr()), gw.stderr()
        assert "sink jsonl added" in gw.stderr() and "offline_after_s 30" in gw.stderr()
        sent += send_frames(udp, nodes=2, duration=1.0)
        assert _wait(lambda: jsonl.exists() and jsonl.read_text().count("\n") >= 2)
        assert _wait(lambda: _accounted(base) == sent), (sent, _get_json(base + "health"))
        after = _get_json(base + "health")[1]["nodes"]
        assert set(after) == set(before)  # the same nodes, their counters carried on
        for key in before:
            assert after[key]["frames"] > before[key]["frames"]
        drops = _get_json(base + "health")[1]["kernel_drops"] or 0
        assert sum(n["frames"] for n in after.values()) + drops == sent  # since start, not reset

        # 2. an invalid config: one line naming the file and the key; the gateway runs on
        cfg.write_text(cfg.read_text() + "bogus_key = 1\n")
        n_lines = len(gw.err)
        gw.proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: any("reload failed" in x for x in gw.err[n_lines:])), gw.stderr()
        failed = [x for x in gw.err[n_lines:] if "reload failed" in x]
        assert len(failed) == 1 and str(cfg) in failed[0] and "bogus_key" in failed[0]
        assert "Traceback" not in gw.stderr()
        lines = jsonl.read_text().count("\n")
        assert _wait(lambda: jsonl.read_text().count("\n") > lines)  # JSONL still written

        # 3. csi-edge status finds the running gateway (the state file it wrote) and reads it
        st = subprocess.run(CLI + ["status", "--json"], capture_output=True, text=True, timeout=30)
        assert st.returncode in (0, 5), st.stderr
        health = json.loads(st.stdout)
        assert set(health["nodes"]) == set(before)
        st = subprocess.run(
            CLI + ["status", "--url", base], capture_output=True, text=True, timeout=30
        )
        assert base in st.stdout and "node 127.0.0.1#1" in st.stdout
    finally:
        code, _ = gw.stop()
    assert code == 0, gw.stderr()


def test_status_without_a_gateway_is_exit_4_and_token_prints_the_state_token():
    from csi_edge.sinks.http_token import token_path

    port = free_port()
    st = subprocess.run(
        CLI + ["status", "--url", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert st.returncode == 4 and "no gateway answers" in st.stderr and "Traceback" not in st.stderr
    tok = subprocess.run(CLI + ["status", "--token"], capture_output=True, text=True, timeout=30)
    assert tok.returncode == 0 and tok.stdout.strip() == token_path().read_text().strip()


def test_service_install_writes_unit_config_and_env(tmp_path):
    from csi_edge.app.unit import render_unit
    from csi_edge.config import load_config

    res = subprocess.run(
        CLI
        + [
            "service",
            "install",
            "--unit-dir",
            str(tmp_path / "u"),
            "--config-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    assert (
        "sudo systemctl daemon-reload" in res.stdout
        and "sudo systemctl enable --now csi-edge" in res.stdout
    )
    unit = (tmp_path / "u" / "csi-edge.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=csi-edge",
        "MemoryMax=",
        "SupplementaryGroups=dialout",
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"--config {tmp_path / 'c' / 'gateway.toml'}",
    ):
        assert line in unit, line
    exe = unit.split("ExecStart=")[1].split()[0]
    assert Path(exe).exists()
    cfg = load_config(tmp_path / "c" / "gateway.toml")  # the commented config is valid
    assert cfg.sinks.http == "127.0.0.1:8080" and cfg.sinks.console is False
    assert (tmp_path / "c" / "env").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        CLI
        + [
            "service",
            "install",
            "--unit-dir",
            str(tmp_path / "u"),
            "--config-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "kept" in again.stdout  # an edited gateway.toml is never overwritten
    shipped = (ROOT / "scripts" / "csi-edge.service").read_text()
    assert shipped == render_unit(
        "/opt/csi-edge/.venv/bin/csi-edge", "/etc/csi-edge/gateway.toml", "/etc/csi-edge/env"
    )
