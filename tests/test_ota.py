"""``csi-edge ota`` end to end: real HTTP on loopback against emulated RuView nodes, which write
their emulated flash, reboot through the bootloader's slot choice and stream real ADR-018 CSI."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.firmware import espimage, nodecfg, nvs, ota, otapsk, testkit
from csi_edge.firmware.emulator import Board, NodeOptions
from csi_edge.firmware.emulator.ota import OTA_MAX_SIZE
from tests.conftest import free_port

PSKS = {1: "psk-node-one", 2: "psk-node-two", 3: "psk-node-three"}


def wait_streaming(boards) -> None:
    """Until every board's firmware streams (its OTA server is up by then)."""
    deadline = time.monotonic() + 10
    while any(b.status()["node_state"] != "streaming" for b in boards):
        assert time.monotonic() < deadline, [b.status() for b in boards]
        time.sleep(0.05)


class Fleet:
    """Emulated nodes with the OTA endpoint, all streaming to one UDP port on loopback."""

    def __init__(
        self, faults: dict[int, str] | None = None, n: int = 3, csi_port: int | None = None
    ) -> None:
        self.csi_port = csi_port or free_port(socket.SOCK_DGRAM)  # SOCK_DGRAM
        self.boards: dict[int, Board] = {}
        for nid in range(1, n + 1):
            opts = NodeOptions(
                ota_port=0, ota_reboot_delay=0.2, ota_fault=(faults or {}).get(nid), rate_hz=20
            )
            b = Board(flash_size=4 << 20, node=opts, mac=bytes.fromhex(f"f412fa0000{nid:02x}"))
            b.start()
            testkit.install_node(b.flash, node_id=nid, target_port=self.csi_port, ota_psk=PSKS[nid])
            b.reset("run")
            self.boards[nid] = b
        wait_streaming(self.boards.values())

    def node(self, nid: int) -> str:
        return f"127.0.0.1:{self.boards[nid].ota.port}#{nid}"

    def close(self) -> None:
        for b in self.boards.values():
            b.close()


@pytest.fixture
def fleet_factory():
    made: list[Fleet] = []

    def make(**kw) -> Fleet:
        made.append(Fleet(**kw))
        return made[-1]

    yield make
    for f in made:
        f.close()


@pytest.fixture
def new_image(tmp_path):
    path = tmp_path / "esp32-csi-node.bin"
    path.write_bytes(testkit.app(300 << 10, "0.9.1", seed=7))
    return path


def run_ota(fleet: Fleet, image, *nodes: str, psk: str | None = None, extra=()):
    """``csi-edge ota`` in this process (click's runner) against the fleet; returns (code, report)."""
    args = [
        "ota", str(image), *nodes, "--csi-port", str(fleet.csi_port), "--boot-timeout", "8",
        "--frame-timeout", "3", "--json", *extra,
    ]  # fmt: skip
    env = {"CSI_EDGE_OTA_PSK": psk} if psk else {}
    r = CliRunner().invoke(cli, args, env=env)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    out = r.stdout.strip().splitlines()
    return r.exit_code, (json.loads(out[-1]) if out and out[-1].startswith("{") else r.output)


def remember_psks(fleet: Fleet) -> None:
    for nid in fleet.boards:
        otapsk.remember(None, nid, PSKS[nid])


@pytest.fixture(autouse=True)
def _psk_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CSI_EDGE_STATE_DIR", str(tmp_path / "state"))


def running_version(b: Board) -> tuple[str, str]:
    """What the board's own flash says it boots: (version, slot label)."""
    od = b.flash.read(0xF000, espimage.OTADATA_SIZE)
    slot = ["ota_0", "ota_1"][espimage.ota_boot_slot(od, 2)]
    off = {"ota_0": 0x20000, "ota_1": 0x1F0000}[slot]
    return espimage.app_description_from_head(b.flash.read(off, 0x200)).version, slot


