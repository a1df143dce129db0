"""esptool's own integration tests (unmodified, from espressif/esptool ``test/``) against the
emulated ESP32-S3 started with ``csi-edge board emulate``.

The suite drives a board on a serial port exactly as it drives a real chip; it is run once per
module in a subprocess and each class group below checks its share of the results. Only the
flashing, verify, erase, read-mac, flash-id, stub-reuse and watchdog tests run on a 32 MB board:
about 60 tests, 30-45 s on 2 cores, well under the 2-minute budget (the whole file is measured
in ``firmware/emulator/ESPTOOL_SUITE.md``). Marked ``slow``: the default run includes it,
``scripts/test --fast`` leaves it out.

The suite is not vendored: set ``ESPTOOL_TESTS`` to a copy of esptool's ``test/`` folder; the
shared tools folder is the default. Without one the module skips with a message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SUITE = Path(os.environ.get("ESPTOOL_TESTS", "/work/shared/tools/esptool-tests"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SUITE / "test_esptool.py").is_file(),
        reason=f"esptool's test suite not found at {SUITE} (set ESPTOOL_TESTS to a copy of "
        "esptool's test/ folder)",
    ),
]

# group -> the suite's test ids (class, or class::test) it is made of
GROUPS = {
    "flashing": ["TestFlashing"],
    "verify": ["TestVerifyCommand"],
    "erase": ["TestErase"],
    "read-mac": ["TestReadIdentityValues"],
    "flash-id": ["TestFlashDetection"],
    "stub-reuse": ["TestStubReuse"],
    "watchdog": ["TestReset::test_watchdog_reset"],
}

# Tests of these groups that must run (not be skipped) on an emulated 32 MB ESP32-S3.
MUST_PASS = {
    "TestFlashing::test_last_bytes_of_32M_flash",
    "TestFlashing::test_verify_erase_between_32M_flash",
    "TestFlashDetection::test_flash_sfdp",
    "TestStubReuse::test_stub_reuse_with_synchronization",
    "TestStubReuse::test_stub_reuse_without_synchronization",
    "TestReset::test_watchdog_reset",
    "TestReadIdentityValues::test_read_mac",
    "TestErase::test_region_erase_no_stub",
    "TestVerifyCommand::test_verify_failure",
}

# Version skew, not the board: the suite matches esptool 5.3.1, which refuses an image for a
# later chip revision; 5.6.0 prints a NOTE and writes it.
DESELECT = ["TestFlashing::test_write_image_for_another_revision"]


def _start_emulator(tmp: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_edge",
            "board",
            "emulate",
            "--flash-size",
            "32MB",  # with ESPTOOL_TEST_FLASH_SIZE=32 the suite also writes beyond 16 MB
            "--flash-file",
            str(tmp / "flash.bin"),
            "--control",
            str(tmp / "ctl.sock"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    port = proc.stdout.readline().strip()
    if not port.startswith("/dev/"):
        proc.kill()
        proc.wait(5)
        pytest.fail(f"csi-edge board emulate printed {port!r} instead of a pty path")
    return proc, port


def _outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """``{"Class::test": (outcome, message)}`` from pytest's JUnit XML."""
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (el.get("message") or "")[:300]
                break
        out[f"{cls}::{case.get('name')}"] = (outcome, message)
    return out


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory) -> dict[str, tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("esptool-suite")
    proc, port = _start_emulator(tmp)
    selected = [f"test_esptool.py::{t}" for ids in GROUPS.values() for t in ids]
    # The plain environment: the tests choose --before/--after themselves (esptool's reset only
    # warns on a pty; the emulator takes the SYNC that follows as the auto-reset).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPTOOL_")}
    env.update(
        PYTHONDONTWRITEBYTECODE="1", COLUMNS="120", NO_COLOR="1", ESPTOOL_TEST_FLASH_SIZE="32"
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *selected,
        "-k",
        " and ".join(f"not {t.rsplit('::', 1)[-1]}" for t in DESELECT),
        "--port",
        port,
        "--chip",
        "esp32s3",
        "--baud",
        "115200",
        "-q",
        f"--rootdir={SUITE}",
        "-p",
        "no:cacheprovider",  # nothing written into the suite's folder
        "-p",
        "no:benchmark",
        "--timeout",
        "60",
        f"--junitxml={tmp / 'junit.xml'}",
    ]
    try:
        run = subprocess.run(cmd, cwd=SUITE, env=env, capture_output=True, text=True, timeout=400)
    finally:
        proc.terminate()
        proc.wait(10)
    if not (tmp / "junit.xml").is_file():
        pytest.fail(f"esptool's suite did not run (exit {run.returncode}):\n{run.stdout[-3000:]}")
    return _outcomes(tmp / "junit.xml")


@pytest.mark.parametrize("group", list(GROUPS))
def test_esptool_suite_group_passes_on_the_emulated_board(suite_results, group):
    ids = GROUPS[group]
    mine = {
        name: res
        for name, res in suite_results.items()
        if any(name == t or name.startswith(t + "::") for t in ids)
    }
    assert mine, f"no test of {ids} ran"
    bad = {n: r for n, r in mine.items() if r[0] in ("failed", "error")}
    assert not bad, "\n".join(f"{n}: {o}: {m}" for n, (o, m) in bad.items())
    passed = [n for n, (o, _) in mine.items() if o == "passed"]
    assert passed, f"every test of {group} was skipped: {mine}"
    for name in MUST_PASS:
        if name in mine:
            assert mine[name][0] == "passed", f"{name} was {mine[name][0]}: {mine[name][1]}"
