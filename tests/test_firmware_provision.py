"""csi-edge flash / provision against the emulated board: end to end, and every bad input."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.firmware import espimage, nodecfg, nvs, testkit
from csi_edge.firmware.emulator import Board, NodeOptions
from tests.conftest import free_port, running_gateway

WIFI = {"HomeNet": "s3cretpass1"}
SECRET = "s3cretpass1"


def install(board: Board, version: str = "0.6.5-test") -> None:
    """Put a valid firmware set straight into the emulated flash (fast path for NVS tests)."""
    for off, data in (
        (0, testkit.bootloader()),
        (0x8000, testkit.partition_table()),
        (0xF000, espimage.build_otadata()),
        (0x20000, testkit.app(64 << 10, version)),
    ):
        board.flash.write(off, data)


@pytest.fixture
def board(tmp_path):
    with Board(
        flash_file=tmp_path / "flash.bin", node=NodeOptions(wifi=dict(WIFI), rate_hz=50)
    ) as b:
        yield b


def conn(board: Board) -> list[str]:
    return testkit.emulator_link(board.port)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def provision_json(board: Board, *args: str) -> dict:
    r = run("provision", *conn(board), "--json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def receive_frames(port: int, seconds: float = 1.0):
    """The gateway's UDP ingest (csi_edge.sources.udp) on 127.0.0.1:port for a while."""
    from csi_edge.frames import FrameBatch

    batches = []

    async def go():
        consumers = [lambda res: batches.append(res.frames)]
        async with running_gateway(consumers=consumers, settle=seconds, port=port):
            pass

    asyncio.run(go())
    return FrameBatch.concat(batches) if batches else None


