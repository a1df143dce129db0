"""Shared fixtures: real services the tests start (mosquitto), free ports, data paths."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def mosquitto(tmp_path):
    """A real mosquitto broker on a free loopback port; yields (host, port)."""
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        pytest.skip(
            "mosquitto is not installed (scripts/test installs it with apt-get when run as root)"
        )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("mosquitto did not start listening within 10 s")
    yield "127.0.0.1", port
    proc.terminate()
    proc.wait(timeout=5)
