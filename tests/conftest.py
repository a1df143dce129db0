"""Shared fixtures: real services the tests start (mosquitto, a UDP gateway), free ports, data."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory):
    """Every test (and every csi-edge it starts) keeps its state in a temporary folder, never in
    the user's ~/.local/state/csi-edge."""
    import os

    os.environ["CSI_EDGE_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    os.environ.pop("STATE_DIRECTORY", None)


@pytest.fixture(autouse=True)
def _fresh_log_limits():
    """The log limiter is process-wide: each test starts with every reason unlogged."""
    from csi_edge.loglimit import LIMITER

    LIMITER.reset()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jittered_times(rate: float, duration: float, rng):
    """Receive times of a node at ``rate`` Hz over ``duration`` s, with ESP32-like jitter
    (gamma-distributed intervals, about 16 % spread), starting near 0."""
    import numpy as np

    dt = rng.gamma(40.0, 1.0 / 40.0, int(duration * rate * 1.3)) / rate
    t = np.cumsum(dt)
    return t[t < duration]


@contextlib.asynccontextmanager
async def running_gateway(*, port: int = 0, consumers=(), settle: float = 0.2, **udp_kw):
    """The gateway's real UDP ingest (``UdpSource`` + ``Ingest``) on 127.0.0.1:``port`` (0: a free
    one), running while inside; yields the :class:`~csi_edge.ingest.Ingest` (its source is
    ``ingest.sources[0]``). On a normal exit it waits ``settle`` seconds for datagrams still in
    flight, then stops the ingest, which flushes what its source holds."""
    from csi_edge.ingest import Ingest
    from csi_edge.sources.udp import UdpSource

    ingest = Ingest([UdpSource("127.0.0.1", port, **udp_kw)], consumers=consumers)
    await ingest.start()
    task = asyncio.create_task(ingest.run())
    try:
        yield ingest
        await asyncio.sleep(settle)
    finally:
        ingest.stop()
        await task


@pytest.fixture
def data_dir() -> Path:
    return DATA


def start_mosquitto(exe: str, conf: Path, port: int) -> subprocess.Popen:
    """mosquitto with ``conf``, once it accepts connections on ``port`` (fails the test with
    its output when it exits or does not listen within 10 s)."""
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.05)
    proc.kill()
    pytest.fail("mosquitto did not start listening within 10 s")


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
    proc = start_mosquitto(exe, conf, port)
    yield "127.0.0.1", port
    proc.terminate()
    proc.wait(timeout=5)
