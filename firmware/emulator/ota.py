"""The emulated node's OTA HTTP server: RuView's ``ota_update.c`` on loopback.

What the real node does (RuView ``firmware/esp32-csi-node/main/ota_update.c``, port 8032):

* ``GET /ota/status`` -> JSON ``version``, ``date``, ``time``, ``running_partition``,
  ``next_partition``, ``max_size``;
* ``POST /ota``: the raw app image as the body (``application/octet-stream``) with a
  ``Content-Length`` of 1 byte to ``max_size`` (900 KiB); written to the next OTA slot, which then
  becomes the boot partition; the node reboots about a second after answering;
* every request needs ``Authorization: Bearer <psk>``, the PSK being NVS ``security/ota_psk``; a
  node without a PSK refuses every request.

The server listens only while the node is up (after Wi-Fi, like the firmware), so a rebooting
node refuses connections. It writes the board's real emulated flash (the next ``ota_N`` slot and
otadata), and the reboot goes through the board's own reset, so the next boot picks the slot the
bootloader would. Fault modes (``NodeOptions.ota_fault``): ``crash`` drops the connection half way
through the upload and reboots into the old image (RuView #1893); ``silent`` installs the image
but the new firmware never streams CSI; ``dark`` installs it and the node never comes back on
the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from csi_edge.firmware import espimage

if TYPE_CHECKING:
    from csi_edge.firmware.emulator.node import NodeRuntime

OTA_MAX_SIZE = 900 * 1024  #: the firmware's OTA_MAX_SIZE


class OtaServer:
    """One board's OTA endpoint; an asyncio loop on its own thread for the board's lifetime."""

    def __init__(
        self,
        reboot: Callable[[str], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reboot_delay: float = 1.0,
    ) -> None:
        self.host, self.port = host, port
        self._reboot, self.reboot_delay = reboot, reboot_delay
        self._node: NodeRuntime | None = None
        self._site = None
        self._runner = None
        self.uploads = 0  #: completed uploads (tests read it)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emu-ota", daemon=True)
        self._thread.start()
        self._call(self._setup())

    def _call(self, coro, timeout: float = 5.0):  # noqa: ANN001, ANN202 - any coroutine
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _setup(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/ota/status", self._status)
        app.router.add_post("/ota", self._upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()

    # ---------- lifecycle: up while the node runs ----------
    def up(self, node: NodeRuntime) -> None:
        """The node got its IP: start listening (same port at every boot)."""
        self._node = node
        self._call(self._start())

    async def _start(self) -> None:
        from aiohttp import web

        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def down(self) -> None:
        """The node stops (reset, power off): stop listening; requests in flight are cut."""
        self._node = None
        site, self._site = self._site, None
        if site is not None:
            with contextlib.suppress(Exception):
                self._call(site.stop())

    def close(self) -> None:
        self.down()
        with contextlib.suppress(Exception):
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=2)
        self._loop.close()

    # ---------- handlers ----------
    def _admit(self, request):  # noqa: ANN001, ANN202 - aiohttp types
        """The running node and None, or (node, the refusal to send): 503 while the board is not
        running its firmware, then the PSK check every OTA endpoint shares."""
        from aiohttp import web

        node = self._node
        if node is None or node.running is None:
            raise web.HTTPServiceUnavailable()
        return node, self._auth(request, node)

    def _auth(self, request, node: NodeRuntime):  # noqa: ANN001, ANN202 - aiohttp types
        from aiohttp import web

        psk = str(node.config.get("ota_psk") or "")
        if not psk:
            return web.Response(status=403, text="OTA disabled: no PSK provisioned\n")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {psk}".encode()):
            return web.Response(status=401, text="Unauthorized\n")
        return None

    async def _status(self, request):  # noqa: ANN001, ANN202
        from aiohttp import web

        node, denied = self._admit(request)
        if denied is not None:
            return denied
        part, info = node.running
        app = info.app
        nxt = node.next_slot()
        body = {
            "version": app.version if app else "unknown",
            "date": app.date if app else "",
            "time": app.time if app else "",
            "running_partition": part.label,
            "next_partition": nxt.label if nxt else None,
            "max_size": OTA_MAX_SIZE,
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def _upload(self, request):  # noqa: ANN001, ANN202
        from aiohttp import web

        node, denied = self._admit(request)
        if denied is not None:
            return denied
        length = request.content_length
        if length is None or length <= 0 or length > OTA_MAX_SIZE:
            return web.Response(
                status=400, text=f"Invalid image size {length} (max {OTA_MAX_SIZE})\n"
            )
        slot = node.next_slot()
        if slot is None or length > slot.size:
            return web.Response(status=500, text="No OTA partition\n")
        fault = node.opts.ota_fault
        flash = node.flash
        await asyncio.to_thread(flash.erase, slot.offset, length)  # esp_ota_begin
        got = 0
        while got < length:
            chunk = await request.content.read(min(4096, length - got))
            if not chunk:
                return web.Response(status=400, text="Receive failed\n")
            await asyncio.to_thread(flash.write, slot.offset + got, chunk)
            got += len(chunk)
            if fault == "crash" and got >= length // 2:
                # the task overflows its stack: the connection dies with the chip
                request.transport.abort()
                self._reboot("0xc (RTC_SW_CPU_RST)")
                raise asyncio.CancelledError
        try:  # esp_ota_end validates the image
            info = espimage.parse_image(flash.read(slot.offset, length), what="OTA image")
        except espimage.ImageError as e:
            return web.Response(status=400, text=f"Image validation failed: {e}\n")
        if info.chip_id != espimage.ESP32S3_CHIP_ID:
            return web.Response(status=400, text="Image validation failed: chip id\n")
        node.set_boot_slot(slot)
        self.uploads += 1
        if fault == "silent":
            node.opts.silent = True
        elif fault == "dark":
            node.opts.dhcp = False
        self._loop.call_later(self.reboot_delay, self._reboot, "0xc (RTC_SW_CPU_RST)")
        return web.Response(text="OTA update successful. Rebooting...\n")
