"""sd_notify: tell systemd the gateway is ready, alive, reloading or stopping.

The protocol (sd_notify(3)): newline-separated ``KEY=value`` assignments in one datagram to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).
Written in-tree: it is a dozen lines of the standard library, and the libsystemd bindings need a
compiler and headers on the Pi. Every call is a no-op when ``$NOTIFY_SOCKET`` is unset.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("csi_edge.systemd")


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address = address or None
        self._sock: socket.socket | None = None
        self._failed = False
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False (logged once) when it cannot be sent."""
        if self._sock is None:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            self._sock.sendto("\n".join(assignments).encode(), addr)
            return True
        except OSError as e:
            if not self._failed:
                self._failed = True
                log.warning("cannot notify systemd at %s: %s", self.address, e.strerror or e)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half of systemd's ``WatchdogSec=`` (``$WATCHDOG_USEC``), or None when no watchdog is set
    (or it is meant for another process: ``$WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2.0, 0.05)
    except ValueError:
        return None
