"""Rooms: the nodes given the same ``area`` in the node inventory, reported as one.

People automate rooms, not boards. A room is occupied when any of its nodes decides presence,
unknown while none has decided, and clear only when a node has decided nobody is there and
none says someone is; motion likewise; its breathing rate is the most confident node's, named.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from csi_edge.report import NodeReport, jsonable


@dataclass
class RoomReport:
    """One area's view at time ``t`` (unix seconds)."""

    t: float
    area: str
    slug: str  #: topic / unique-id safe form of ``area``
    nodes: list[str]  #: node keys in this room
    presence: bool | None = None
    motion: bool | None = None
    breathing_bpm: float | None = None
    breathing_conf: float = 0.0
    breathing_node: str | None = None  #: the node the breathing estimate came from
    nodes_decided: int = 0  #: nodes whose presence is decided (not unknown)

    def to_json(self) -> dict:
        return jsonable(asdict(self))


def area_slug(area: str) -> str:
    """``Living room`` -> ``living_room`` (lower-case letters, digits and ``_``)."""
    return re.sub(r"[^a-z0-9]+", "_", area.lower()).strip("_") or "room"


def _any(values: list[bool | None]) -> bool | None:
    """True if any is True; None while none is decided; else False."""
    if any(v is True for v in values):
        return True
    if all(v is None for v in values):
        return None
    return False


def rooms(reports: list[NodeReport]) -> list[RoomReport]:
    """One RoomReport per area that at least one report names (reports without an area are
    not in a room)."""
    by_area: dict[str, list[NodeReport]] = {}
    for r in reports:
        if r.area:
            by_area.setdefault(r.area, []).append(r)
    out = []
    for area, members in sorted(by_area.items()):
        room = RoomReport(
            t=max(r.t for r in members),
            area=area,
            slug=area_slug(area),
            nodes=[r.node for r in members],
            presence=_any([r.presence for r in members]),
            motion=_any([r.motion for r in members]),
            nodes_decided=sum(r.presence is not None for r in members),
        )
        rated = [r for r in members if r.breathing_bpm is not None]
        if rated:
            best = max(rated, key=lambda r: r.breathing_conf)
            room.breathing_bpm, room.breathing_conf = best.breathing_bpm, best.breathing_conf
            room.breathing_node = best.name or best.node
        out.append(room)
    return out
