"""Release folders with variants per flash size (RuView's release_bins layout): the board's flash
size and the image headers choose the set; only true ambiguity is refused, naming --use."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.firmware import espimage, images, testkit
from csi_edge.firmware.emulator import Board

C6_CHIP_ID = 13


def ruview_release(root: Path) -> Path:
    """Like RuView's committed release_bins/: one folder for 8 MB and 4 MB boards, plus an
    ESP32-C6 build in a subfolder."""
    root.mkdir(parents=True)
    files = {
        "bootloader.bin": testkit.bootloader(),
        "partition-table.bin": testkit.partition_table(8 << 20),
        "partition-table-4mb.bin": testkit.partition_table(4 << 20),
        "ota_data_initial.bin": espimage.build_otadata(),
        "esp32-csi-node.bin": testkit.app(96 << 10, "0.6.5-8mb"),
        "esp32-csi-node-4mb.bin": testkit.app(80 << 10, "0.6.5-4mb", seed=3),
        "c6-onboarding/bootloader.bin": testkit.bootloader(C6_CHIP_ID),
        "c6-onboarding/esp32-csi-node.bin": testkit.app(32 << 10, "c6", C6_CHIP_ID),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def flash_json(board: Board, src: Path, *extra: str) -> dict:
    r = run("flash", *testkit.emulator_link(board.port), "--firmware", str(src), "--json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def on_board(board: Board) -> tuple[int, str]:
    """(end of the partition table's last partition, app version in ota_0) read off the flash."""
    table = espimage.parse_partition_table(board.flash.read(0x8000, 0xC00))
    end = max(p.offset + p.size for p in table.partitions)
    app = espimage.parse_image(board.flash.read(0x20000, 0x20000))
    return end, app.app.version


@pytest.mark.parametrize(
    "size, table_end, version",
    [(8 << 20, 0x600000, "0.6.5-8mb"), (4 << 20, 0x3C0000, "0.6.5-4mb")],
    ids=["8MB", "4MB"],
)
def test_board_flash_size_picks_table_and_app(tmp_path, size, table_end, version):
    src = ruview_release(tmp_path / "release_bins")
    with Board(flash_size=size, flash_file=tmp_path / "flash.bin") as board:
        res = flash_json(board, src)
        assert on_board(board) == (table_end, version)
        files = {p["role"]: Path(p["file"]).name for p in res["parts"]}
        suffix = "-4mb" if size == 4 << 20 else ""
        assert files["partition-table"] == f"partition-table{suffix}.bin"
        assert files["app"] == f"esp32-csi-node{suffix}.bin"
        assert files["bootloader"] == "bootloader.bin"  # not the C6 one
        assert res["version"] == version and res["flash_size"] == f"{size >> 20}MB"
        notes = " ".join(res["notes"])
        assert f"chosen for the {size >> 20} MB flash" in notes


def test_zip_with_a_merged_image_beside_the_parts(tmp_path):
    """A release zip (one top folder) that also carries the merged 8 MB image: the merged file
    is not a second app."""
    src = ruview_release(tmp_path / "rel")
    boot, table = testkit.bootloader(), testkit.partition_table(8 << 20)
    app = (src / "esp32-csi-node.bin").read_bytes()
    merged = bytearray(b"\xff" * (0x20000 + len(app)))
    merged[: len(boot)], merged[0x8000 : 0x8000 + len(table)] = boot, table
    merged[0x20000:] = app
    (src / "esp32-csi-node-merged.bin").write_bytes(bytes(merged))
    zpath = tmp_path / "esp32-csi-node-0.6.5.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in sorted(src.rglob("*.bin")):
            z.write(f, f"release_bins/{f.relative_to(src).as_posix()}")
    with Board(flash_size=4 << 20, flash_file=tmp_path / "flash.bin") as board:
        res = flash_json(board, zpath)
        assert on_board(board) == (0x3C0000, "0.6.5-4mb")
        assert res["flash_size"] == "4MB"
    fw = images.check(images.load(zpath), 8 << 20)
    assert fw.part("app").name.endswith("release_bins/esp32-csi-node.bin")


def test_check_only_without_a_size_lists_both_sets(tmp_path):
    src = ruview_release(tmp_path / "release_bins")
    r = run("flash", "-p", "/dev/null", "--check-only", "--json", "--firmware", str(src))
    assert r.exit_code == 0, r.output
    notes = json.loads(r.stdout)["notes"]
    assert any(
        "4 MB: partition-table-4mb.bin, esp32-csi-node-4mb.bin" in n
        and "8 MB: partition-table.bin, esp32-csi-node.bin" in n
        for n in notes
    ), notes


def test_a_larger_board_takes_the_largest_set_that_fits(tmp_path):
    src = ruview_release(tmp_path / "release_bins")
    fw = images.check(images.load(src), 16 << 20)
    assert Path(fw.part("partition-table").name).name == "partition-table.bin"
    assert fw.version == "0.6.5-8mb"


def test_app_variant_told_apart_by_its_image_header(tmp_path):
    """No size in the file names: the header's flash size pairs each app with its table."""
    src = ruview_release(tmp_path / "rel")
    (src / "esp32-csi-node-4mb.bin").unlink()
    (src / "node-small.bin").write_bytes(
        testkit.app(80 << 10, "small", seed=3, header_flash_size=4 << 20)
    )
    (src / "esp32-csi-node.bin").rename(src / "node-large.bin")
    assert images.check(images.load(src), 4 << 20).version == "small"
    assert images.check(images.load(src), 8 << 20).version == "0.6.5-8mb"


def test_true_ambiguity_is_refused_before_the_board_and_use_picks_one(tmp_path):
    src = ruview_release(tmp_path / "rel")
    (src / "other-node.bin").write_bytes(testkit.app(64 << 10, "9.9", seed=5, project="other"))
    (src / "esp32-csi-node.bin").rename(src / "node.bin")  # no "csi" tie-break left
    with Board(flash_size=8 << 20) as board:
        r = run("flash", *testkit.emulator_link(board.port), "--firmware", str(src))
        assert r.exit_code != 0
        assert "2 app files fit a 8 MB flash" in r.output, r.output
        assert "node.bin [esp32-csi-node 0.6.5-8mb, 8 MB (image header)]" in r.output
        assert "other-node.bin [other 9.9, 8 MB (image header)]" in r.output
        assert "--use" in r.output and "Traceback" not in r.output
        assert board.flash.read(0, 0x30000) == b"\xff" * 0x30000  # untouched
        res = flash_json(board, src, "--use", "other-node.bin")
        assert res["version"] == "9.9" and on_board(board) == (0x600000, "9.9")


def test_two_different_tables_for_one_size_are_ambiguous(tmp_path):
    src = ruview_release(tmp_path / "rel")
    parts = espimage.ruview_partitions(8 << 20)
    parts[-1].size -= 0x10000  # a different 8 MB layout
    (src / "partitions.bin").write_bytes(espimage.build_partition_table(parts))
    with pytest.raises(images.FirmwareError, match=r"2 partition-table files fit a 8 MB flash"):
        images.check(images.load(src), 8 << 20)
    fw = images.check(images.load(src, ("partitions.bin",)), 8 << 20)
    assert Path(fw.part("partition-table").name).name == "partitions.bin"
    # the 4 MB board is not ambiguous: one table is built for it
    assert images.check(images.load(src), 4 << 20).version == "0.6.5-4mb"


def test_use_mistakes_are_one_line_errors(tmp_path):
    src = ruview_release(tmp_path / "rel")
    r = run("flash", "-p", "/dev/null", "--check-only", "-f", str(src), "--use", "nope.bin")
    assert r.exit_code != 0 and "--use nope.bin: is not in the folder" in r.output
    assert "partition-table-4mb.bin" in r.output and "Traceback" not in r.output
    r = run("flash", "-p", "/dev/null", "--check-only", "-f", str(src), "--use", "bootloader.bin")
    assert r.exit_code != 0 and "matches several files" in r.output
    r = run(
        "flash", "-p", "/dev/null", "--check-only", "-f", str(src),
        "--use", "c6-onboarding/bootloader.bin",
    )  # fmt: skip
    assert r.exit_code != 0 and "wrong chip" in r.output and "ESP32-C6" in r.output
    (tmp_path / "app.bin").write_bytes(testkit.app(32 << 10))
    r = run("flash", "-p", "/dev/null", "--check-only", "-f", str(tmp_path / "app.bin"),
            "--use", "x.bin")  # fmt: skip
    assert r.exit_code != 0 and "not a release folder" in r.output


def test_a_single_set_is_taken_as_before(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10)
    fw = images.check(images.load(src), 8 << 20)
    assert not [n for n in fw.notes if "chosen" in n]
    assert {p.role for p in fw.parts} == {"bootloader", "partition-table", "otadata", "app"}
