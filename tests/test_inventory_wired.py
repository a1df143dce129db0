"""The node inventory wired end to end: gateway.toml ``[nodes.<id>]`` / ``[inventory]`` ->
identity keys in the node table, estimators and baselines -> names in the reports, /health,
JSONL, the console and Home Assistant discovery. Real UDP from two loopback addresses (an IP
change), a real mosquitto, a real HTTP server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from csi_edge.config import load_config
from csi_edge.errors import ConfigError
from tests.conftest import free_port
from tests.test_mqtt_availability import Broker, _wait

CLI = [sys.executable, "-m", "csi_edge"]


# -- gateway.toml ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[nodes.bed]\nnode_id = "three"\n', "nodes.bed.node_id must be int, got 'three'"),
        ("[nodes.bed]\nnode_id = 300\n", "nodes.bed.node_id must be an integer 0-255, got 300"),
        ("[nodes.bed]\nnode_id = -1\n", "nodes.bed.node_id must be an integer 0-255, got -1"),
        ('[nodes.bed]\nnode_id = 1\nroom = "x"\n', "unknown key 'nodes.bed.room'"),
        ("[nodes.bed]\nnode_id = 1\nname = 5\n", "nodes.bed.name must be str, got 5"),
        ("nodes = 3\n", "nodes must be tables like [nodes.bedroom]"),
        ("[nodes]\nbed = 3\n", "nodes.bed must be a table"),
        ('[nodes.bed]\nmac = "aa:bb"\nnode_id = 1\n', "nodes.bed: mac must look like"),
        ('[nodes.bed]\nname = "Bed"\n', "nodes.bed: needs node_id, address, or a mac"),
        (
            "[nodes.a]\nnode_id = 1\n[nodes.b]\nnode_id = 1\n",
            "nodes.b matches the same node as nodes.a (node_id 1)",
        ),
        ('[inventory]\nresults = "x.json"\n', "inventory.results must be a list of strings"),
        ("[inventory]\nknown_only = 1\n", "inventory.known_only must be bool, got 1"),
    ],
)
def test_bad_inventory_config_is_one_error_naming_file_and_key(tmp_path, toml, expected):
    p = tmp_path / "gateway.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and expected in msg and "\n" not in msg, msg


def test_results_files_are_relative_to_the_config_file_and_checked_at_load(tmp_path):
    sub = tmp_path / "etc"
    sub.mkdir()
    p = sub / "gateway.toml"
    p.write_text('[inventory]\nresults = ["fleet.results.json"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == (
        f"{p}: inventory.results: {sub / 'fleet.results.json'}: provision results file not found"
    )
    (sub / "fleet.results.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"inventory\.results: .*not a provision results file"):
        load_config(p)
    (sub / "fleet.results.json").write_text(
        '{"boards": [{"mac": "F4-12-FA-00-00-03", "node_id": 3}]}'
    )
    cfg = load_config(p)
    assert cfg.inventory.results == [str(sub / "fleet.results.json")]


def test_bad_inventory_is_one_line_from_the_cli_not_a_traceback(tmp_path):
    p = tmp_path / "gateway.toml"
    p.write_text('[nodes.bed]\nmac = "nope"\nnode_id = 1\n')
    r = subprocess.run(CLI + ["run", "-c", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"Error: {p}: nodes.bed: mac must look like aa:bb:cc:dd:ee:ff, got 'nope'"
    ]


def test_print_config_keeps_nodes_and_inventory(tmp_path):
    from csi_edge.config import dump_config

    (tmp_path / "f.json").write_text('{"boards": []}')
    p = tmp_path / "gateway.toml"
    p.write_text(
        '[inventory]\nresults = ["f.json"]\nknown_only = true\n'
        '[nodes.bed]\nnode_id = 3\nname = "Bedroom"\narea = "Upstairs"\n'
        '[nodes."hall way"]\naddress = "10.0.0.9"\n'
    )
    cfg = load_config(p)
    again = tmp_path / "again.toml"
    again.write_text(dump_config(cfg))
    back = load_config(again)
    assert back.nodes == cfg.nodes and back.inventory == cfg.inventory
    assert back.nodes["bed"].table() == {"name": "Bedroom", "area": "Upstairs", "node_id": 3}


# -- through the running gateway ----------------------------------------------------------------
def _write_config(path: Path, *, http: int = 0, mqtt: tuple | None = None, extra: str = "") -> None:
    lines = [
        'gateway_id = "gw1"',
        "report_interval_s = 0.5",
        f'baselines_dir = "{path.parent / "baselines"}"',
        "[ingest]",
        'udp = ["127.0.0.1:0"]',
        "[models]",
        'pose = ""',
        'vitals = ""',
        "[sinks]",
        "console = true",
        f'jsonl = "{path.parent / "reports.jsonl"}"',
    ]
    if http:
        lines.append(f'http = "127.0.0.1:{http}"')
    if mqtt:
        lines += ["[sinks.mqtt]", f'host = "{mqtt[0]}:{mqtt[1]}"', "expire_after_s = 0"]
    path.write_text("\n".join(lines) + "\n" + extra)


def _gateway(path: Path, console: io.StringIO):
    """build_gateway from the file, with the estimators in this process (so the test can look
    at their state afterwards; the service runs the same class in a child process)."""
    from csi_edge.estimators import Estimators
    from csi_edge.service import build_gateway

    cfg = load_config(path)
    gw = build_gateway(cfg, console_stream=console)
    gw.estimators = Estimators(cfg.baselines_dir, None, cfg.vitals.to_vitals_config())
    return gw


async def _send(port: int, specs: list[tuple[int, str]], duration: float = 1.2) -> None:
    """Real ADR-018 datagrams from simulated boards: (node id, source address)."""
    from csi_edge.sources.simnode import SimFleet, SimNodeSpec

    fleet = SimFleet(
        [SimNodeSpec(node_id=n, rate_hz=40.0, bind_host=a, jitter=0.0) for n, a in specs],
        ("127.0.0.1", port),
    )
    await fleet.run(duration)


def _get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503 while a node is offline: still the health JSON
        return json.loads(e.read())


def _discovery(broker: Broker, device: str) -> dict:
    """The node's device discovery config (``dev``: the device, ``cmps``: its entities)."""
    return json.loads(broker.get(f"homeassistant/device/{device}/config"))


