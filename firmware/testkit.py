"""Minimal but valid ESP32-S3 firmware sets, for tests, benchmarks and trying the emulator.

The images carry correct headers (magic 0xE9, chip id 9, segment table, checksum, SHA-256) and an
app descriptor with a version string, so the real esptool, ``csi-edge flash`` and the emulated
board all accept them. They contain no runnable code.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from csi_edge.firmware import espimage


def emulator_link(port: str, baud: int | None = 921600) -> list[str]:
    """Connection options for a board emulated on a pty (``csi-edge board``): it has no reset
    lines to toggle and answers at once, so one connect attempt. esptool, ``csi-edge flash`` and
    ``csi-edge provision`` all take them; ``baud=None`` leaves the tool's default."""
    args = [
        "--port",
        port,
        "--before",
        "no-reset",
        "--after",
        "no-reset",
        "--connect-attempts",
        "1",
    ]
    return args + ["--baud", str(baud)] if baud else args


def bootloader(chip_id: int = espimage.ESP32S3_CHIP_ID) -> bytes:
    rng = random.Random(1)
    seg = bytes(rng.getrandbits(8) for _ in range(6000))
    return espimage.build_image(
        [(0x3FCE3800, seg), (0x403C9700, seg[:3000])], chip_id=chip_id, entry=0x403C98B4
    )


def app(
    size: int = 1 << 20,
    version: str = "0.6.5-test",
    chip_id: int = espimage.ESP32S3_CHIP_ID,
    seed: int = 2,
    header_flash_size: int = 8 << 20,
    project: str = "esp32-csi-node",
) -> bytes:
    """An app image of about ``size`` bytes (half random, half repetitive, like real code);
    its header names ``header_flash_size`` (as an ESP-IDF build for that flash does)."""
    rng = random.Random(seed)
    body_len = max(0, size - 512)
    noise = rng.randbytes(body_len // 2) if hasattr(rng, "randbytes") else os.urandom(body_len // 2)
    body = noise + bytes(range(256)) * ((body_len - len(noise)) // 256 + 1)
    drom = espimage.build_app_desc(version, project) + body[: body_len // 2]
    irom = body[body_len // 2 : body_len]
    size_code = (header_flash_size >> 20).bit_length() - 1  # 1 MB -> 0, ..., 8 MB -> 3
    img = espimage.build_image(
        [(0x3C000020, drom), (0x42000020, irom)],
        chip_id=chip_id,
        flash_size_freq=(size_code << 4) | 0xF,
    )
    return img


def partition_table(flash_size: int = 8 << 20) -> bytes:
    return espimage.build_partition_table(espimage.ruview_partitions(flash_size))


def write_release(
    folder: str | os.PathLike,
    *,
    app_size: int = 1 << 20,
    version: str = "0.6.5-test",
    chip_id: int = espimage.ESP32S3_CHIP_ID,
    flash_size: int = 8 << 20,
    otadata: bool = True,
    layout: str = "release",
) -> Path:
    """Write a firmware set as ``release`` (plain folder of .bin files), ``idf`` (build dir with
    flasher_args.json) or ``manifest`` (ESP Web Tools manifest.json). Returns the path to pass
    to ``csi-edge flash --firmware``."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    files = {
        0x0: (
            "bootloader/bootloader.bin" if layout == "idf" else "bootloader.bin",
            bootloader(chip_id),
        ),
        0x8000: (
            "partition_table/partition-table.bin" if layout == "idf" else "partition-table.bin",
            partition_table(flash_size),
        ),
        0x20000: ("esp32-csi-node.bin", app(app_size, version, chip_id)),
    }
    if otadata:
        files[0xF000] = ("ota_data_initial.bin", espimage.build_otadata())
    for name, data in files.values():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    size_txt = f"{flash_size >> 20}MB"
    if layout == "idf":
        doc = {
            "write_flash_args": [
                "--flash_mode",
                "dio",
                "--flash_size",
                size_txt,
                "--flash_freq",
                "80m",
            ],
            "flash_settings": {"flash_mode": "dio", "flash_size": size_txt, "flash_freq": "80m"},
            "flash_files": {f"0x{o:x}": n for o, (n, _) in sorted(files.items())},
            "extra_esptool_args": {
                "after": "hard_reset",
                "before": "default_reset",
                "stub": True,
                "chip": "esp32s3",
            },
        }
        (root / "flasher_args.json").write_text(json.dumps(doc, indent=2))
        return root
    if layout == "manifest":
        doc = {
            "name": "RuView CSI node",
            "version": version,
            "new_install_prompt_erase": False,
            "builds": [
                {
                    "chipFamily": "ESP32-S3",
                    "parts": [{"path": n, "offset": o} for o, (n, _) in sorted(files.items())],
                }
            ],
        }
        (root / "manifest.json").write_text(json.dumps(doc, indent=2))
        return root / "manifest.json"
    return root


def install_node(
    flash,  # noqa: ANN001 - an emulated board's Flash
    *,
    node_id: int,
    target_port: int,
    ota_psk: str | None = None,
    version: str = "0.8.0",
    app_size: int = 200 << 10,
    target_ip: str = "127.0.0.1",
) -> None:
    """Put a bootable 4 MB RuView set (app in ota_0) and a provisioned NVS straight into an
    emulated board's flash: a fleet for OTA tests without flashing each board over its pty."""
    from csi_edge.firmware import nodecfg, nvs

    cfg = {"node_id": node_id, "target_ip": target_ip, "target_port": target_port}
    if ota_psk:
        cfg["ota_psk"] = ota_psk
    flash.erase_all()
    flash.write(0, bootloader())
    flash.write(0x8000, partition_table(4 << 20))
    flash.write(0xF000, espimage.build_otadata())
    flash.write(0x20000, app(app_size, version, seed=node_id))
    blank = b"\xff" * 0x6000
    flash.write(0x9000, nvs.rewrite_image(blank, nodecfg.owned_namespaces(cfg)).data)
