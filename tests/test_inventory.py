"""Node identity: the board, not its IP (csi_edge.inventory)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csi_edge.errors import ConfigError
from csi_edge.inventory import Inventory, address_slug


def test_ip_change_keeps_the_identity_of_a_named_node():
    inv = Inventory(
        {"bedroom": {"node_id": 3, "name": "Bedroom", "area": "Bedroom"}}, gateway_id="gw1"
    )
    a = inv.match("10.0.0.7", 3)
    b = inv.match("10.0.0.99", 3)
    assert a is not None and a == b
    assert a.name == "Bedroom" and a.area == "Bedroom" and a.slug == "id_gw1_3"
    assert inv.match("10.0.0.7", 4) is None and inv.configured


def test_results_file_names_boards_by_mac_and_zone(tmp_path):
    res = tmp_path / "fleet.results.json"
    res.write_text(
        json.dumps(
            {
                "boards": [
                    {
                        "port": "/dev/ttyUSB0",
                        "mac": "AA:BB:CC:DD:EE:01",
                        "node_id": 5,
                        "zone": "kitchen",
                    },
                    {
                        "port": "/dev/ttyUSB1",
                        "mac": None,
                        "node_id": 6,
                        "zone": None,
                        "status": "error: x",
                    },
                ]
            }
        )
    )
    inv = Inventory({"hall": {"mac": "aa-bb-cc-dd-ee-02", "node_id": 7}}, [res])
    k = inv.match("192.168.1.20", 5)
    assert k is not None and k.name == "kitchen" and k.key == "mac_aabbccddee01"
    assert inv.match("192.168.1.21", 7).slug == "mac_aabbccddee02"
    assert inv.match("192.168.1.22", 6) is None


def test_mac_in_nodes_gets_its_node_id_from_the_results_file(tmp_path):
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"boards": [{"mac": "aa:bb:cc:dd:ee:03", "node_id": 9}]}))
    inv = Inventory({"bed": {"mac": "aa:bb:cc:dd:ee:03", "name": "Bed"}}, [res])
    assert inv.match("10.1.1.1", 9).name == "Bed"


def test_address_pinned_entry_beats_a_looser_one():
    inv = Inventory({"a": {"node_id": 1}, "b": {"node_id": 1, "address": "10.0.0.2"}})
    assert inv.match("10.0.0.2", 1).name == "b" and inv.match("10.0.0.3", 1).name == "a"


def test_unmatched_node_gets_an_automatic_name_and_one_log_line(caplog):
    inv = Inventory()
    assert not inv.configured
    with caplog.at_level("WARNING", logger="csi_edge.inventory"):
        a = inv.resolve("127.0.0.1", 1)
        inv.resolve("127.0.0.1", 1)
    assert a.key == "127.0.0.1#1" and not a.configured and "127.0.0.1" in a.name
    assert caplog.text.count("not in the inventory") == 1 and "[nodes." in caplog.text


@pytest.mark.parametrize(
    "nodes, msg",
    [
        ({"x": {"mac": "nope", "node_id": 1}}, "nodes.x: mac"),
        ({"x": {"node_id": 300}}, "nodes.x: node_id"),
        ({"x": {"name": "X"}}, "nodes.x: needs node_id"),
        ({"x": {"node_id": 1, "zone": "k"}}, "unknown key 'zone'"),
    ],
)
def test_bad_node_tables_are_clear_config_errors(nodes, msg):
    with pytest.raises(ConfigError, match=msg):
        Inventory(nodes)


def test_ipv6_slugs_do_not_collide():
    assert address_slug("::1:1#1") != address_slug("1::1#1")


@given(st.text(max_size=12), st.text(max_size=12))
def test_address_slug_is_injective_and_topic_safe(a, b):
    sa = address_slug(a)
    assert all(c.isascii() and (c.isalnum() or c == "_") and not c.isupper() for c in sa)
    if a != b:
        assert sa != address_slug(b)


def test_admission_accepts_known_nodes_only_with_this_inventory():
    """The ingest side's known-nodes-only rule works with the real Inventory (its Protocol)."""
    from csi_edge.admission import NodeAdmission

    adm = NodeAdmission(inventory=Inventory({"bed": {"node_id": 3}}))
    assert adm.admit("10.0.0.7", 3, 0) is None
    assert adm.admit("10.0.0.7", 4, 1) == "unknown-node"
