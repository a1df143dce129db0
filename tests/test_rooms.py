"""Rooms aggregate the nodes of one area: occupied if any node says so, unknown until one decides."""

from __future__ import annotations

from csi_edge.report import NodeReport
from csi_edge.rooms import area_slug, rooms


def _r(node, area, presence=None, motion=None, bpm=None, conf=0.0, name=""):
    return NodeReport(
        t=10.0, node=node, name=name, area=area, presence=presence, motion=motion,
        breathing_bpm=bpm, breathing_conf=conf,
    )  # fmt: skip


def test_a_room_is_unknown_until_one_node_decides_and_occupied_if_any_node_says_so():
    assert rooms([_r("a", "Bedroom"), _r("b", "Bedroom")])[0].presence is None
    one_clear = rooms([_r("a", "Bedroom", presence=False), _r("b", "Bedroom")])[0]
    assert one_clear.presence is False and one_clear.nodes_decided == 1
    occupied = rooms([_r("a", "Bedroom", presence=False), _r("b", "Bedroom", presence=True)])[0]
    assert occupied.presence is True


def test_motion_is_any_and_breathing_is_the_most_confident_node_named():
    (room,) = rooms(
        [
            _r("a", "Bedroom", motion=False, bpm=14.0, conf=0.4, name="Bed left"),
            _r("b", "Bedroom", motion=True, bpm=15.5, conf=0.9, name="Bed right"),
            _r("c", "Bedroom"),
        ]
    )
    assert room.motion is True
    assert (room.breathing_bpm, room.breathing_node) == (15.5, "Bed right")
    assert room.nodes == ["a", "b", "c"]


def test_nodes_without_an_area_form_no_room_and_areas_stay_apart():
    out = rooms([_r("a", ""), _r("b", "Kitchen", presence=True), _r("c", "Living room")])
    assert [(r.area, r.slug, r.presence) for r in out] == [
        ("Kitchen", "kitchen", True),
        ("Living room", "living_room", None),
    ]
    assert area_slug("Küche / Bad") == "k_che_bad"
