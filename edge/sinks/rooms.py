"""Rooms: nodes given the same inventory ``area`` form one room, because people automate rooms,
not boards (docs/home-assistant.md, *Rooms*).

A room's state is decided from its nodes that are online (a silent node's last values are not
current): occupied if any of them decided someone is there, ``None`` (unknown) while none has
decided, clear only when every node that decided says nobody; motion likewise; the breathing
estimate is the most confident one, with the node it came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeView:
    """What a room needs of one node's latest report."""

    key: str
    name: str
    online: bool
    presence: bool | None
    motion: bool | None
    breathing_bpm: float | None
    breathing_conf: float


def _any(values: list[bool | None]) -> bool | None:
    decided = [v for v in values if v is not None]
    if not decided:
        return None  # unknown, never "clear"
    return any(decided)


def room_state(nodes: list[NodeView]) -> dict:
    """The room's state JSON (``presence``, ``motion``, ``breathing_bpm``, ``breathing_conf``,
    ``breathing_node``, ``nodes``, ``nodes_online``)."""
    live = [n for n in nodes if n.online]
    rated = [n for n in live if n.breathing_bpm is not None]
    best = max(rated, key=lambda n: n.breathing_conf) if rated else None
    return {
        "presence": _any([n.presence for n in live]),
        "motion": _any([n.motion for n in live]),
        "breathing_bpm": None if best is None else best.breathing_bpm,
        "breathing_conf": None if best is None else round(best.breathing_conf, 3),
        "breathing_node": None if best is None else (best.name or best.key),
        "nodes": sorted(n.name or n.key for n in nodes),
        "nodes_online": len(live),
    }
