"""Flash formats and NVS: images, partition tables, otadata, NVS build/read, config validation."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csi_edge.firmware import espimage, nodecfg, nvs, testkit


def test_our_images_pass_esptools_own_image_verification():
    from esptool.bin_image import LoadFirmwareImage

    for data in (testkit.bootloader(), testkit.app(64 << 10, "1.2.3")):
        img = LoadFirmwareImage("esp32s3", data)
        img.verify()  # raises on a bad checksum or SHA-256
        assert img.chip_id == 9
    info = espimage.parse_image(testkit.app(64 << 10, "1.2.3"))
    assert info.app is not None and info.app.version == "1.2.3"
    assert espimage.app_description_from_head(testkit.app(64 << 10, "7.7")[:0x200]).version == "7.7"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x00" + b[1:], "bad image magic 0x00"),
        (lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:], "mismatch"),
        (lambda b: b[:40], "runs past the end"),
    ],
)
def test_broken_images_are_rejected_with_the_reason(mutate, message):
    with pytest.raises(espimage.ImageError, match=message):
        espimage.parse_image(mutate(testkit.app(8 << 10)))


def test_wrong_chip_id_is_reported():
    info = espimage.parse_image(testkit.app(8 << 10, chip_id=5))
    assert info.chip_name == "ESP32-C3"


def test_partition_table_roundtrip_and_md5_check():
    raw = testkit.partition_table()
    table = espimage.parse_partition_table(raw)
    assert table.has_md5
    assert (table.nvs.offset, table.nvs.size) == (0x9000, 0x6000)
    assert table.otadata.offset == 0xF000
    assert [p.label for p in table.apps] == ["ota_0", "ota_1"]
    assert table.app_slot("ota_1").offset == 0x220000
    four = espimage.parse_partition_table(testkit.partition_table(4 << 20))
    assert four.app_slot("ota_1").offset == 0x1F0000
    corrupt = raw[:9] + bytes([raw[9] ^ 1]) + raw[10:]
    with pytest.raises(espimage.ImageError, match="MD5"):
        espimage.parse_partition_table(corrupt)
    with pytest.raises(espimage.ImageError, match="no partition entries"):
        espimage.parse_partition_table(b"\xff" * 0xC00)


def test_otadata_selects_the_slot_like_the_bootloader():
    assert espimage.ota_boot_slot(espimage.build_otadata(), 2) == 0  # blank -> ota_0
    assert espimage.ota_boot_slot(espimage.build_otadata(2), 2) == 1
    assert espimage.ota_boot_slot(espimage.build_otadata(3), 2) == 0
    bad = bytearray(espimage.build_otadata(2))
    bad[28] ^= 0xFF  # CRC broken in both copies -> ignored -> ota_0
    bad[0x1000 + 28] ^= 0xFF
    assert espimage.ota_boot_slot(bytes(bad), 2) == 0


def _full_config() -> dict[str, object]:
    cfg = nodecfg.defaults()
    cfg.update(
        ssid="Café Net",
        password="s3cret-pass",
        target_ip="192.168.1.20",
        node_id=42,
        chan_list=bytes([1, 6, 11]),
        filter_mac=bytes.fromhex("aabbccddeeff"),
        wasm_pubkey=bytes(range(32)),
        ota_psk="ota-token",
        zone_name="kitchen",
    )
    return cfg


def test_nvs_image_is_byte_identical_to_the_generator_cli(tmp_path):
    content = nodecfg.owned_namespaces(_full_config())
    image = nvs.build_image(content)
    (tmp_path / "cfg.csv").write_text(nvs.to_csv(content))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "esp_idf_nvs_partition_gen",
            "generate",
            str(tmp_path / "cfg.csv"),
            str(tmp_path / "cli.bin"),
            "0x6000",
        ],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "cli.bin").read_bytes() == image
    assert len(image) == 0x6000


def test_nvs_reader_returns_exact_types_and_values():
    cfg = _full_config()
    result = nvs.read_image(nvs.build_image(nodecfg.owned_namespaces(cfg)))
    assert result.problems == [] and not result.blank
    assert result.namespaces["csi_cfg"]["node_id"] == nvs.NvsValue("u8", 42)
    assert result.namespaces["csi_cfg"]["target_port"] == nvs.NvsValue("u16", 5005)
    assert result.namespaces["csi_cfg"]["dwell_ms"] == nvs.NvsValue("u32", 50)
    assert result.namespaces["csi_cfg"]["filter_mac"] == nvs.NvsValue(
        "blob", bytes.fromhex("aabbccddeeff")
    )
    assert result.namespaces["security"]["ota_psk"] == nvs.NvsValue("string", "ota-token")
    back, notes = nodecfg.from_nvs(result.namespaces)
    assert back == cfg and notes == []


def test_nvs_reader_blank_vs_garbage_and_type_strictness():
    assert nvs.read_image(b"\xff" * 0x6000).blank
    with pytest.raises(nvs.NvsError, match="no valid NVS page"):
        nvs.read_image(bytes(range(256)) * 96)
    wrong = {"csi_cfg": {"node_id": nvs.NvsValue("u16", 9), "ssid": nvs.NvsValue("string", "x")}}
    cfg, notes = nodecfg.from_nvs(nvs.read_image(nvs.build_image(wrong)).namespaces)
    assert cfg == {"ssid": "x"}
    assert "node_id is stored as u16" in notes[0]


def test_nvs_reader_detects_a_corrupted_entry():
    image = bytearray(nvs.build_image(nodecfg.owned_namespaces(_full_config())))
    image[64 + 32 * 1 + 9] ^= 0x55  # a key byte of entry 1 (the ssid header)
    result = nvs.read_image(bytes(image))
    assert any("CRC" in p for p in result.problems)


@settings(max_examples=40, deadline=None)
@given(
    ssid=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=10
    ),
    node_id=st.integers(0, 255),
    port=st.integers(0, 65535),
    chans=st.lists(st.sampled_from([1, 6, 11, 13, 36, 149]), min_size=1, max_size=6),
    blob=st.binary(min_size=0, max_size=300),
)
def test_nvs_roundtrip_property(ssid, node_id, port, chans, blob):
    content = {
        "csi_cfg": {
            "ssid": nvs.NvsValue("string", ssid),
            "node_id": nvs.NvsValue("u8", node_id),
            "target_port": nvs.NvsValue("u16", port),
            "chan_list": nvs.NvsValue("blob", bytes(chans)),
        },
        "other": {"b": nvs.NvsValue("blob", blob), "i": nvs.NvsValue("i32", -port)},
    }
    assert nvs.read_image(nvs.build_image(content)).namespaces == content


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ssid", "x" * 33, "at most 32 bytes"),
        ("ssid", "", "must not be empty"),
        ("password", "short", "WPA2 needs 8–63"),
        ("password", "p" * 64, "WPA2 needs 8–63"),
        ("target_ip", "gateway.local", "dotted IPv4"),
        ("target_ip", "300.1.1.1", "dotted IPv4"),
        ("target_ip", "fe80::1", "dotted IPv4"),
        ("node_id", 256, "0–255"),
        ("hop_count", 7, "1–6"),
        ("chan_list", bytes([1, 2, 3, 4, 5, 6, 7]), "1–6 channels"),
        ("chan_list", bytes([15]), "1–14 or 36–177"),
        ("dwell_ms", 5, ">= 10"),
        ("vital_win", 300, "32–256"),
        ("zone_name", "a-very-long-zone-name", "at most 15"),
        ("filter_mac", b"\x01\x02", "exactly 6 bytes"),
        ("wasm_pubkey", b"\x00" * 31, "exactly 32 bytes"),
        ("csi_channel", 20, "1–14 or 36–177"),
        ("ota_psk", "t" * 65, "at most 64"),
    ],
)
def test_values_outside_the_firmware_limits_are_refused(key, value, message):
    with pytest.raises(nodecfg.ConfigError, match=message):
        nodecfg.validate({key: value})


def test_valid_edge_values_and_cross_field_check():
    nodecfg.validate({"password": "", "node_id": 0, "csi_channel": 0, "password2": None})
    nodecfg.validate({"password": "ab" * 32})  # 64 hex digits = a raw PSK
    with pytest.raises(nodecfg.ConfigError, match="tdm-slot"):
        nodecfg.validate({"tdm_slot": 2, "tdm_nodes": 2})


def test_option_parsing_and_masking():
    assert nodecfg.parse_option("filter_mac", "AA-BB-CC-DD-EE-FF") == bytes.fromhex("aabbccddeeff")
    assert nodecfg.parse_option("chan_list", "1, 6,11") == bytes([1, 6, 11])
    assert nodecfg.parse_option("node_id", "0x10") == 16
    with pytest.raises(nodecfg.ConfigError, match="--filter-mac"):
        nodecfg.parse_option("filter_mac", "aa:bb:cc")
    with pytest.raises(nodecfg.ConfigError, match="--node-id"):
        nodecfg.parse_option("node_id", "seven")
    shown = nodecfg.display({"password": "hunter2hunter2", "ota_psk": "tok", "ssid": "n"})
    assert shown == {"password": nodecfg.MASK, "ota_psk": nodecfg.MASK, "ssid": "n"}
    assert (
        nodecfg.display({"password": "hunter2hunter2"}, reveal=True)["password"] == "hunter2hunter2"
    )


def test_cli_options_cover_every_nvs_key():
    from csi_edge.cli.commands.provision import _KEY_OPTIONS

    assert [k for k, _ in _KEY_OPTIONS] == [k.name for k in nodecfg.KEYS]
