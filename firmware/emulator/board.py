"""An emulated ESP32-S3 board on a pseudo-terminal.

The board is in one of two modes:

* ``download``: the ROM serial loader (and, once esptool uploads it, the flasher stub) answers
  SLIP commands over the pty, so the unmodified esptool can detect, write, verify and read it.
* ``app``: it runs "user code", i.e. boots like the RuView CSI node (see ``node.py``): boot log at
  115200 on the pty, CSI frames over UDP.

Reset control (a pty has no DTR/RTS lines, so esptool cannot pulse EN or GPIO0):

* esptool's ``--after hard-reset`` first clears RTC_CNTL_OPTION1.FORCE_DOWNLOAD_BOOT; the emulator
  takes that register write as the EN pulse and boots the app. ``--after watchdog-reset`` enables
  the RTC watchdog, which also boots the app, as does ``esptool run`` / ``--after soft-reset`` with
  the ROM loader (FLASH_END "run user code"; the v2 flasher stub ignores it, as the real one does).
* The auto-reset circuit: a SYNC request arriving while the app runs puts the board back into
  download mode, as if esptool had held GPIO0 low across a reset.
* ``SIGUSR1`` = reset and run the app, ``SIGUSR2`` = reset into download mode (``csi-edge board
  emulate`` installs these), and the control socket (one line per connection: ``reset``,
  ``reset run``, ``reset download``, ``status``; one JSON line back). See :func:`control`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import select
import socket
import threading
import time
import tty

from csi_edge.firmware.emulator import slip
from csi_edge.firmware.emulator.flashmem import Flash
from csi_edge.firmware.emulator.loader import SYNC, Loader
from csi_edge.firmware.emulator.node import NodeOptions, NodeRuntime
from csi_edge.firmware.emulator.ota import OtaServer

WRITE_TIMEOUT = 2.0


class Board:
    """One emulated board. ``start()`` creates the pty; ``port`` is the path to give esptool."""

    def __init__(
        self,
        *,
        flash_size: int = 8 << 20,
        flash_file: str | os.PathLike | None = None,
        mac: bytes = bytes.fromhex("f412fa000001"),
        chip: str = "esp32s3",
        node: NodeOptions | None = None,
        control_path: str | None = None,
        boot: bool = False,
    ) -> None:
        self.flash = Flash(flash_size, flash_file)
        self.node_opts = node or NodeOptions()
        self.loader = Loader(self.flash, mac=mac, chip=chip, on_event=self._loader_event)
        self.control_path = control_path
        self.mode = "download"
        self.port = ""
        self._boot_at_start = boot
        self._pending: list[str] = []
        self._requests: queue.Queue[tuple[str, str, threading.Event | None]] = queue.Queue()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._node: NodeRuntime | None = None
        self._node_thread: threading.Thread | None = None
        self._node_stop = threading.Event()
        self.dropped_bytes = 0
        self.boots = 0
        self.ota: OtaServer | None = None
        if self.node_opts.ota_port is not None:
            self.ota = OtaServer(
                lambda reason: self.reset("run", wait=False, reason=reason),
                port=self.node_opts.ota_port,
                reboot_delay=self.node_opts.ota_reboot_delay,
            )

    # ---------- lifecycle ----------
    def start(self) -> Board:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._io = threading.Thread(target=self._io_loop, name="emu-io", daemon=True)
        self._io.start()
        if self.control_path:
            self._start_control()
        if self._boot_at_start:
            self.reset("run")
        return self

    def close(self) -> None:
        self._stop.set()
        self._stop_node()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._io.join(timeout=2)
        if self.ota is not None:
            self.ota.close()
        if self.control_path:
            with contextlib.suppress(OSError):
                self._ctl_sock.close()
                os.unlink(self.control_path)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.flash.close()

    def __enter__(self) -> Board:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------- reset control ----------
    def reset(self, mode: str = "run", wait: bool = True, reason: str = "0x1 (POWERON)") -> None:
        """Reset the chip into ``run`` (boot the app) or ``download`` (ROM loader)."""
        if mode not in ("run", "download"):
            raise ValueError("mode must be 'run' or 'download'")
        done = threading.Event() if wait else None
        self._requests.put((mode, reason, done))
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"r")
        if done is not None:
            done.wait(5)

    def status(self) -> dict[str, object]:
        node = self._node
        return {
            "port": self.port,
            "mode": self.mode,
            "stub": self.loader.stub,
            "baud": self.loader.baud,
            "node_state": node.state if node and self.mode == "app" else None,
            "node_id": node.config.get("node_id") if node else None,
            "frames_sent": self.node_opts.stats["frames"],
            "boots": self.boots,
            "ota_port": self.ota.port if self.ota else None,
        }

    def _loader_event(self, event: str) -> None:
        self._pending.append(event)

    def _do_reset(self, mode: str, reason: str = "0x1 (POWERON)", announce: bool = True) -> None:
        self._stop_node()
        self.loader.reset()
        if mode == "download":
            self.mode = "download"
            if announce:
                self._write(
                    b"ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\n"
                    b"rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))\r\n"
                    b"waiting for download\r\n"
                )
            return
        self.mode = "app"
        self.boots += 1
        self._node_stop = stop = threading.Event()

        def console(data: bytes) -> None:
            self._write(data, cancel=stop)  # a reset ends a blocked console write at once

        self._node = NodeRuntime(self.flash, self.node_opts, console, stop, reason, ota=self.ota)
        self._node_thread = threading.Thread(target=self._node.run, name="emu-node", daemon=True)
        self._node_thread.start()

    def _stop_node(self) -> None:
        self._node_stop.set()
        if self._node_thread is not None:
            self._node_thread.join(timeout=3)
            self._node_thread = None

    # ---------- serial I/O ----------
    def _write(self, data: bytes, cancel: threading.Event | None = None) -> None:
        """Write to the host side; like a UART nobody listens to, give up after a while
        (at once when ``cancel`` is set: the node that wrote is being reset)."""
        with self._write_lock:
            view = memoryview(data)
            deadline = time.monotonic() + WRITE_TIMEOUT
            while view:
                try:
                    n = os.write(self._master, view)
                    view = view[n:]
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stop.is_set() or (cancel and cancel.is_set()):
                        self.dropped_bytes += len(view)
                        return
                    select.select([], [self._master], [], min(left, 0.1))
                except OSError:
                    self.dropped_bytes += len(view)
                    return

    def _io_loop(self) -> None:
        decoder = slip.Decoder()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master, self._wake_r], [], [], 0.5)
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 64)
                self._serve_requests()
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # no process has the port open right now
                    time.sleep(0.05)
                    continue
                return
            for packet, ok in decoder.feed(data):
                self._on_packet(packet, ok)

    def _serve_requests(self) -> None:
        while True:
            try:
                mode, reason, done = self._requests.get_nowait()
            except queue.Empty:
                return
            self._do_reset(mode, reason)
            if done is not None:
                done.set()

    def _on_packet(self, packet: bytes, ok: bool) -> None:
        if self.mode == "app":
            if not (ok and len(packet) >= 2 and packet[0] == 0 and packet[1] == SYNC):
                return  # the node reads nothing from its console
            self._do_reset("download", announce=False)  # auto-reset into download mode
        for out in self.loader.handle(packet, ok):
            self._write(slip.encode(out))
        events, self._pending = self._pending, []
        for event in events:
            if event == "run":
                self._do_reset("run", reason="0xc (RTC_SW_CPU_RST)")
            elif event == "hard-reset":
                time.sleep(0.05)  # esptool pulses EN right after this register write
                self._do_reset("run")
            elif event == "watchdog-reset":
                # the RTC watchdog fires a little later: esptool still locks the WDT registers
                timer = threading.Timer(
                    0.2,
                    self.reset,
                    args=("run",),
                    kwargs={"wait": False, "reason": "0x10 (RTCWDT_RTC_RST)"},
                )
                timer.daemon = True
                timer.start()
            elif event == "download":
                self._do_reset("download", announce=False)

    # ---------- control socket ----------
    def _start_control(self) -> None:
        assert self.control_path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control_path)
        self._ctl_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ctl_sock.bind(self.control_path)
        self._ctl_sock.listen(4)
        threading.Thread(target=self._control_loop, name="emu-ctl", daemon=True).start()

    def _control_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._ctl_sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.makefile("r").readline().strip().lower()
                except OSError:
                    continue
                reply: dict[str, object]
                if line in ("reset", "reset run", "run"):
                    self.reset("run")
                    reply = {"ok": True, **self.status()}
                elif line in ("reset download", "download"):
                    self.reset("download")
                    reply = {"ok": True, **self.status()}
                elif line == "status":
                    reply = {"ok": True, **self.status()}
                else:
                    reply = {"ok": False, "error": f"unknown command {line!r}"}
                with contextlib.suppress(OSError):
                    conn.sendall((json.dumps(reply) + "\n").encode())


def control(path: str, command: str, timeout: float = 5.0) -> dict[str, object]:
    """Send one command to an emulator's control socket and return its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return json.loads(s.makefile("r").readline())
