"""A small compatibility layer over esptool's Python API (esptool 5.x and 4.x).

Differences handled here:
* reset mode names: 5.x ``no-reset`` / ``hard-reset``, 4.x ``no_reset`` / ``hard_reset``;
* ``esptool.cmds.write_flash``: 5.x takes ``[(address, bytes)]`` and keyword options, 4.x takes an
  argparse namespace with ``addr_filename`` file objects;
* ``cmds.run_stub`` / ``cmds.attach_flash`` / ``cmds.reset_chip`` exist only in 5.x (4.x: methods
  on the loader object);
* the logger: 5.x lets a custom logger replace its console output, which is used here to turn
  esptool's progress into a tqdm bar on stderr and its chatter into debug logging.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import sys
from collections.abc import Iterator

from csi_edge.errors import DeviceError

log = logging.getLogger("csi_edge.esp")
ROM_BAUD = 115200
EXPECTED_CHIP = "ESP32-S3"


class EspError(DeviceError):
    """Talking to the board failed; the message says what and (where known) what to try."""


class WrongChip(EspError):
    """The board is not an ESP32-S3."""


def esptool_major() -> int:
    import esptool

    try:
        return int(str(esptool.__version__).split(".")[0])
    except ValueError:
        return 5


def mode_name(mode: str) -> str:
    """esptool's spelling of a reset mode for the installed version."""
    mode = mode.replace("_", "-")
    return mode if esptool_major() >= 5 else mode.replace("-", "_")


@contextlib.contextmanager
def quiet_esptool(progress: bool, desc: str = "flash") -> Iterator[None]:
    """Route esptool 5's console output to logging and its progress to a tqdm bar (stderr)."""
    try:
        from esp_pylib.logger import EspLog
        from esptool.logger import TemplateLogger
        from esptool.logger import log as esp_log
    except ImportError:  # esptool 4.x prints to stdout itself: keep stdout clean for --json
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    from tqdm import tqdm

    class _Logger(TemplateLogger):
        bar: tqdm | None = None

        def print(self, *args, **kwargs):  # noqa: A003 - esptool's interface
            text = " ".join(str(a) for a in args).strip()
            if text:
                log.debug("esptool: %s", text)

        def note(self, message):
            log.info("esptool: %s", message)

        def warning(self, message):
            log.info("esptool warning: %s", message)

        def error(self, message):
            log.warning("esptool: %s", message)

        def stage(self, finish=False):
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
            if not progress:
                return
            if self.bar is None or self.bar.total != total_iters or cur_iter < self.bar.n:
                if self.bar is not None:
                    self.bar.close()
                self.bar = tqdm(
                    total=total_iters,
                    desc=desc,
                    unit="B",
                    unit_scale=True,
                    file=sys.stderr,
                    leave=False,
                )
            self.bar.update(cur_iter - self.bar.n)

        def set_verbosity(self, verbosity):
            pass

    previous = EspLog.instance
    custom = _Logger()
    esp_log.set_logger(custom)
    try:
        yield
    finally:
        if custom.bar is not None:
            custom.bar.close()
        EspLog.instance = previous


def _fatal_types() -> tuple[type[BaseException], ...]:
    import serial
    from esptool.util import FatalError

    return (FatalError, serial.SerialException, OSError)


