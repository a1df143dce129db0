"""What the emulated board does when it runs user code: boot like the RuView CSI node.

It checks what a real ESP32-S3 would check (bootloader image at 0x0, partition table at 0x8000,
otadata, the selected app image), reads its NVS configuration type-strictly, prints ESP-IDF style
log lines at "115200" (``docs/provisioning.md`` §5) and streams ADR-018 raw CSI frames over UDP to the configured
target with the configured node id. Wi-Fi is modelled by a list of known networks: with none given
every network accepts the node; otherwise the SSID and password must match one of them.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from csi_edge.codecs.ruview import encode_raw_frame
from csi_edge.firmware import espimage, nodecfg, nvs
from csi_edge.firmware.emulator.flashmem import Flash
from csi_edge.radio import channel_to_mhz
from csi_edge.sim.scenario import NodeContent

if TYPE_CHECKING:
    from csi_edge.firmware.emulator.ota import OtaServer

WIFI_RETRIES = 10
BOOT_LOOP_LINE_S = 0.02  # one "invalid header" line per 20 ms while no bootloader is flashed
BOOT_LOOP_LINES_PER_RESET = 50  # then an RTC watchdog reset and the ROM banner again


@dataclass
class NodeOptions:
    """Knobs of the emulated environment (not of the firmware)."""

    wifi: dict[str, str] | None = None  # known networks SSID -> password; None = any
    ip: str = "127.0.0.1"  # the address DHCP "gives" the node
    rate_hz: float = 20.0  # CSI frames per second
    retry_interval: float = 0.02  # seconds between Wi-Fi retries (real node: seconds)
    n_subcarriers: int = 64
    drop_udp: bool = False  # a firewall on the way: frames leave the node but never arrive
    dhcp: bool = True  # False: the access point accepts the node but never hands out an address
    ota_port: int | None = None  # serve the OTA HTTP endpoint on loopback (0 = any free port)
    ota_fault: str | None = None  # "crash", "silent" or "dark" (see emulator/ota.py)
    ota_reboot_delay: float = 1.0  # seconds from the OTA answer to the reboot (firmware: ~1 s)
    silent: bool = False  # the firmware boots but never streams CSI (set by ota_fault "silent")
    stats: dict[str, int] = field(default_factory=lambda: {"frames": 0})


class NodeRuntime:
    """One boot of the node; ``run()`` blocks until ``stop`` is set or the boot ends."""

    def __init__(
        self,
        flash: Flash,
        opts: NodeOptions,
        write: Callable[[bytes], None],
        stop: threading.Event,
        reset_reason: str = "0x1 (POWERON)",
        ota: OtaServer | None = None,
    ) -> None:
        self.flash, self.opts, self._write, self.stop = flash, opts, write, stop
        self.reset_reason = reset_reason
        self.ota = ota
        self.table: espimage.PartitionTable | None = None
        self.running: tuple[espimage.Partition, espimage.ImageInfo] | None = None
        self.t0 = time.monotonic()
        self.state = "booting"
        self.config: dict[str, object] = {}

    def log(self, level: str, tag: str, msg: str) -> None:
        ms = int((time.monotonic() - self.t0) * 1000) + 27
        self._write(f"{level} ({ms}) {tag}: {msg}\r\n".encode())

    def raw(self, text: str) -> None:
        self._write((text + "\r\n").encode())

    def run(self) -> None:
        try:
            self._boot()
        except Exception as e:  # noqa: BLE001 - a crash of the model is printed like a panic
            self.raw(f"Guru Meditation Error: Core  0 panic'ed (emulator: {e})")
            self.state = "crashed"
        finally:
            if self.ota is not None:
                self.ota.down()

    def _otas(self) -> list[espimage.Partition]:
        table = self.table
        apps = table.apps if table else []
        return sorted(
            (p for p in apps if p.subtype_name.startswith("ota_")), key=lambda p: p.subtype
        )

    def next_slot(self) -> espimage.Partition | None:
        """esp_ota_get_next_update_partition: the OTA slot after the running one."""
        otas = self._otas()
        if not otas or self.running is None:
            return None
        labels = [p.label for p in otas]
        cur = self.running[0].label
        return otas[(labels.index(cur) + 1) % len(otas)] if cur in labels else otas[0]

    def set_boot_slot(self, slot: espimage.Partition) -> None:
        """esp_ota_set_boot_partition: a new otadata sequence number that selects ``slot``."""
        otas, od = self._otas(), self.table.otadata if self.table else None
        if od is None or slot not in otas:
            return
        n = len(otas)
        cur = self.flash.read(od.offset, espimage.OTADATA_SIZE)
        seqs = [
            seq
            for off in (0, 0x1000)
            for seq in [int.from_bytes(cur[off : off + 4], "little")]
            if seq != 0xFFFFFFFF
            and int.from_bytes(cur[off + 28 : off + 32], "little") == espimage.otadata_crc(seq)
        ]
        seq = max(seqs, default=0) + 1
        while (seq - 1) % n != otas.index(slot):
            seq += 1
        self.flash.erase(od.offset, espimage.OTADATA_SIZE)
        self.flash.write(od.offset, espimage.build_otadata(seq))

    def _boot_loop(self, word: int) -> None:
        """No valid bootloader: the ROM prints "invalid header" over and over, and the RTC
        watchdog resets the chip now and then, until someone resets it (a real S3 does this
        forever, so a reader that opens the port late still sees it)."""
        lines = 0
        while not self.stop.wait(BOOT_LOOP_LINE_S):
            self.raw(f"invalid header: 0x{word:08x}")
            lines += 1
            if lines % BOOT_LOOP_LINES_PER_RESET == 0:
                self.raw("ESP-ROM:esp32s3-20210327")
                self.raw("Build:Mar 27 2021")
                self.raw("rst:0x10 (RTCWDT_RTC_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)")

    def _boot(self) -> None:
        self.raw("ESP-ROM:esp32s3-20210327")
        self.raw("Build:Mar 27 2021")
        self.raw(f"rst:{self.reset_reason},boot:0x8 (SPI_FAST_FLASH_BOOT)")
        boot = self.flash.read(0, 0x8000)
        try:
            espimage.parse_image(boot, what="bootloader")
        except espimage.ImageError:
            self.state = "no-bootloader"
            self._boot_loop(struct.unpack_from("<I", boot)[0])
            return
        self.raw("SPIWP:0xee")
        self.raw("mode:DIO, clock div:1")
        self.raw("entry 0x403c98b4")
        self.log("I", "boot", "ESP-IDF v5.2.2 2nd stage bootloader")
        self.log("I", "boot", "chip revision: v0.2")
        try:
            table = espimage.parse_partition_table(self.flash.read(0x8000, 0xC00))
        except espimage.ImageError as e:
            self.log("E", "flash_parts", str(e))
            self.log("E", "boot", "load partition table error!")
            self.state = "no-partition-table"
            return
        self.log("I", "boot", "Partition Table:")
        for i, p in enumerate(table.partitions):
            self.log(
                "I",
                "boot",
                f"{i:2d} {p.label:<16} {p.type_name:<5} {p.subtype_name:<8} "
                f"{p.offset:08x} {p.size:08x}",
            )
        app = self._select_app(table)
        if app is None:
            self.log("E", "boot", "No bootable app partitions in the partition table")
            self.state = "no-app"
            return
        part, info = app
        self.table, self.running = table, app
        self.log("I", "boot", f"Loaded app from partition at offset 0x{part.offset:x}")
        version = info.app.version if info.app else "unknown"
        self.log("I", "app_init", f"App version:      {version}")
        cfg = self._read_config(table)
        self.config = cfg
        node_id = int(cfg["node_id"])  # type: ignore[arg-type]
        self.log("I", "main", f"ESP32-S3 CSI Node (ADR-018) — v{version} — Node ID: {node_id}")
        if not self._wifi(cfg):
            return
        if self.ota is not None:
            self.ota.up(self)
            self.log("I", "ota_update", f"OTA HTTP server started on port {self.ota.port}")
        if self.opts.silent:
            self.state = "silent"  # the new firmware is up, but its CSI task never starts
            self.stop.wait()
            return
        self._stream(cfg)

    def _select_app(
        self, table: espimage.PartitionTable
    ) -> tuple[espimage.Partition, espimage.ImageInfo] | None:
        otas = sorted(
            (p for p in table.apps if p.subtype_name.startswith("ota_")), key=lambda p: p.subtype
        )
        order: list[espimage.Partition] = []
        od = table.otadata
        if otas and od is not None:
            slot = espimage.ota_boot_slot(
                self.flash.read(od.offset, espimage.OTADATA_SIZE), len(otas)
            )
            order = otas[slot:] + otas[:slot]
        factory = table.app_slot("factory")
        if factory is not None:
            order.append(factory)
        for part in order:
            try:
                info = espimage.parse_image(
                    self.flash.read(part.offset, part.size), what=f"image at 0x{part.offset:x}"
                )
            except espimage.ImageError as e:
                self.log("E", "esp_image", str(e))
                self.log("E", "boot", f"{part.label} app partition is not bootable")
                continue
            if info.chip_id != espimage.ESP32S3_CHIP_ID:
                self.log("E", "boot_comm", f"mismatch chip ID, expected 9, found {info.chip_id}")
                continue
            return part, info
        return None

    def _read_config(self, table: espimage.PartitionTable) -> dict[str, object]:
        cfg = nodecfg.defaults()
        part = table.nvs
        found: dict[str, object] = {}
        if part is not None:
            try:
                result = nvs.read_image(self.flash.read(part.offset, part.size))
                found, _notes = nodecfg.from_nvs(result.namespaces)
                if nodecfg.CFG_NS not in result.namespaces:
                    found = {}
            except nvs.NvsError as e:
                self.log("W", "nvs_config", f"NVS unreadable ({e})")
        if not found:
            self.log("I", "nvs_config", "No NVS config found, using compiled defaults")
            return cfg
        for key, value in found.items():
            shown = "(set)" if key in nodecfg.SECRET_KEYS else nodecfg.display({key: value})[key]
            self.log("I", "nvs_config", f"NVS override: {key}={shown}")
        cfg.update(found)
        return cfg

    def _wifi(self, cfg: dict[str, object]) -> bool:
        ssid, password = str(cfg["ssid"]), str(cfg.get("password", ""))
        self.log("I", "main", f"WiFi STA initialized, connecting to SSID: {ssid}")
        known = self.opts.wifi
        ok = known is None or (ssid in known and known[ssid] == password)
        if not ok:
            for k in range(1, WIFI_RETRIES + 1):
                if self.stop.wait(self.opts.retry_interval):
                    return False
                self.log("I", "main", f"Retrying WiFi connection ({k}/{WIFI_RETRIES})")
            self.log("E", "main", f"Failed to connect to WiFi after {WIFI_RETRIES} retries")
            self.state = "wifi-failed"
            return False
        if not self.opts.dhcp:
            self.state = "no-ip"
            self.stop.wait()  # associated, waiting for DHCP forever
            return False
        self.log("I", "main", f"Got IP: {self.opts.ip}")
        return True

    def _stream(self, cfg: dict[str, object]) -> None:
        ip, port, node_id = str(cfg["target_ip"]), int(cfg["target_port"]), int(cfg["node_id"])  # type: ignore[arg-type]
        channel = (
            int(cfg.get("csi_channel") or 0)
            or (bytes(cfg.get("chan_list") or b"\x06") or b"\x06")[0]
        )  # type: ignore[arg-type]
        self.log("I", "stream_sender", f"UDP sender initialized: {ip}:{port}")
        self.log(
            "I",
            "main",
            f"CSI streaming active → {ip}:{port} (edge tier {cfg['edge_tier']}, "
            f"{self.opts.rate_hz:g} Hz)",
        )
        self.state = "streaming"
        sim = NodeContent(n_pairs=self.opts.n_subcarriers, seed=node_id)
        freq = channel_to_mhz(channel)
        period = 1.0 / self.opts.rate_hz
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            seq, start = 0, time.monotonic()
            while not self.stop.is_set():
                t = time.monotonic() - start
                frame = encode_raw_frame(
                    node_id, seq, np.asarray(sim(t, seq), np.int8), freq_mhz=freq
                )
                try:
                    if not self.opts.drop_udp:
                        sock.sendto(frame, (ip, port))
                    self.opts.stats["frames"] += 1
                except OSError:
                    pass  # like lwIP: a failed send is dropped, the node keeps going
                seq += 1
                self.stop.wait(max(0.0, start + seq * period - time.monotonic()))