@pytest.mark.slow
def test_named_node_keeps_key_baseline_and_topics_across_an_ip_change(tmp_path, mosquitto, caplog):
    from csi_edge.vitals.baseline import Baseline, save_baseline

    host, mport = mosquitto
    http = free_port()
    cfg_path = tmp_path / "gateway.toml"
    _write_config(
        cfg_path,
        http=http,
        mqtt=mosquitto,
        extra='[nodes.bedroom]\nnode_id = 1\nname = "Bedroom"\narea = "Upstairs"\n',
    )
    key = "id_gw1_1"
    stored = Baseline.default(key)
    stored.updated = 12345.0  # a mark: this file, found by the identity key
    save_baseline(stored, tmp_path / "baselines")
    console = io.StringIO()
    gw = _gateway(cfg_path, console)
    broker = Broker(host, mport)
    seen: dict[str, dict] = {}

    async def main() -> None:
        await gw.ingest.start()
        port = gw.ingest.sources[0].address[1]
        task = asyncio.create_task(gw.run())
        try:
            # the named board (node 1) and an unnamed one (node 2), both from 127.0.0.1
            await _send(port, [(1, "127.0.0.1"), (2, "127.0.0.1")])
            await asyncio.sleep(0.8)
            state = f"csi-edge/gw1/nodes/{key}/state"
            await asyncio.to_thread(_wait, lambda: broker.get(state))
            seen["before"] = json.loads(broker.get(state))
            seen["health_before"] = await asyncio.to_thread(_get, f"http://127.0.0.1:{http}/health")
            # DHCP gave the named board a new address: 127.0.0.2, same node id
            await _send(port, [(1, "127.0.0.2")])
            await asyncio.sleep(0.8)
            seen["health"] = await asyncio.to_thread(_get, f"http://127.0.0.1:{http}/health")
            seen["status"] = await asyncio.to_thread(
                subprocess.run,
                CLI + ["status", "--url", f"http://127.0.0.1:{http}/"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            gw.stop()
            await task

    with caplog.at_level(logging.WARNING, logger="csi_edge.inventory"):
        asyncio.run(main())
    try:
        # one node, one key, one estimator with the stored baseline, whatever the address
        nodes = gw.ingest.summary()["nodes"]
        assert set(nodes) == {key, "127.0.0.1#2"}, nodes
        assert nodes[key]["source"] == "127.0.0.2"
        assert nodes[key]["frames"] > seen["health_before"]["nodes"][key]["frames"]
        assert set(gw.estimators.vitals) == {key, "127.0.0.1#2"}
        assert gw.estimators.vitals[key].baseline.updated == 12345.0
        # reports: the named node has its name and area; the unnamed one "" (automatic name)
        reports = {r.node: r for r in gw.last_reports}
        assert (reports[key].name, reports[key].area) == ("Bedroom", "Upstairs")
        assert (reports["127.0.0.1#2"].name, reports["127.0.0.1#2"].area) == ("", "")
        assert reports["127.0.0.1#2"].display_name == "Node 2 (127.0.0.1)"
        # the unnamed node's one-time hint says how to name it
        hints = [r.getMessage() for r in caplog.records if "not in the inventory" in r.getMessage()]
        assert len(hints) == 1 and "127.0.0.1#2" in hints[0] and "[nodes.<id>]" in hints[0]
        # /health names the named node, under the same key before and after the IP change
        assert seen["health_before"]["nodes"][key]["name"] == "Bedroom"
        assert seen["health"]["nodes"][key]["name"] == "Bedroom"
        assert seen["health"]["nodes"]["127.0.0.1#2"]["name"] is None  # unnamed
        status = seen["status"].stdout
        assert f"node Bedroom ({key}): online" in status and "node 127.0.0.1#2: " in status
        # JSONL: name and area fields
        rows = [json.loads(x) for x in (tmp_path / "reports.jsonl").read_text().splitlines()]
        named = [r for r in rows if r["node"] == key]
        assert named and all(r["name"] == "Bedroom" and r["area"] == "Upstairs" for r in named)
        assert all(r["name"] == "" for r in rows if r["node"] == "127.0.0.1#2")
        assert not any(r["node"].startswith("127.0.0.2") for r in rows)
        # the console shows the name (and the unnamed node's key)
        out = console.getvalue()
        assert "Bedroom: " in out and "127.0.0.1#2: " in out and "id_gw1_1" not in out
        # Home Assistant: the name and area, and the same device/topics after the IP change
        assert _wait(lambda: broker.get(f"csi-edge/gw1/nodes/{key}/availability") == "offline")
        dev = _discovery(broker, f"csi_edge_{key}")["dev"]
        assert dev["name"] == "Bedroom" and dev["suggested_area"] == "Upstairs"
        assert dev["identifiers"] == [f"csi_edge_{key}"]
        other = _discovery(broker, "csi_edge_gw1_127_0_0_1_2")["dev"]
        assert other["name"] == "CSI node 127.0.0.1#2" and "suggested_area" not in other
        state_topics = {t for t, _, _ in broker.log if "/nodes/" in t and t.endswith("/state")}
        assert state_topics == {
            f"csi-edge/gw1/nodes/{key}/state",
            "csi-edge/gw1/nodes/127_0_0_1_2/state",
        }
        assert not any("127_0_0_2" in t for t, _, _ in broker.log)
        after = json.loads(broker.get(f"csi-edge/gw1/nodes/{key}/state"))
        assert after["link"]["frames"] > seen["before"]["link"]["frames"]
        assert after["name"] == "Bedroom"
    finally:
        broker.close()


def test_results_file_names_boards_by_mac_and_known_only_refuses_the_rest(tmp_path):
    sub = tmp_path / "etc"
    sub.mkdir()
    (sub / "fleet.results.json").write_text(
        json.dumps(
            {
                "boards": [
                    {
                        "port": "/dev/ttyUSB0",
                        "mac": "F4:12:FA:00:00:03",
                        "node_id": 3,
                        "zone": "kitchen",
                    },
                    {
                        "port": "/dev/ttyUSB1",
                        "mac": "f4:12:fa:00:00:04",
                        "node_id": 4,
                        "zone": "hall",
                    },
                    {"port": "/dev/ttyUSB2", "mac": None, "status": "error: no chip"},
                ]
            }
        )
    )
    cfg_path = sub / "gateway.toml"
    _write_config(
        cfg_path,
        extra='[inventory]\nresults = ["fleet.results.json"]\nknown_only = true\n'
        '[nodes.hall]\nmac = "f4:12:fa:00:00:04"\nname = "Hallway"\n',
    )
    gw = _gateway(cfg_path, io.StringIO())

    async def main() -> None:
        await gw.ingest.start()
        port = gw.ingest.sources[0].address[1]
        task = asyncio.create_task(gw.run())
        try:
            await _send(port, [(3, "127.0.0.1"), (4, "127.0.0.2"), (5, "127.0.0.1")], 1.0)
            await asyncio.sleep(0.8)
        finally:
            gw.stop()
            await task

    asyncio.run(main())
    reports = {r.node: r for r in gw.last_reports}
    # the MAC (from the results file) is the identity; the zone names it unless [nodes] does
    assert set(reports) == {"mac_f412fa000003", "mac_f412fa000004"}
    assert (reports["mac_f412fa000003"].name, reports["mac_f412fa000003"].area) == (
        "kitchen",
        "kitchen",
    )
    assert (reports["mac_f412fa000004"].name, reports["mac_f412fa000004"].area) == ("Hallway", "")
    s = gw.ingest.summary()
    assert s["skipped"].get("unknown-node", 0) > 0 and "127.0.0.1#5" in s["unknown_senders"]


@pytest.mark.slow
def test_sighup_reload_renames_a_node_in_reports_and_home_assistant(tmp_path, mosquitto):
    from csi_edge.app.reload import Reloader

    host, mport = mosquitto
    cfg_path = tmp_path / "gateway.toml"
    named = '[nodes.bed]\nnode_id = 1\nname = "{}"\narea = "{}"\n'
    _write_config(cfg_path, mqtt=mosquitto, extra=named.format("Bed", "Upstairs"))
    gw = _gateway(cfg_path, io.StringIO())
    broker = Broker(host, mport)
    dev = "csi_edge_id_gw1_1"
    said: list[str] = []

    async def main() -> None:
        await gw.ingest.start()
        port = gw.ingest.sources[0].address[1]
        task = asyncio.create_task(gw.run())
        try:
            sender = asyncio.create_task(_send(port, [(1, "127.0.0.1"), (2, "127.0.0.1")], 3.0))
            await asyncio.sleep(1.2)
            assert _discovery(broker, dev)["dev"]["name"] == "Bed"
            # node 2 gets a name too: it is keyed by its wire key until a restart
            _write_config(
                cfg_path,
                mqtt=mosquitto,
                extra=named.format("Master bedroom", "First floor")
                + '[nodes.two]\nnode_id = 2\nname = "Two"\n',
            )
            said.append(await Reloader(gw, lambda: load_config(cfg_path))())
            await sender
            await asyncio.sleep(0.8)
        finally:
            gw.stop()
            await task

    try:
        asyncio.run(main())
        assert "node names" in said[0] and "127.0.0.1#2" in said[0] and "restart" in said[0]
        reports = {r.node: r for r in gw.last_reports}
        assert (reports["id_gw1_1"].name, reports["id_gw1_1"].area) == (
            "Master bedroom",
            "First floor",
        )
        assert reports["127.0.0.1#2"].name == ""
        device = _discovery(broker, dev)["dev"]
        assert device["name"] == "Master bedroom" and device["suggested_area"] == "First floor"
    finally:
        broker.close()


def test_the_service_config_template_documents_a_working_nodes_table(tmp_path):
    from csi_edge.app.unit import CONFIG

    text = CONFIG.format(env="/etc/csi-edge/env")
    block = text[text.index("# [nodes.bedroom]") :].splitlines()
    p = tmp_path / "gateway.toml"
    p.write_text(text + "\n".join(line[2:] for line in block if line.startswith("# ")) + "\n")
    cfg = load_config(p)
    assert cfg.nodes["bedroom"].table() == {"name": "Bedroom", "area": "Bedroom", "node_id": 3}


def test_baseline_with_the_gateway_config_stores_a_named_node_under_its_identity(tmp_path):
    """`csi-edge baseline --config gateway.toml` keys a named node the way the gateway does, so
    the gateway finds the baseline (and keeps it across an IP change)."""
    from csi_edge.sim import preset, simulate, write_capture
    from csi_edge.vitals.baseline import load_baseline

    empty, _ = write_capture(simulate(preset("empty", 35), seed=1), tmp_path / "empty.pcap")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        f'gateway_id = "gw1"\nbaselines_dir = "{tmp_path / "b"}"\n'
        '[nodes.bed]\nnode_id = 1\nname = "Bed"\n'  # the capture's node: 10.0.0.11#1
    )
    r = subprocess.run(
        CLI + ["baseline", str(empty), "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[0])
    assert out["node"] == "id_gw1_1" and out["accepted"]
    assert out["path"] == str(tmp_path / "b" / "id_gw1_1.json")
    assert load_baseline("id_gw1_1", tmp_path / "b").runs == 1
    cfg.write_text("[nodes.bed]\nnode_id = 1000\n")
    r = subprocess.run(
        CLI + ["baseline", str(empty), "--config", str(cfg)], capture_output=True, text=True
    )
    assert r.returncode == 1 and r.stderr.strip() == (
        f"Error: {cfg}: nodes.bed.node_id must be an integer 0-255, got 1000"
    )


def test_inventory_nodes_that_never_sent_are_offline_in_home_assistant(tmp_path, mosquitto):
    """A board the inventory names exists before it sends: its retained availability is set
    offline at start-up (a dead board from a previous run is not shown live)."""
    from csi_edge.sinks.mqtt import MqttSink, config_from

    host, port = mosquitto
    cfg_path = tmp_path / "gateway.toml"
    _write_config(
        cfg_path,
        mqtt=mosquitto,
        extra='[nodes.bed]\nnode_id = 4\nname = "Bed"\n[nodes.hall]\nmac = "f4:12:fa:00:00:09"\n'
        "node_id = 5\n",
    )
    topic = "csi-edge/gw1/nodes/{}/availability"
    broker = Broker(host, port)
    broker.publish(topic.format("id_gw1_4"), "online", retain=True)  # left by a previous run
    sink = MqttSink(config_from(load_config(cfg_path), host, port, None))
    try:
        assert sink.config.known_nodes == ("id_gw1_4", "mac_f412fa000009")
        assert _wait(lambda: broker.get(topic.format("id_gw1_4")) == "offline")
        assert _wait(lambda: broker.get(topic.format("mac_f412fa000009")) == "offline")
    finally:
        sink.close()
        broker.close()
