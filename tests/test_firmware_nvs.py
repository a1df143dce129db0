"""Re-provisioning never corrupts NVS: entries csi-edge does not own are copied byte for byte.

Checked with ESP-IDF's own NVS partition parser (``nvs_tool.py --integrity-check``), which reads an
image the way the chip does, and key by key against csi-edge's reader. The parser is third-party
code kept outside the project: found by walking up from this folder to ``shared/tools`` (or
``$CSI_EDGE_SHARED_TOOLS``); the tests that need it skip with a message when it is absent.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.firmware import nodecfg, nvs, testkit
from csi_edge.firmware.emulator import Board, NodeOptions
from tests.test_firmware_provision import install

V = nvs.NvsValue


def shared_tool(name: str) -> Path | None:
    """Folder of a third-party checker (``esp-idf-nvs-tool``, ``esptool-tests``) or None."""
    env = os.environ.get("CSI_EDGE_SHARED_TOOLS")
    candidates = [Path(env) / name] if env else []
    for parent in Path(__file__).resolve().parents:
        candidates.append(parent / "shared" / "tools" / name)
    return next((c for c in candidates if c.is_dir()), None)


NVS_TOOL = shared_tool("esp-idf-nvs-tool")
needs_nvs_tool = pytest.mark.skipif(
    NVS_TOOL is None,
    reason="ESP-IDF's nvs_tool.py not found (shared/tools/esp-idf-nvs-tool above this checkout, "
    "or set CSI_EDGE_SHARED_TOOLS)",
)


def idf_check(image: bytes, tmp_path: Path) -> tuple[list[str], dict[tuple[str, str], object]]:
    """(integrity errors, {(namespace, key): value}) as ESP-IDF's parser sees the image."""
    f = tmp_path / "nvs-check.bin"
    f.write_bytes(image)
    tool = [sys.executable, str(NVS_TOOL / "nvs_tool.py")]
    chk = subprocess.run(
        tool + ["--integrity-check", "--format", "text", "--dump", "none", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    errors = [ln for ln in (chk.stdout + chk.stderr).splitlines() if "ERROR" in ln]
    dump = subprocess.run(
        tool + ["--format", "json", "--dump", "minimal", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    values: dict[tuple[str, str], object] = {}
    for e in json.loads(dump.stdout):
        k = (e["namespace"], e["key"])
        if e["encoding"] == "blob_data":
            values[k] = values.get(k, b"") + base64.b64decode(e["data"])  # type: ignore[operator]
        else:
            values[k] = e["data"]
    return errors, values


def ours(image: bytes) -> dict[tuple[str, str], object]:
    """csi-edge's reader, in the same shape as idf_check's values."""
    return {
        (ns, k): v.value
        for ns, keys in nvs.read_image(image).namespaces.items()
        for k, v in keys.items()
    }


# What the Wi-Fi driver and the PHY calibration leave in NVS once a board has joined a network
# (namespace and key names, blob sizes as ESP-IDF v5 writes them: sta.ssid = u32 length + 32
# bytes, sta.pswd 65, sta.pmk 32, sta.apinfo 700; phy/cal_data 1904 bytes, which the v2 format
# splits into chunks across pages).
DRIVER = {
    "nvs.net80211": {
        "sta.ssid": V("blob", b"\x07\0\0\0HomeNet" + bytes(25)),
        "sta.pswd": V("blob", b"s3cretpass1" + bytes(54)),
        "sta.pmk": V("blob", bytes(range(100, 132))),
        "sta.apinfo": V("blob", bytes(range(256)) * 2 + bytes(188)),
        "sta.chan": V("u8", 6),
        "sta.authmode": V("u8", 3),
    },
    "phy": {
        "cal_data": V("blob", bytes(i * 7 % 251 for i in range(1904))),
        "cal_version": V("u32", 4),
        "cal_mac": V("blob", bytes.fromhex("f412fa000001")),
    },
}


def driver_image(with_cfg: bool = True) -> bytes:
    content = dict(DRIVER)
    if with_cfg:
        content = {
            "nvs.net80211": DRIVER["nvs.net80211"],
            "csi_cfg": {
                "ssid": V("string", "OldNet"),
                "dwell_ms": V("u32", 120),
                "mystery": V("u16", 7),
            },
            "phy": DRIVER["phy"],
        }
    return nvs.build_image(content)


def test_rewrite_copies_foreign_entries_byte_for_byte():
    old = driver_image()
    res = nvs.rewrite_image(old, {"csi_cfg": {"ssid": V("string", "HomeNet")}})
    foreign = lambda img: {  # noqa: E731 - raw entry bytes of everything csi-edge does not own
        it.raw for it in nvs._written_items(img) if not (it.ns_index == 2 and it.key == "ssid")
    }
    assert foreign(old) == foreign(res.data)  # same bytes, same namespace indexes
    assert res.replaced == ["csi_cfg/ssid"] and res.dropped == []
    got = nvs.read_image(res.data).namespaces
    assert got["csi_cfg"]["ssid"] == V("string", "HomeNet")
    assert got["csi_cfg"]["mystery"] == V("u16", 7)  # an unknown key in our namespace is kept
    assert got["nvs.net80211"] == DRIVER["nvs.net80211"] and got["phy"] == DRIVER["phy"]


def test_a_full_partition_is_an_error_not_a_truncation():
    big = {"blobs": {f"b{i}": V("blob", bytes(1500)) for i in range(20)}}
    with pytest.raises(nvs.NvsError, match="too small"):
        nvs.rewrite_image(b"\xff" * 0x6000, big)


@needs_nvs_tool
def test_reprovision_of_a_board_with_wifi_state_passes_espidfs_integrity_check(tmp_path):
    with Board(flash_file=tmp_path / "flash.bin", node=NodeOptions(rate_hz=50)) as board:
        install(board)
        board.flash.write(0x9000, driver_image())
        before = ours(board.flash.read(0x9000, 0x6000))
        r = CliRunner().invoke(
            cli,
            [
                "provision",
                *testkit.emulator_link(board.port),
                "--json",
                "--ssid",
                "HomeNet",
                "--node-id",
                "4",
                "--target-ip",
                "127.0.0.1",
                "--ota-psk",
                "psk-abc",
            ],
        )
        assert r.exit_code == 0, r.output
        after = board.flash.read(0x9000, 0x6000)
    errors, idf = idf_check(after, tmp_path)
    assert errors == []  # no "Found duplicate entries", no CRC or state problems
    assert idf == ours(after)  # ESP-IDF's parser and csi-edge's reader agree key by key
    expected = dict(before)
    expected.update(
        {
            ("csi_cfg", "ssid"): "HomeNet",
            ("csi_cfg", "node_id"): 4,
            ("csi_cfg", "target_ip"): "127.0.0.1",
            ("security", "ota_psk"): "psk-abc",
        }
    )
    assert ours(after) == expected  # driver blobs untouched, nothing else added
    assert idf[("nvs.net80211", "sta.pmk")] == bytes(range(100, 132))  # not the all-zero dummy


@needs_nvs_tool
def test_a_board_corrupted_by_the_old_generator_path_is_repaired(tmp_path):
    """Images written through the generator's write_entry wrapper carry dummy sta.* copies
    first; ESP-IDF reports duplicates. Re-provisioning keeps the newest copy and drops the rest."""
    from esp_idf_nvs_partition_gen import nvs_partition_gen as gen

    out = io.BytesIO()
    n = gen.nvs_open(out, gen.check_size("0x6000")[0], gen.Page.VERSION2)
    gen.write_entry(n, "nvs.net80211", "namespace", "", "")
    for key, val in DRIVER["nvs.net80211"].items():
        if val.type == "blob":
            gen.write_entry(n, key, "data", "hex2bin", val.value.hex())
        else:
            gen.write_entry(n, key, "data", val.type, str(val.value))
    gen.nvs_close(n)
    corrupt = out.getvalue()
    errors, _ = idf_check(corrupt, tmp_path)
    assert any("duplicate" in e.lower() for e in errors)  # the bug, as ESP-IDF sees it
    res = nvs.rewrite_image(corrupt, nodecfg.owned_namespaces({"node_id": 2}))
    errors, idf = idf_check(res.data, tmp_path)
    assert errors == [] and idf == ours(res.data)
    assert {d.split("/")[1] for d in res.dropped} == {"sta.apinfo", "sta.pmk"}
    assert idf[("nvs.net80211", "sta.pmk")] == bytes(range(100, 132))
    assert idf[("nvs.net80211", "sta.apsw")] == b"\0\0"  # injected once, no second copy: kept


def test_first_provision_writes_only_what_was_given(tmp_path):
    with Board(flash_file=tmp_path / "flash.bin") as board:
        install(board)
        r = CliRunner().invoke(
            cli,
            [
                "provision",
                *testkit.emulator_link(board.port),
                "--json",
                "--ssid",
                "HomeNet",
                "--target-ip",
                "127.0.0.1",
            ],
        )
        assert r.exit_code == 0, r.output
        ns = nvs.read_image(board.flash.read(0x9000, 0x6000)).namespaces
    assert set(ns) == {"csi_cfg"} and set(ns["csi_cfg"]) == {"ssid", "target_ip"}
    assert "csi_channel" not in ns["csi_cfg"]  # the firmware's build setting applies


@pytest.mark.parametrize(
    ("board_cfg", "args", "expect"),
    [
        ({}, ["--chan-list", "1,6,11"], {"hop_count": 3, "chan_list": b"\x01\x06\x0b"}),
        ({}, ["--hop-count", "2", "--chan-list", "1,6"], {"hop_count": 2}),
        ({}, ["--hop-count", "1"], {"hop_count": 1}),
        ({"chan_list": b"\x01\x06"}, ["--hop-count", "2"], {"hop_count": 2}),
        (
            {},
            ["--hop-count", "3", "--chan-list", "1,6"],
            "--hop-count 3 does not match --chan-list 1,6",
        ),
        ({}, ["--hop-count", "3"], "--hop-count 3 does not match the default --chan-list 6"),
        (
            {"hop_count": 3, "chan_list": b"\x01\x06"},
            ["--node-id", "2"],
            "the board has hop_count 3",
        ),
    ],
)
def test_radio_settings_are_validated_together(tmp_path, board_cfg, args, expect):
    with Board(flash_file=tmp_path / "flash.bin") as board:
        install(board)
        owned = nodecfg.owned_namespaces(board_cfg)
        board.flash.write(0x9000, nvs.build_image(owned) if owned else b"\xff" * 0x6000)
        before = board.flash.read(0x9000, 0x6000)
        r = CliRunner().invoke(
            cli, ["provision", *testkit.emulator_link(board.port), "--target-ip", "10.0.0.2", *args]
        )
        got = nvs.read_image(board.flash.read(0x9000, 0x6000)).namespaces.get("csi_cfg", {})
        if isinstance(expect, str):
            assert r.exit_code == 1 and expect in r.output, r.output
            assert "--chan-list" in r.output and "--hop-count" in r.output
            assert board.flash.read(0x9000, 0x6000) == before  # board unchanged
        else:
            assert r.exit_code == 0, r.output
            for k, v in expect.items():
                assert got[k].value == v