class Session:
    """One connection to a board in download mode: detect, (stub), baud, attach flash."""

    def __init__(
        self,
        port: str,
        *,
        baud: int = 460800,
        before: str = "default-reset",
        no_stub: bool = False,
        connect_attempts: int = 7,
        trace: bool = False,
        progress: bool = True,
    ) -> None:
        self.port, self.baud, self.before = port, baud, before
        self.no_stub, self.connect_attempts, self.trace = no_stub, connect_attempts, trace
        self.progress = progress
        self.esp = None
        self.chip = ""
        self.flash_size: str | None = None

    # -- connection --------------------------------------------------------------------------
    def open(self) -> Session:
        from esptool import cmds

        try:
            with quiet_esptool(False):
                esp = cmds.detect_chip(
                    self.port,
                    min(ROM_BAUD, self.baud),
                    mode_name(self.before),
                    self.trace,
                    self.connect_attempts,
                )
                self.esp = esp
                self.chip = esp.CHIP_NAME
                if self.chip != EXPECTED_CHIP:
                    raise WrongChip(
                        f"wrong chip: found {self.chip}, this firmware is for {EXPECTED_CHIP}"
                    )
                if not self.no_stub:
                    esp = cmds.run_stub(esp) if hasattr(cmds, "run_stub") else esp.run_stub()
                    self.esp = esp
                if self.baud > ROM_BAUD:
                    esp.change_baud(self.baud)
                if hasattr(cmds, "attach_flash"):
                    cmds.attach_flash(esp)
                else:  # esptool 4.x
                    esp.flash_spi_attach(0)
                self.flash_size = cmds.detect_flash_size(esp)
        except WrongChip:
            self.close()
            raise
        except _fatal_types() as e:
            self.close()
            raise EspError(f"{self.port}: {_clean(e)}") from None
        return self

    def close(self) -> None:
        if self.esp is not None:
            with contextlib.suppress(Exception):
                self.esp._port.close()
            self.esp = None

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def serial(self):  # noqa: ANN201 - pyserial object
        """The open pyserial port (used to read the boot log after a reset)."""
        assert self.esp is not None
        return self.esp._port

    # -- operations --------------------------------------------------------------------------
    def mac(self) -> str:
        assert self.esp is not None
        with quiet_esptool(False):
            mac = self.esp.read_mac()
        return ":".join(f"{b:02x}" for b in mac)

    def read(self, offset: int, size: int, desc: str = "read") -> bytes:
        assert self.esp is not None
        try:
            with quiet_esptool(self.progress, desc):
                bar = _ReadBar(size, desc) if self.progress else None
                data = self.esp.read_flash(offset, size, bar.update if bar else None)
                if bar:
                    bar.close()
                return bytes(data)
        except _fatal_types() as e:
            raise EspError(
                f"reading 0x{offset:x}+0x{size:x} from {self.port} failed: {_clean(e)}"
            ) from None

    def md5(self, offset: int, size: int) -> str:
        assert self.esp is not None
        try:
            with quiet_esptool(False):
                return str(self.esp.flash_md5sum(offset, size)).lower()
        except _fatal_types() as e:
            raise EspError(
                f"MD5 of 0x{offset:x}+0x{size:x} on {self.port} failed: {_clean(e)}"
            ) from None

    def write(
        self,
        parts: list[tuple[int, bytes]],
        *,
        flash_size: str = "keep",
        flash_mode: str = "keep",
        flash_freq: str = "keep",
        compress: bool = True,
        desc: str = "write",
    ) -> None:
        """esptool's write_flash (erase, write, its own MD5 check)."""
        from esptool import cmds

        assert self.esp is not None
        try:
            with quiet_esptool(self.progress, desc):
                if esptool_major() >= 5:
                    cmds.write_flash(
                        self.esp,
                        parts,
                        flash_freq=flash_freq,
                        flash_mode=flash_mode,
                        flash_size=flash_size,
                        compress=compress,
                        no_compress=not compress,
                        no_progress=not self.progress,
                    )
                else:  # esptool 4.x: argparse namespace with file objects
                    files = []
                    for off, data in parts:
                        f = io.BytesIO(data)
                        f.name = f"0x{off:x}.bin"  # type: ignore[attr-defined]
                        files.append((off, f))
                    args = argparse.Namespace(
                        addr_filename=files,
                        flash_mode=flash_mode,
                        flash_freq=flash_freq,
                        flash_size=flash_size,
                        erase_all=False,
                        encrypt=False,
                        encrypt_files=None,
                        compress=compress,
                        no_compress=not compress,
                        force=False,
                        verify=False,
                        ignore_flash_encryption_efuse_setting=False,
                        no_stub=self.no_stub,
                        chip="esp32s3",
                        no_progress=not self.progress,
                    )
                    cmds.write_flash(self.esp, args)
        except _fatal_types() as e:
            raise EspError(f"writing to {self.port} failed: {_clean(e)}") from None

    def verify(self, parts: list[tuple[int, bytes]]) -> list[str]:
        """MD5 of each written region against the data; returns the mismatching offsets."""
        bad = []
        for off, data in parts:
            padded = data + b"\xff" * (-len(data) % 4)
            if self.md5(off, len(padded)) != hashlib.md5(padded).hexdigest():
                bad.append(f"0x{off:x}")
        return bad

    def reset(self, after: str) -> None:
        """Leave download mode the way esptool's ``--after`` does."""
        from esptool import cmds

        assert self.esp is not None
        try:
            with quiet_esptool(False):
                if hasattr(cmds, "reset_chip"):
                    cmds.reset_chip(self.esp, mode_name(after).replace("_", "-"))
                elif after.startswith("hard"):
                    self.esp.hard_reset()
                elif after.startswith("soft"):
                    self.esp.soft_reset(False)
                elif after.startswith("watchdog"):
                    self.esp.watchdog_reset()
                elif after in ("no-reset", "no_reset") and self.esp.IS_STUB:
                    self.esp.soft_reset(True)
        except _fatal_types() as e:
            raise EspError(f"resetting {self.port} failed: {_clean(e)}") from None


class _ReadBar:
    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, desc=desc, unit="B", unit_scale=True, file=sys.stderr, leave=False
        )

    def update(self, done: int, total: int, *_: object) -> None:
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _clean(e: BaseException) -> str:
    text = str(e).strip()
    text = text.split("\nFor troubleshooting steps visit")[0]
    return " ".join(text.split()) or type(e).__name__
