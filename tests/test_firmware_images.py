"""Firmware sources for csi-edge flash: every layout, and every bad input with a clear message."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.firmware import espimage, images, testkit

EIGHT_MB = 8 << 20


@pytest.mark.parametrize("layout", ["release", "idf", "manifest"])
def test_each_layout_yields_bootloader_table_otadata_and_app(tmp_path, layout):
    src = testkit.write_release(tmp_path / "fw", layout=layout, app_size=64 << 10, version="0.6.5")
    fw = images.check(images.load(src), EIGHT_MB)
    offsets = {p.role: p.offset for p in fw.parts}
    assert offsets == {
        "bootloader": 0,
        "partition-table": 0x8000,
        "otadata": 0xF000,
        "app": 0x20000,
    }
    assert fw.version == "0.6.5"
    if layout == "idf":
        assert (fw.flash_mode, fw.flash_size, fw.flash_freq) == ("dio", "8MB", "80m")


def test_zip_release_and_missing_otadata_gets_a_blank_one(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=64 << 10, otadata=False)
    zpath = tmp_path / "release.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in src.iterdir():
            z.write(f, f"esp32-csi-node-0.6.5/{f.name}")
    fw = images.check(images.load(zpath), EIGHT_MB)
    od = fw.part("otadata")
    assert od.offset == 0xF000 and od.data == b"\xff" * 8192
    assert any("otadata added" in n for n in fw.notes)


def test_merged_image_and_app_alone(tmp_path):
    boot, table, app = testkit.bootloader(), testkit.partition_table(), testkit.app(64 << 10)
    merged = bytearray(b"\xff" * (0x20000 + len(app)))
    merged[0 : len(boot)] = boot
    merged[0x8000 : 0x8000 + len(table)] = table
    merged[0x20000:] = app
    (tmp_path / "merged.bin").write_bytes(bytes(merged))
    fw = images.check(images.load(tmp_path / "merged.bin"), EIGHT_MB)
    assert fw.part("merged").offset == 0 and fw.app is not None
    (tmp_path / "app.bin").write_bytes(app)
    alone = images.load(tmp_path / "app.bin")
    assert alone.part("app").offset is None  # goes to the board's ota_0
    board_table = espimage.parse_partition_table(table)
    assert images.check(alone, EIGHT_MB, board_table).part("app").offset == 0x20000


def _flash_check(*args: str):
    return CliRunner().invoke(cli, ["flash", "--port", "/dev/null", "--check-only", *args])


def test_missing_file_is_named(tmp_path):
    r = _flash_check("--firmware", str(tmp_path / "nope"))
    assert r.exit_code != 0 and "nope: no such file or directory" in r.output
    src = testkit.write_release(tmp_path / "idf", layout="idf", app_size=32 << 10)
    (src / "esp32-csi-node.bin").unlink()
    r = _flash_check("--firmware", str(src))
    assert r.exit_code != 0 and "esp32-csi-node.bin: file not found" in r.output
    assert "Traceback" not in r.output


def test_bad_image_magic_is_refused(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10)
    app = bytearray((src / "esp32-csi-node.bin").read_bytes())
    app[0] = 0xE8
    (src / "esp32-csi-node.bin").write_bytes(app)
    r = _flash_check("--firmware", str(src))
    assert r.exit_code != 0 and "bad image magic 0xe8 (expected 0xe9)" in r.output
    (tmp_path / "text.bin").write_bytes(b"hello")
    r = _flash_check("--firmware", str(tmp_path / "text.bin"))
    assert "bad image magic" in r.output and "text.bin" in r.output


def test_image_too_big_for_its_partition(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=0x200000 + 4096)
    r = _flash_check("--firmware", str(src))
    assert r.exit_code != 0
    assert "image too big for its partition" in r.output and "ota_0 holds 2097152 bytes" in r.output
    # the 4 MB layout: an app that fits 8 MB slots but not 0x1D0000
    src4 = testkit.write_release(tmp_path / "fw4", app_size=0x1E0000, flash_size=4 << 20)
    r = _flash_check("--firmware", str(src4), "--flash-size", "4MB")
    assert r.exit_code != 0 and "image too big" in r.output


def test_partition_table_beyond_the_flash_size(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10)  # 8 MB layout
    r = _flash_check("--firmware", str(src), "--flash-size", "4MB")
    assert r.exit_code != 0 and "beyond the 4 MB flash" in r.output


def test_wrong_chip_in_image_or_manifest(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10, chip_id=5)
    r = _flash_check("--firmware", str(src))
    assert r.exit_code != 0 and "wrong chip" in r.output and "ESP32-C3" in r.output
    man = testkit.write_release(tmp_path / "m", app_size=32 << 10, layout="manifest")
    doc = json.loads(man.read_text())
    doc["builds"][0]["chipFamily"] = "ESP32-C3"
    man.write_text(json.dumps(doc))
    r = _flash_check("--firmware", str(man))
    assert r.exit_code != 0 and "builds for ESP32-C3, none for ESP32-S3" in r.output


def test_release_folder_without_a_partition_table(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10)
    (src / "partition-table.bin").unlink()
    r = _flash_check("--firmware", str(src))
    assert r.exit_code != 0 and "missing partition-table binary" in r.output


def test_check_only_json_lists_the_parts(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10, otadata=False)
    r = _flash_check("--firmware", str(src), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [p["offset"] for p in doc["parts"]] == ["0x0", "0x8000", "0xf000", "0x20000"]