# ---------------------------------------------------------------- the emulated endpoint
def test_emulated_endpoint_status_psk_and_size_cap(fleet_factory):
    fleet = fleet_factory(n=1)
    port = fleet.boards[1].ota.port

    def call(method, path, headers, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()

    code, body = call("GET", "/ota/status", {"Authorization": f"Bearer {PSKS[1]}"})
    st = json.loads(body)
    assert code == 200 and st["version"] == "0.8.0" and st["max_size"] == OTA_MAX_SIZE
    assert (st["running_partition"], st["next_partition"]) == ("ota_0", "ota_1")
    assert call("GET", "/ota/status", {"Authorization": "Bearer nope"})[0] == 401
    assert call("GET", "/ota/status", {})[0] == 401
    big = b"\xe9" + b"\0" * OTA_MAX_SIZE  # one byte over the cap
    code, body = call("POST", "/ota", {"Authorization": f"Bearer {PSKS[1]}"}, big)
    assert code == 400 and b"Invalid image size" in body
    assert running_version(fleet.boards[1]) == ("0.8.0", "ota_0")  # nothing written


def test_node_without_psk_refuses_everything(tmp_path):
    with Board(flash_size=4 << 20, node=NodeOptions(ota_port=0)) as b:
        testkit.install_node(b.flash, node_id=1, target_port=free_port(socket.SOCK_DGRAM))
        b.reset("run")
        wait_streaming([b])
        t = ota.Target("127.0.0.1", b.ota.port, 1, psk="anything")
        with pytest.raises(ota.OtaError, match="no OTA PSK .*HTTP 403"):
            ota.get_status(t)


# ---------------------------------------------------------------- csi-edge ota
def test_three_nodes_updated_canary_first_and_streaming_again(fleet_factory, new_image):
    fleet = fleet_factory()
    remember_psks(fleet)
    code, rep = run_ota(fleet, new_image, fleet.node(2), fleet.node(1), fleet.node(3))
    assert code == 0, rep
    assert rep["ok"] and rep["image_version"] == "0.9.1"
    assert [n["node"].split("(")[-1] for n in rep["nodes"]] == ["node 2)", "node 1)", "node 3)"]
    for n in rep["nodes"]:
        assert n["status"] == "updated", n
        assert (n["before"], n["after"], n["partition"]) == ("0.8.0", "0.9.1", "ota_1")
        assert "CSI frames on UDP" in n["message"]
    for b in fleet.boards.values():
        assert running_version(b) == ("0.9.1", "ota_1")  # the flash itself, not just the answer
        assert b.boots == 2 and b.status()["node_state"] == "streaming"
    # same image again: nothing to do, nothing sent
    code, rep = run_ota(fleet, new_image, fleet.node(1))
    assert code == 0 and rep["nodes"][0]["status"] == "skipped"
    assert fleet.boards[1].boots == 2


def test_wrong_psk_refused_before_any_upload(fleet_factory, new_image):
    fleet = fleet_factory(n=2)
    code, rep = run_ota(fleet, new_image, fleet.node(1), fleet.node(2), psk="psk-node-one")
    assert code == 4
    one, two = rep["nodes"]
    assert two["status"] == "refused" and "refused the PSK (HTTP 401)" in two["message"]
    assert one["status"] == "not attempted" and one["before"] == "0.8.0"
    assert all(b.ota.uploads == 0 for b in fleet.boards.values())  # node 1 was not touched either
    assert running_version(fleet.boards[1]) == ("0.8.0", "ota_0")


def test_oversized_image_refused_against_max_size(fleet_factory, tmp_path):
    fleet = fleet_factory(n=1)
    big = tmp_path / "big.bin"
    big.write_bytes(testkit.app(OTA_MAX_SIZE + (20 << 10), "0.9.1"))
    code, rep = run_ota(fleet, big, fleet.node(1), psk=PSKS[1])
    assert code == 1
    assert rep["nodes"][0]["status"] == "refused" and "max_size" in rep["nodes"][0]["message"]
    assert fleet.boards[1].ota.uploads == 0


def test_dropped_connection_is_a_failure_and_node_stays_on_old_version(fleet_factory, new_image):
    fleet = fleet_factory(n=2, faults={1: "crash"})
    remember_psks(fleet)
    code, rep = run_ota(fleet, new_image, fleet.node(1), fleet.node(2))
    assert code == 5
    canary, second = rep["nodes"]
    assert canary["status"] == "failed" and "connection dropped" in canary["message"]
    assert canary["after"] == "0.8.0" and canary["partition"] == "ota_0"  # rebooted, old image
    assert second["status"] == "not attempted" and second["after"] == "0.8.0"
    assert fleet.boards[2].ota.uploads == 0
    assert running_version(fleet.boards[1]) == ("0.8.0", "ota_0")


@pytest.mark.slow
def test_node_that_never_streams_again_stops_the_rollout(fleet_factory, new_image):
    """The failing canary: it installs and reports the new version but sends no CSI."""
    fleet = fleet_factory(faults={1: "silent"})
    remember_psks(fleet)
    code, rep = run_ota(fleet, new_image, fleet.node(1), fleet.node(2), fleet.node(3))
    assert code == 5
    canary, *rest = rep["nodes"]
    assert canary["status"] == "failed" and "does not stream" in canary["message"]
    assert canary["after"] == "0.9.1"  # no rollback on RuView: it stays on the new image
    assert [n["status"] for n in rest] == ["not attempted", "not attempted"]
    assert [n["after"] for n in rest] == ["0.8.0", "0.8.0"]
    assert all(fleet.boards[i].ota.uploads == 0 for i in (2, 3))


@pytest.mark.slow
def test_node_that_does_not_come_back(fleet_factory, new_image):
    fleet = fleet_factory(n=2, faults={1: "dark"})
    remember_psks(fleet)
    code, rep = run_ota(
        fleet, new_image, fleet.node(1), fleet.node(2), extra=["--boot-timeout", "3"]
    )
    assert code == 5
    canary = rep["nodes"][0]
    assert canary["status"] == "failed" and "did not come back within 3 s" in canary["message"]
    assert canary["after"] is None
    assert rep["nodes"][1]["status"] == "not attempted"


def test_downgrade_needs_force_and_dry_run_sends_nothing(fleet_factory, tmp_path):
    fleet = fleet_factory(n=1)
    old = tmp_path / "old.bin"
    old.write_bytes(testkit.app(100 << 10, "0.7.9"))
    code, rep = run_ota(fleet, old, fleet.node(1), psk=PSKS[1])
    assert code == 1 and "downgrade from 0.8.0" in rep["nodes"][0]["message"]
    code, rep = run_ota(fleet, old, fleet.node(1), psk=PSKS[1], extra=["--force", "--dry-run"])
    assert code == 0 and rep["dry_run"] and rep["nodes"][0]["status"] == "would update"
    assert fleet.boards[1].ota.uploads == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00" * 4096, "bad image magic 0x00 (expected 0xe9)"),
        (testkit.app(64 << 10, chip_id=0), "image is for ESP32, the nodes are ESP32-S3"),
        (testkit.bootloader(), "no app descriptor"),
    ],
    ids=["magic", "chip", "no-descriptor"],
)
def test_bad_images_refused_in_one_line(tmp_path, data, expected):
    img = tmp_path / "x.bin"
    img.write_bytes(data)
    r = subprocess.run(
        [sys.executable, "-m", "csi_edge", "ota", str(img), "127.0.0.1:9#1", "--psk", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stderr
    assert expected in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_project_name_checked(tmp_path):
    img = tmp_path / "x.bin"
    desc = espimage.build_app_desc("0.9.0", project="other-fw")
    img.write_bytes(espimage.build_image([(0x3C000020, desc + b"\0" * 1024)]))
    with pytest.raises(ota.InputError, match="project 'other-fw', expected 'esp32-csi-node'"):
        ota.check_image(img)


def test_node_syntax_and_missing_psk(tmp_path):
    t = ota.parse_node("192.168.1.21#4")
    assert (t.host, t.port, t.node_id) == ("192.168.1.21", 8032, 4)
    with pytest.raises(ota.InputError, match="HOST"):
        ota.parse_node("a:b:c")
    with pytest.raises(ota.InputError, match="no OTA PSK known for 192.168.1.21:8032"):
        ota.attach_psks([t], None)
    assert "secret-value" not in repr(ota.Target("h", psk="secret-value"))


# ---------------------------------------------------------------- PSK store
def test_psk_store_is_private_and_found_by_mac_or_node_id():
    p = otapsk.remember("F4:12:FA:00:00:01", 1, "one")
    otapsk.remember(None, 2, "two")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert otapsk.find("f4:12:fa:00:00:01") == "one" and otapsk.find(None, 1) == "one"
    assert otapsk.find(None, 2) == "two" and otapsk.find(None, 3) is None
    otapsk.remember("f4:12:fa:00:00:01", 1, "one-new")
    assert otapsk.find(None, 1) == "one-new" and len(otapsk.load()) == 2
    assert len(otapsk.generate()) == 43 and otapsk.generate() != otapsk.generate()


def test_nvs_psk_is_what_the_node_checks():
    """The PSK lives in security/ota_psk of the same NVS image as csi_cfg."""
    img = nvs.rewrite_image(
        b"\xff" * 0x6000, nodecfg.owned_namespaces({"node_id": 2, "ota_psk": "k"})
    )
    ns = nvs.read_image(img.data).namespaces
    assert ns["security"]["ota_psk"] == nvs.NvsValue("string", "k") and "csi_cfg" in ns


@pytest.mark.slow
def test_csi_check_asks_the_running_gateway_when_it_holds_the_port(fleet_factory, new_image):
    """With `csi-edge run` on the nodes' UDP port, ota cannot listen there: it reads the
    gateway's /health (found through the state directory) for the node's frames instead."""
    csi_port, http_port = free_port(socket.SOCK_DGRAM), free_port()
    gw = subprocess.Popen(
        [sys.executable, "-m", "csi_edge", "run", "--udp", f"127.0.0.1:{csi_port}", "--http",
         f"127.0.0.1:{http_port}", "--pose", "none", "--vitals-model", "none", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (otapsk.path().parent / "http.json").exists():
            assert gw.poll() is None and time.monotonic() < deadline, gw.stderr
            time.sleep(0.1)
        fleet = fleet_factory(n=1, csi_port=csi_port)
        code, rep = run_ota(fleet, new_image, fleet.node(1), psk=PSKS[1])
        assert code == 0, rep
        assert "CSI frames reach the gateway" in rep["nodes"][0]["message"]
    finally:
        gw.terminate()
        gw.communicate(timeout=30)


# ---------------------------------------------------------------- provision --ota-psk -> ota
@pytest.mark.slow
def test_provision_auto_psk_per_board_then_ota_from_the_same_inventory(tmp_path, new_image):
    """One fleet.toml for both commands: provision (real esptool over the pty) writes a random
    PSK per board into security/ota_psk and the 0600 store; ota reads it by MAC."""
    csi_port = free_port(socket.SOCK_DGRAM)
    boards = []
    try:
        lines = []
        for nid in (1, 2):
            opts = NodeOptions(ota_port=free_port(), ota_reboot_delay=0.2)
            b = Board(flash_size=4 << 20, node=opts, mac=bytes.fromhex(f"f412fa0001{nid:02x}"))
            b.start()
            testkit.install_node(b.flash, node_id=9, target_port=1)  # provision changes these
            boards.append(b)
            lines += [
                "[[boards]]",
                f'port = "{b.port}"',
                f'mac = "f4:12:fa:00:01:{nid:02x}"',
                f"node_id = {nid}",
                'host = "127.0.0.1"',
                f"ota_port = {opts.ota_port}",
            ]
        fleet = tmp_path / "fleet.toml"
        fleet.write_text("\n".join(lines) + "\n")
        link = testkit.emulator_link(boards[0].port)[2:]  # --before/--after/... without --port
        r = CliRunner().invoke(
            cli,
            ["provision", "--inventory", str(fleet), *link, "--ota-psk", "auto",
             "--target-ip", "127.0.0.1", "--target-port", str(csi_port), "--json"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        stored = otapsk.load()
        psks = [otapsk.find(f"f4:12:fa:00:01:{nid:02x}") for nid in (1, 2)]
        assert len(stored) == 2 and all(psks) and psks[0] != psks[1]
        assert stat.S_IMODE(os.stat(otapsk.path()).st_mode) == 0o600
        assert not any(p in r.output for p in psks)  # never printed
        for b, psk in zip(boards, psks, strict=True):
            ns = nvs.read_image(b.flash.read(0x9000, 0x6000)).namespaces
            assert ns["security"]["ota_psk"] == nvs.NvsValue("string", psk)
            assert "csi_cfg" in ns  # the same NVS image
        shown = CliRunner().invoke(
            cli, ["provision", "--show", *testkit.emulator_link(boards[0].port)]
        )
        assert shown.exit_code == 0 and psks[0] not in shown.output and nodecfg.MASK in shown.output
        revealed = CliRunner().invoke(
            cli,
            ["provision", "--show", "--reveal", "--json", *testkit.emulator_link(boards[1].port)],
        )
        assert json.loads(revealed.stdout)["config"]["ota_psk"] == psks[1]
        for b in boards:
            b.reset("run")
        wait_streaming(boards)
        r = CliRunner().invoke(
            cli,
            ["ota", str(new_image), "--inventory", str(fleet), "--csi-port", str(csi_port),
             "--boot-timeout", "8", "--frame-timeout", "3"],
        )  # fmt: skip
        assert r.exit_code == 0, r.output
        assert r.stdout.count("updated") == 2 and "now: 0.9.1:" in r.stdout
        assert not any(p in r.output for p in psks)
    finally:
        for b in boards:
            b.close()
