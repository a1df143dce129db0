"""The emulated ESP32-S3 against the real, unmodified esptool (CLI and Python API) over a pty."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from csi_edge.firmware import testkit
from csi_edge.firmware.emulator import Board, control, slip


@pytest.fixture
def board(tmp_path):
    with Board(flash_file=tmp_path / "flash.bin", mac=bytes.fromhex("f412fa0000aa")) as b:
        yield b


def esptool(port: str, *args: str, stub: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "esptool", *testkit.emulator_link(port)]
    if not stub:
        cmd.append("--no-stub")
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("stub", [True, False], ids=["stub", "rom"])
@pytest.mark.slow
def test_esptool_cli_detects_writes_verifies_and_reads(board, tmp_path, stub):
    app = testkit.app(128 << 10)
    (tmp_path / "app.bin").write_bytes(app)
    r = esptool(board.port, "chip-id", stub=stub)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ESP32-S3" in r.stdout and "f4:12:fa:00:00:aa" in r.stdout
    for extra in ([], ["--no-compress"]):
        r = esptool(
            board.port, "write-flash", *extra, "0x20000", str(tmp_path / "app.bin"), stub=stub
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Hash of data verified" in r.stdout
        # the flash file shows exactly what was written
        with open(tmp_path / "flash.bin", "rb") as f:
            f.seek(0x20000)
            assert f.read(len(app)) == app
        board.flash.erase(0x20000, len(app))
    board.flash.write(0x20000, app)
    r = esptool(board.port, "verify-flash", "0x20000", str(tmp_path / "app.bin"), stub=stub)
    assert r.returncode == 0 and "digest matched" in r.stdout, r.stdout + r.stderr
    size = len(app) if stub else 0x800  # the ROM reads 64 bytes per command
    r = esptool(
        board.port, "read-flash", "0x20000", hex(size), str(tmp_path / "back.bin"), stub=stub
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "back.bin").read_bytes() == app[:size]


def test_esptool_detects_mismatch_and_stub_erase(board, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"\x11" * 8192)
    assert esptool(board.port, "write-flash", "0x100000", str(tmp_path / "a.bin")).returncode == 0
    board.flash.write(0x100010, b"\x00")  # a bit flips in the flash
    r = esptool(board.port, "verify-flash", "0x100000", str(tmp_path / "a.bin"))
    assert r.returncode != 0 and "Verification failed" in r.stdout + r.stderr
    assert esptool(board.port, "erase-region", "0x100000", "0x2000").returncode == 0
    assert board.flash.read(0x100000, 0x2000) == b"\xff" * 0x2000
    board.flash.write(0x7FF000, b"\x00" * 16)
    assert esptool(board.port, "erase-flash").returncode == 0
    assert board.flash.read(0x7FF000, 16) == b"\xff" * 16


def _loader(port: str, stub: bool):
    from esptool import cmds

    esp = cmds.detect_chip(port, 115200, "no-reset", False, 1)
    return cmds.run_stub(esp) if stub else esp


@pytest.mark.parametrize("stub", [True, False], ids=["stub", "rom"])
def test_bad_wire_input_gets_the_loaders_error_status(board, stub):
    from esptool.util import FatalError

    esp = _loader(board.port, stub)
    try:
        esp.flash_begin(0x1000, 0x20000)
        block = b"\x5a" * esp.FLASH_WRITE_SIZE
        with pytest.raises(FatalError, match="Checksum error" if not stub else "Bad data checksum"):
            esp.check_command(
                "write",
                esp.ESP_CMDS["FLASH_DATA"],
                struct.pack("<IIII", len(block), 0, 0, 0) + block,
                esp.checksum(block) ^ 1,
            )
        # a write beyond the 8 MB flash
        with pytest.raises(
            FatalError, match="running result is wrong" if not stub else "Failed SPI operation"
        ):
            esp.flash_begin(0x2000, (8 << 20) - 0x1000)
        with pytest.raises(
            FatalError, match="Flash read error" if not stub else "Failed SPI operation"
        ):
            esp.flash_md5sum(8 << 20, 16)
        # a malformed SLIP frame (invalid escape) -> "invalid message" status, port stays usable
        esp._port.write(b"\xc0\x00\x0a\x04\x00\x00\x00\x00\x00\xdb\x01\xc0")
        val, data = esp.command()
        assert data[-4:-2] == b"\x01\x05" if not stub else data[-2:] == b"\xc0\x00"
        assert esp.read_reg(0x60007044) == 0xFA0000AA  # MAC word 0
    finally:
        esp._port.close()


def test_stub_is_detected_as_running_on_reconnect(board):
    from esptool import cmds

    esp = _loader(board.port, stub=True)
    esp._port.close()  # --after no-reset-stub: the stub keeps running
    again = cmds.detect_chip(board.port, 115200, "no-reset", False, 1)
    try:
        assert again.IS_STUB and again.sync_stub_detected
        assert again.flash_md5sum(0, 16) == hashlib.md5(b"\xff" * 16).hexdigest()
    finally:
        again._port.close()


def test_slip_decoder_handles_noise_split_frames_and_bad_escapes():
    pkts = [os.urandom(50) + b"\xc0\xdb", b"abc"]
    stream = b"noise" + b"".join(slip.encode(p) for p in pkts) + b"\xc0\x01\x02\xdb\x05\xc0"
    dec = slip.Decoder()
    got = []
    for i in range(0, len(stream), 3):
        got += dec.feed(stream[i : i + 3])
    assert got == [(pkts[0], True), (pkts[1], True), (b"\x01\x02", False)]


def _serial_lines(port: str, until: str, trigger, timeout: float = 5.0) -> list[str]:
    """Open the console (pyserial flushes input on open), then ``trigger()`` the boot."""
    import serial

    lines, buf = [], b""
    with serial.Serial(port, 115200, timeout=0.1) as ser:
        trigger()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            buf += ser.read(4096)
            *done, buf = buf.split(b"\n")
            lines += [d.decode(errors="replace").strip() for d in done]
            if any(until in line for line in lines):
                break
    return lines


def test_reset_control_boots_the_firmware_and_sync_returns_to_download(board, tmp_path):
    board.flash.write(0, testkit.bootloader())
    r = esptool(board.port, "run", stub=False)  # ROM FLASH_END "run user code"
    assert r.returncode == 0, r.stdout + r.stderr
    time.sleep(0.2)
    assert board.status()["mode"] == "app"
    assert board.status()["node_state"] == "no-partition-table"  # bootloader ok, no table
    lines = _serial_lines(board.port, "table error", lambda: board.reset("run"))
    assert "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)" in lines, lines
    assert any("load partition table error" in line for line in lines), lines
    # esptool's SYNC while the firmware runs: back in download mode, as with auto-reset
    r = esptool(board.port, "chip-id")
    assert r.returncode == 0, r.stdout + r.stderr
    assert board.status()["mode"] == "download"


def test_board_emulate_cli_prints_the_pty_first_and_stops_on_sigterm(tmp_path):
    ctl = str(tmp_path / "ctl.sock")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_edge",
            "board",
            "emulate",
            "--control",
            ctl,
            "--flash-size",
            "4MB",
            "--flash-file",
            str(tmp_path / "f.bin"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        assert proc.stdout.readline().strip() == f"control: {ctl}"
        r = esptool(port, "flash-id")
        assert r.returncode == 0 and "4MB" in r.stdout, r.stdout + r.stderr
        assert control(ctl, "status")["mode"] == "download"
        # SIGUSR1 = reset and run: no firmware -> the ROM prints "invalid header"
        lines = _serial_lines(port, "invalid header", lambda: proc.send_signal(signal.SIGUSR1))
        assert any("invalid header: 0xffffffff" in line for line in lines), lines
        assert control(ctl, "reset download")["mode"] == "download"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert os.path.getsize(tmp_path / "f.bin") == 4 << 20


@pytest.mark.parametrize("after", ["hard-reset", "watchdog-reset"])
def test_esptool_after_reset_options_boot_the_firmware(board, after):
    cmd = [
        sys.executable,
        "-m",
        "esptool",
        "--port",
        board.port,
        "--before",
        "no-reset",
        "--after",
        after,
        "--connect-attempts",
        "1",
        "chip-id",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for _ in range(100):  # the emulated node boots on its own thread: wait until it settles
        st = board.status()
        if st["boots"] and st["node_state"] != "booting":
            break
        time.sleep(0.05)
    assert st["mode"] == "app" and st["boots"] == 1
    assert st["node_state"] == "no-bootloader"  # blank flash: nothing to run


def test_flash_is_detached_until_spi_attach_and_sfdp_reads_anywhere(board):
    """The ROM loader leaves SPI flash detached (floating MISO: all ones); after SPI_ATTACH the
    chip answers RDID and its SFDP table at any address and length."""
    from esptool import cmds

    esp = cmds.detect_chip(board.port, 115200, "no-reset", False, 1)
    try:
        assert esp.flash_id(cache=False) == 0xFFFFFF
        assert esp.read_spiflash_sfdp(0, 32) == 0xFFFFFFFF
        esp.flash_spi_attach(0)
        assert esp.flash_id(cache=False) & 0xFFFF == 0x40EF
        assert esp.read_spiflash_sfdp(0, 32).to_bytes(4, "little") == b"SFDP"
        assert esp.read_spiflash_sfdp(1, 24).to_bytes(3, "little") == b"FDP"
        # parameter header 0 points at the basic table, whose dword 2 is the density in bits - 1
        assert esp.read_spiflash_sfdp(0x0C, 24) == 0x80
        assert esp.read_spiflash_sfdp(0x84, 32) == (8 << 20) * 8 - 1
        assert esp.read_spiflash_sfdp(0x10, 8) == 0xFF  # not XMC: no start-up fix attempted
    finally:
        esp._port.close()


def test_second_stub_upload_while_the_stub_runs_greets_again(board):
    """--before no-reset-no-sync cannot see the running stub, so esptool uploads it again."""
    from esptool import cmds

    esp = _loader(board.port, stub=True)
    esp._port.close()
    again = cmds.detect_chip(board.port, 115200, "no-reset-no-sync", False, 1)
    try:
        assert not again.sync_stub_detected
        stub = cmds.run_stub(again)  # waits for OHAI: hung before
        assert stub.IS_STUB
        assert stub.flash_md5sum(0, 16) == hashlib.md5(b"\xff" * 16).hexdigest()
    finally:
        again._port.close()


def test_boot_loop_without_bootloader_keeps_printing(board):
    """A blank chip's ROM prints "invalid header" forever (with watchdog resets), so a console
    opened long after the reset still sees it."""
    board.reset("run")
    time.sleep(0.5)
    lines = _serial_lines(board.port, "RTCWDT_RTC_RST", lambda: None, timeout=3)
    assert sum("invalid header: 0xffffffff" in line for line in lines) >= 10, lines
    assert any("rst:0x10 (RTCWDT_RTC_RST)" in line for line in lines), lines
    r = esptool(board.port, "chip-id")  # a SYNC still brings it back to download mode
    assert r.returncode == 0, r.stdout + r.stderr
    assert board.status()["mode"] == "download"