@pytest.mark.slow
def test_end_to_end_flash_provision_wait_and_gateway_ingest(board, tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=1 << 20, version="0.6.5-e2e")
    base = [sys.executable, "-m", "csi_edge"]
    r = subprocess.run(
        base + ["flash", *conn(board), "--firmware", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "flashed and verified ESP32-S3 f4:12:fa:00:00:01 (8MB) with app 0.6.5-e2e" in r.stdout
    port = free_port(socket.SOCK_DGRAM)
    r = subprocess.run(
        base
        + [
            "provision",
            *conn(board),
            "--ssid",
            "HomeNet",
            "--password",
            SECRET,
            "--target-ip",
            "127.0.0.1",
            "--target-port",
            str(port),
            "--node-id",
            "7",
            "--zone",
            "hall",
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("streaming: node 7 → 127.0.0.1:")
    assert "Node ID: 7" in r.stderr and "CSI streaming active" in r.stderr
    assert SECRET not in r.stdout + r.stderr
    frames = receive_frames(port)
    assert frames is not None and len(frames) > 10
    assert set(frames.meta["node_id"].tolist()) == {7}
    # the same board, driven by the esptool command line itself: a new app, verify, read NVS back
    app2 = tmp_path / "app2.bin"
    app2.write_bytes(testkit.app(256 << 10, "0.6.6-esptool"))
    et = [sys.executable, "-m", "esptool", *testkit.emulator_link(board.port, baud=None)]
    for args in (
        ["chip-id"],
        ["write-flash", "0x20000", str(app2)],
        ["verify-flash", "0x20000", str(app2)],
        ["read-flash", "0x9000", "0x6000", str(tmp_path / "nvs.bin")],
    ):
        r = subprocess.run(et + args, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    cfg, _ = nodecfg.from_nvs(nvs.read_image((tmp_path / "nvs.bin").read_bytes()).namespaces)
    assert (cfg["ssid"], cfg["node_id"], cfg["zone_name"], cfg["target_port"]) == (
        "HomeNet",
        7,
        "hall",
        port,
    )
    shown = provision_json(board, "--show")
    assert (
        shown["firmware_version"] == "0.6.6-esptool" and shown["config"]["password"] == nodecfg.MASK
    )


def test_provision_keeps_keys_not_mentioned(board):
    install(board)
    board_ns = {
        "csi_cfg": {"dwell_ms": nvs.NvsValue("u32", 120), "ssid": nvs.NvsValue("string", "Old")},
        "nvs.net80211": {"sta.chan": nvs.NvsValue("u8", 11)},
    }
    board.flash.write(0x9000, nvs.build_image(board_ns))
    out = provision_json(
        board,
        "--ssid",
        "HomeNet",
        "--password",
        SECRET,
        "--target-ip",
        "127.0.0.1",
        "--filter-mac",
        "aa:bb:cc:dd:ee:ff",
        "--ota-psk",
        "tok-123",
    )
    assert out["written"] and out["verified"] and out["config"]["password"] == nodecfg.MASK
    assert set(out["changed"]) == {"ssid", "password", "target_ip", "filter_mac", "ota_psk"}
    out = provision_json(board, "--node-id", "9")
    assert out["changed"] == ["node_id"]
    ns = nvs.read_image(board.flash.read(0x9000, 0x6000)).namespaces
    assert ns["csi_cfg"]["dwell_ms"] == nvs.NvsValue("u32", 120)  # kept from before
    assert ns["csi_cfg"]["ssid"].value == "HomeNet" and ns["csi_cfg"]["node_id"] == nvs.NvsValue(
        "u8", 9
    )
    assert ns["security"]["ota_psk"] == nvs.NvsValue("string", "tok-123")
    assert ns["nvs.net80211"] == {"sta.chan": nvs.NvsValue("u8", 11)}  # other namespaces survive
    again = provision_json(board, "--node-id", "9")
    assert not again["written"]  # identical image: nothing written


def test_show_masks_secrets_unless_revealed(board):
    install(board)
    provision_json(board, "--ssid", "HomeNet", "--password", SECRET, "--target-ip", "127.0.0.1")
    r = run("provision", *conn(board), "--show")
    assert r.exit_code == 0 and "HomeNet" in r.stdout and SECRET not in r.stdout
    assert nodecfg.MASK in r.stdout and "0.6.5-test" in r.stdout
    shown = provision_json(board, "--show", "--reveal")
    assert shown["config"]["password"] == SECRET


def test_the_wifi_password_comes_from_stdin_or_a_file_not_the_command_line(board, tmp_path):
    install(board)
    r = CliRunner().invoke(
        cli,
        ["provision", *conn(board), "--json", "--ssid", "HomeNet", "--password", "-",
         "--target-ip", "127.0.0.1"],
        input=SECRET + "\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert SECRET not in r.output
    assert provision_json(board, "--show", "--reveal")["config"]["password"] == SECRET
    secret_file = tmp_path / "wifi.pw"
    secret_file.write_text("an0ther-secret\n")
    provision_json(board, "--password-file", str(secret_file))
    assert provision_json(board, "--show", "--reveal")["config"]["password"] == "an0ther-secret"
    r = run("provision", *conn(board), "--password", "x", "--password-file", str(secret_file))
    assert r.exit_code == 2 and "not both" in r.output
    r = run("provision", *conn(board), "--password-file", str(tmp_path / "none"))
    assert r.exit_code == 1 and "none: cannot open" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ssid", "x" * 33], "--ssid (csi_cfg/ssid): must be at most 32 bytes"),
        (
            ["--ssid", "HomeNet", "--password", "short"],
            "--password (csi_cfg/password): WPA2 needs 8–63",
        ),
        (["--target-ip", "gateway.lan"], "--target-ip (csi_cfg/target_ip): must be a dotted IPv4"),
        (["--node-id", "300"], "--node-id (csi_cfg/node_id): must be 0–255"),
        (["--node-id", "three"], "--node-id: cannot parse 'three'"),
        (["--filter-mac", "aa:bb"], "--filter-mac: cannot parse"),
    ],
)
def test_invalid_values_are_refused_before_touching_the_board(board, args, message):
    install(board)
    before = hashlib.md5(board.flash.read(0, 0x30000)).hexdigest()
    r = (
        run("provision", *conn(board), "--target-ip", "127.0.0.1", *args)
        if "--target-ip" not in args
        else run("provision", *conn(board), *args)
    )
    assert r.exit_code != 0 and message in r.output, r.output
    assert "Traceback" not in r.output
    assert board.loader.stats["commands"] == 0  # never even connected
    assert hashlib.md5(board.flash.read(0, 0x30000)).hexdigest() == before


def test_unreadable_nvs_leaves_the_board_unchanged(board):
    install(board)
    garbage = bytes(range(256)) * 96
    board.flash.write(0x9000, garbage)
    before = hashlib.md5(board.flash.read(0, board.flash.size)).hexdigest()
    r = run("provision", *conn(board), "--ssid", "HomeNet", "--target-ip", "127.0.0.1")
    assert r.exit_code != 0
    assert "NVS partition at 0x9000" in r.output and "unreadable" in r.output
    assert "board left unchanged" in r.output and "--force-defaults" in r.output
    assert hashlib.md5(board.flash.read(0, board.flash.size)).hexdigest() == before
    out = provision_json(board, "--ssid", "HomeNet", "--target-ip", "127.0.0.1", "--force-defaults")
    assert out["written"] and any("--force-defaults" in n for n in out["notes"])
    assert (
        nvs.read_image(board.flash.read(0x9000, 0x6000)).namespaces["csi_cfg"]["ssid"].value
        == "HomeNet"
    )


def test_wrong_chip_is_refused(tmp_path):
    src = testkit.write_release(tmp_path / "fw", app_size=32 << 10)
    with Board(chip="esp32c3") as c3:
        r = run("flash", *conn(c3), "--firmware", str(src))
        assert r.exit_code != 0
        assert "wrong chip: found ESP32-C3, this firmware is for ESP32-S3" in r.output
        assert c3.flash.read(0, 16) == b"\xff" * 16
        r = run("provision", *conn(c3), "--ssid", "HomeNet", "--target-ip", "127.0.0.1")
        assert "wrong chip: found ESP32-C3" in r.output


def test_flash_an_app_alone_uses_the_boards_partition_table(board, tmp_path):
    install(board, "0.1-old")
    board.flash.erase(0xF000, 0x2000)
    board.flash.write(0xF000, espimage.build_otadata(2))  # the board last booted ota_1
    (tmp_path / "app.bin").write_bytes(testkit.app(64 << 10, "0.2-new"))
    r = run("flash", *conn(board), "--firmware", str(tmp_path / "app.bin"), "--json")
    assert r.exit_code == 0, r.output
    assert espimage.ota_boot_slot(board.flash.read(0xF000, 0x2000), 2) == 0  # otadata reset
    info = espimage.parse_image(board.flash.read(0x20000, 0x20000))
    assert info.app.version == "0.2-new"


def test_wait_reads_the_boot_log_that_lags_behind_the_first_frame():
    """Under load the first UDP frame can arrive while the boot log is still in the serial
    buffer: the banner (version, node id) and the streaming line must still be taken in."""
    from csi_edge.codecs.ruview import encode_raw_frame
    from csi_edge.firmware import bootwatch

    log = [
        "I (12) main: ESP32-S3 CSI Node (ADR-018) — v0.6.5 — Node ID: 7",
        "I (20) wifi: connecting to SSID 'HomeNet'",
        "I (900) wifi: Got IP: 192.168.1.77",
        "I (950) csi: CSI streaming active → 127.0.0.1:5005",
        "I (2000) csi: later line",
    ]
    lines = iter(log)
    sock = bootwatch.bind_udp("127.0.0.1", 0)
    assert sock is not None
    with sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(encode_raw_frame(7, 0, bytes(128)), sock.getsockname())
        time.sleep(0.05)  # the frame is queued before the first log line is read
        res = bootwatch.watch(
            lambda _timeout: next(lines, None), sock, node_id=7, target=("127.0.0.1", 5005)
        )
    assert res.streaming and res.frames == 1
    assert (res.version, res.node_id, res.ip) == ("0.6.5", 7, "192.168.1.77")
    assert res.log == log[:4]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong-password", "firewall", "no-ip"])
def test_wait_explains_why_not_streaming(tmp_path, case):
    opts = NodeOptions(
        wifi=dict(WIFI), drop_udp=case == "firewall", dhcp=case != "no-ip", rate_hz=50
    )
    with Board(node=opts) as b:
        install(b)
        pw = "wrongpass99" if case == "wrong-password" else SECRET
        r = run(
            "provision",
            *conn(b),
            "--ssid",
            "HomeNet",
            "--password",
            pw,
            "--target-ip",
            "127.0.0.1",
            "--target-port",
            str(free_port(socket.SOCK_DGRAM)),
            "--wait",
            "--frame-timeout",
            "1",
            "--wait-timeout",
            "3",
        )
        assert r.exit_code == 4  # DEVICE: the board did not stream
        last = r.stdout.strip().splitlines()[-1]
        if case == "wrong-password":
            assert last == "not streaming: Wi-Fi failed after 10 retries: check --ssid/--password"
        elif case == "no-ip":
            assert (
                last
                == "not streaming: no IP address from the access point (DHCP): check the network"
            )
        else:
            assert "nothing arrived in 1 s: check the firewall and target IP" in last


def test_unprovisioned_node_boots_on_defaults(board):
    install(board)
    board.reset("run")
    import time

    for _ in range(50):
        if board.status()["node_state"] in ("streaming", "wifi-failed"):
            break
        time.sleep(0.05)
    # compiled default SSID wifi-densepose is not a known network here
    assert board.status()["node_state"] == "wifi-failed" and board.status()["node_id"] == 1


def _inventory(tmp_path, boards: list[Board], ids: list[int]) -> str:
    lines = ["[defaults]", 'ssid = "HomeNet"', 'target_ip = "127.0.0.1"', ""]
    for i, (b, nid) in enumerate(zip(boards, ids, strict=True)):
        mac = "f4:12:fa:00:00:%02x" % (i + 1)
        lines += [
            "[[boards]]",
            f'port = "{b.port}"',
            f'mac = "{mac}"',
            f"node_id = {nid}",
            f'zone = "room{i}"',
            "",
        ]
    path = tmp_path / "fleet.toml"
    path.write_text("\n".join(lines))
    return str(path)


def test_fleet_refuses_duplicate_node_ids_before_touching_any_board(tmp_path):
    with Board() as a, Board(mac=bytes.fromhex("f412fa000002")) as b:
        inv = _inventory(tmp_path, [a, b], [4, 4])
        r = run(
            "provision",
            "--inventory",
            inv,
            "--password",
            SECRET,
            "--before",
            "no-reset",
            "--connect-attempts",
            "1",
        )
        assert (
            r.exit_code != 0
            and "duplicate node_id 4" in r.output
            and "no board was touched" in r.output
        )
        assert a.loader.stats["commands"] == 0 and b.loader.stats["commands"] == 0


def test_fleet_provisions_each_board_and_records_results_without_secrets(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with (
        Board() as a,
        Board(mac=bytes.fromhex("f412fa000002")) as b,
        Board(mac=bytes.fromhex("f412fa0000ff")) as c,
    ):
        for x in (a, b, c):
            install(x, "0.6.5-fleet")
        inv = _inventory(tmp_path, [a, b, c], [1, 2, 3])  # c's MAC does not match the inventory
        r = run(
            "provision",
            "--inventory",
            inv,
            "--password",
            SECRET,
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "--connect-attempts",
            "1",
            "--baud",
            "921600",
        )
        assert r.exit_code == 4, r.output  # DEVICE: a board failed
        results_path = tmp_path / "fleet.results.json"
        text = results_path.read_text()
        rows = json.loads(text)["boards"]
        assert [
            (x["mac"], x["node_id"], x["zone"], x["firmware_version"], x["status"])
            for x in rows[:2]
        ] == [
            ("f4:12:fa:00:00:01", 1, "room0", "0.6.5-fleet", "ok"),
            ("f4:12:fa:00:00:02", 2, "room1", "0.6.5-fleet", "ok"),
        ]
        assert rows[2]["status"].startswith("error:") and "f4:12:fa:00:00:ff" in rows[2]["status"]
        assert nvs.read_image(c.flash.read(0x9000, 0x6000)).blank  # left unchanged
        for x, nid in ((a, 1), (b, 2)):
            ns = nvs.read_image(x.flash.read(0x9000, 0x6000)).namespaces["csi_cfg"]
            assert ns["node_id"].value == nid and ns["password"].value == SECRET
    assert SECRET not in text and SECRET not in r.output and SECRET not in caplog.text


def test_target_ip_defaults_to_this_gateway_only_when_the_board_has_none(board):
    from csi_edge.firmware.provision import lan_address

    install(board)
    out = provision_json(board, "--ssid", "HomeNet")
    lan = lan_address()
    assert out["config"]["target_ip"] == (lan or "192.168.1.100")
    provision_json(board, "--target-ip", "127.0.0.1")
    out = provision_json(board, "--node-id", "5")
    assert out["config"]["target_ip"] == "127.0.0.1"
    if lan:
        assert any("kept from the board" in n for n in out["notes"])


def test_board_without_partition_table_falls_back_to_0x9000(board):
    out = provision_json(board, "--ssid", "HomeNet", "--target-ip", "127.0.0.1")  # blank flash
    assert out["nvs_offset"] == "0x9000" and out["firmware_version"] is None
    assert any("assuming NVS at 0x9000" in n for n in out["notes"])
    assert (
        nvs.read_image(board.flash.read(0x9000, 0x6000)).namespaces["csi_cfg"]["ssid"].value
        == "HomeNet"
    )


@pytest.mark.parametrize(
    ("edit", "extra", "message"),
    [
        (lambda t: t.replace("[defaults]", "[default]"), [], "unknown table(s) 'default'"),
        (lambda t: t.replace('port = "B"', 'port = "A"'), [], "duplicate port"),
        (lambda t: t.replace("f4:12:fa:00:00:02", "F4:12:FA:00:00:01"), [], "duplicate mac"),
        (
            lambda t: t.replace("node_id = 5", "node_id = 5\ntdm_slot = 0").replace(
                "node_id = 4", "node_id = 4\ntdm_slot = 0"
            ),
            [],
            "duplicate tdm_slot 0",
        ),
        (lambda t: t, ["--node-id", "3"], "--node-id cannot be used with --inventory"),
    ],
)
def test_fleet_inventory_mistakes_are_refused_before_any_board(tmp_path, edit, extra, message):
    with Board() as a, Board(mac=bytes.fromhex("f412fa000002")) as b:
        text = _inventory(tmp_path, [a, b], [4, 5])
        body = Path(text).read_text().replace(a.port, "A").replace(b.port, "B")
        Path(text).write_text(
            edit(body).replace('"A"', f'"{a.port}"').replace('"B"', f'"{b.port}"')
        )
        r = run(
            "provision",
            "--inventory",
            text,
            *extra,
            "--before",
            "no-reset",
            "--connect-attempts",
            "1",
        )
        assert r.exit_code != 0 and message in r.output, r.output
        assert a.loader.stats["commands"] == 0 and b.loader.stats["commands"] == 0


def test_fleet_command_line_beats_defaults(tmp_path):
    with Board(flash_file=tmp_path / "a.bin") as a:
        install(a)
        inv = _inventory(tmp_path, [a], [4])
        r = run(
            "provision",
            "--inventory",
            inv,
            "--ssid",
            "CliNet",
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "--connect-attempts",
            "1",
            "--json",
        )
        assert r.exit_code == 0, r.output
        ns = nvs.read_image(a.flash.read(0x9000, 0x6000)).namespaces
    assert ns["csi_cfg"]["ssid"].value == "CliNet" and ns["csi_cfg"]["node_id"].value == 4


def test_finding_a_board_by_mac_resets_every_probed_board_back_into_its_firmware(tmp_path):
    from csi_edge.firmware import provision as prov

    with (
        Board(flash_file=tmp_path / "a.bin", mac=bytes.fromhex("f412fa0000aa")) as a,
        Board(flash_file=tmp_path / "b.bin", mac=bytes.fromhex("f412fa0000bb")) as b,
    ):
        install(a)
        install(b)
        port = prov.find_port_by_mac(
            "F4:12:FA:00:00:BB", ports=[a.port, b.port], before="no-reset", baud=115200
        )
        assert port == b.port
        for board in (a, b):  # neither is left in the flasher: both boot their firmware again
            for _ in range(100):
                st = board.status()
                if st["mode"] == "app" and st["node_state"] != "booting":
                    break
                time.sleep(0.05)
            assert st["mode"] == "app" and st["boots"] >= 1, st
        with pytest.raises(prov.ProvisionError, match="no connected board has MAC .* 2 port"):
            prov.find_port_by_mac("f4:12:fa:00:00:cc", ports=[a.port, b.port], before="no-reset")
