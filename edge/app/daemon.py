"""Running a built gateway as a daemon: signals, systemd notify and watchdog, the start-up banner,
the no-frames warning, SIGHUP reload.

::

    serve(gateway)      bind sources -> banner -> READY=1 -> run
                        every half WatchdogSec: WATCHDOG=1 only while reports keep coming
                        every few seconds: STATUS=4/4 nodes online, mqtt up, 812 frames/s
                        10 s without frames: one warning naming the likely causes
                        SIGHUP: RELOADING=1, apply the new config (csi_edge.app.reload), READY=1
                        SIGINT/SIGTERM: STOPPING=1, last report, sinks flushed and closed
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from csi_edge.app.systemd import Notifier, watchdog_interval_s
from csi_edge.sinks.health import STARTUP_GRACE_S, evaluate, stall_after_s, status_line

log = logging.getLogger("csi_edge.service")

STATUS_EVERY_S = 5.0


class Heartbeat:
    """A sink that only notes when reports go out: the watchdog pings while they do."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.period: float | None = None

    def publish(self, reports: list) -> None:  # noqa: ARG002 - only the time matters
        now = time.monotonic()
        if self.last is not None:
            self.period = now - self.last
        self.last = now

    def close(self) -> None:
        pass


class Daemon:
    def __init__(
        self,
        gateway: Any,
        *,
        status: Callable[[], dict] | None = None,
        reload: Callable[[], Any] | None = None,
        notifier: Notifier | None = None,
        banner: Callable[[], list[str]] | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.gateway = gateway
        self.status = status
        self.reload_fn = reload
        self.notifier = notifier if notifier is not None else Notifier()
        self.banner = banner
        self.out = out if out is not None else sys.stderr
        self.heartbeat = Heartbeat()
        self.started = time.monotonic()
        self.stopping = False
        self.reloads = 0
        self._reloading: asyncio.Task | None = None

    # -- signals ---------------------------------------------------------------------------------
    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.notifier.stopping()
        self.gateway.stop()

    def hup(self) -> None:
        if self.reload_fn is None:
            log.warning("SIGHUP: no config file to reload (start with --config FILE)")
            return
        if self._reloading is not None and not self._reloading.done():
            log.warning("SIGHUP: a reload is still running; ignored")
            return
        self._reloading = asyncio.ensure_future(self._reload())

    async def _reload(self) -> None:
        self.notifier.reloading()
        try:
            changed = await self.reload_fn()
            self.reloads += 1
            if changed is not None:
                log.warning("reloaded: %s", changed)
        except Exception as exc:  # noqa: BLE001 - a failed reload keeps the running gateway
            log.error("reload failed, keeping the running configuration: %s", exc)
        finally:
            self.notifier.ready(self._status_text())

    # -- periodic --------------------------------------------------------------------------------
    def progressing(self) -> bool:
        """Reports went out lately (or the first is not due yet): the loop does its work."""
        interval = self.gateway.config.report_interval_s
        last = self.heartbeat.last if self.heartbeat.last is not None else self.started
        return time.monotonic() - last <= stall_after_s(interval) + interval

    def _status_text(self) -> str:
        if self.status is None:
            return ""
        try:
            st = self.status()
        except Exception as exc:  # noqa: BLE001
            return f"status unavailable: {exc!r}"
        return status_line(evaluate(st, time.time(), time.time(), self.gateway.config.report_interval_s))

    async def _watch(self) -> None:
        wd = watchdog_interval_s()
        tick = min(wd, 1.0) if wd else 1.0
        last_ping = last_status = 0.0
        status_text = ""
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if wd and now - last_ping >= wd * 0.9 and self.progressing():
                self.notifier.watchdog()
                last_ping = now
            if self.notifier.enabled and now - last_status >= STATUS_EVERY_S:
                last_status = now
                text = self._status_text()
                if text and text != status_text:
                    status_text = text
                    self.notifier.status(text)

    async def _no_frames_warning(self) -> None:
        await asyncio.sleep(STARTUP_GRACE_S)
        if self.gateway.ingest.frames == 0 and not self.stopping:
            log.warning("%s", no_frames_hint(self.gateway))

    # -- run -------------------------------------------------------------------------------------
    def _install(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed = []
        for sig, fn in ((signal.SIGINT, self.stop), (signal.SIGTERM, self.stop), (signal.SIGHUP, self.hup)):
            try:
                loop.add_signal_handler(sig, fn)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        return installed

    async def run(self, duration: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        installed = self._install(loop)
        if self.heartbeat not in self.gateway.sinks:
            self.gateway.sinks.insert(0, self.heartbeat)
        tasks: list[asyncio.Task] = []
        try:
            await self.gateway.ingest.start()  # sources bound: the port is known, errors show now
            self.started = time.monotonic()
            if self.banner is not None:
                for line in self.banner():
                    print(line, file=self.out, flush=True)
            self.notifier.ready(self._status_text() or "started")
            tasks = [
                asyncio.ensure_future(self._watch()),
                asyncio.ensure_future(self._no_frames_warning()),
            ]
            await self.gateway.run(duration)
        finally:
            if not self.stopping:
                self.stopping = True
                self.notifier.stopping()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sig in installed:
                loop.remove_signal_handler(sig)
            self.notifier.close()


def no_frames_hint(gateway: Any) -> str:
    """Why no frame arrived, most likely first (the top support questions for RuView nodes)."""
    summary = gateway.ingest.summary()
    sources = summary.get("sources") or {}
    datagrams = sum(int(s.get("datagrams") or 0) for s in sources.values())
    lines = sum(int(s.get("lines") or 0) for s in sources.values())
    skipped = summary.get("skipped") or {}
    names = ", ".join(sources) or "none"
    if datagrams or lines or skipped:
        what = ", ".join(f"{k} {v}" for k, v in skipped.items()) or "none counted"
        return (
            f"no CSI frames after {STARTUP_GRACE_S:g} s on {names}, but {datagrams} datagram(s) and "
            f"{lines} line(s) arrived (skipped: {what}): a different firmware or format than expected? "
            "Try `csi-edge record` and `csi-edge decode` on what arrives."
        )
    addrs = ", ".join(local_addresses()) or "unknown"
    ports = sorted({str(src.address[1]) for src in gateway.ingest.sources if hasattr(src, "address")})
    port = ports[0] if ports else "5005"
    return (
        f"no frames after {STARTUP_GRACE_S:g} s on {names}. Likely causes: the nodes' target IP is "
        f"not this gateway (its addresses: {addrs}) or the target port differs; a firewall drops "
        f"the UDP port (e.g. `sudo ufw allow {port}/udp`); nodes and gateway on different networks or "
        "the nodes not joined to WiFi (check a node's serial log); for serial: wrong port or baud."
    )


def local_addresses() -> list[str]:
    try:
        import psutil

        out = []
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family.name == "AF_INET" and not a.address.startswith("127."):
                    out.append(a.address)
        return sorted(set(out))
    except Exception:  # noqa: BLE001 - only a hint
        return []
