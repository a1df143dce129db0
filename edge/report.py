"""What the gateway publishes: one report per node, about once a second.

Every sink (console, JSONL file, HTTP live view, MQTT/Home Assistant) consumes the same
:class:`NodeReport`, so a field added here shows up everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Protocol


@dataclass
class NodeReport:
    """The gateway's view of one node at time ``t`` (unix seconds)."""

    t: float
    #: the node's stable key: its inventory identity (MAC or provisioned node id), else the wire
    #: key "<address>#<node id>"
    node: str
    #: display name and area from the node inventory (edge/inventory.py); "" when not configured,
    #: and sinks then show an automatic name
    name: str = ""
    area: str = ""
    presence: bool | None = None
    motion: bool | None = None
    breathing_bpm: float | None = None
    breathing_conf: float = 0.0
    heart_bpm: float | None = None
    heart_conf: float = 0.0
    #: why a rate is null ("motion", "no-presence", "warming-up", ...); empty when both are set
    reason: str = ""
    #: {"keypoints": [[x, y] * 17], "confidence": [c * 17], "track": id} or None
    pose: dict | None = None
    #: the node's own on-board estimate (edge vitals packets), reported beside the gateway's
    node_vitals: dict | None = None
    #: the bundled vitals model's estimate ({"breathing_bpm", "presence", "motion"}), beside the DSP's
    model_vitals: dict | None = None
    #: link statistics: frames, rate_hz, lost, duplicates, reboots, rssi, online
    link: dict = field(default_factory=dict)
    #: the node's room baseline: {"state": complete|partial|none, or waiting|collecting|refused
    #: while a recalibration runs or was refused, "baseline", "still_s", "message",
    #: "recalibration" (the last one's outcome, when one was asked for)}; None until estimated
    calibration: dict | None = None
    #: the change ratio above which this node flags motion (its own setting, else [vitals])
    motion_ratio: float | None = None

    @property
    def display_name(self) -> str:
        """What a sink shows: the inventory's name, else the automatic one."""
        return self.name or auto_name(self.node)

    def to_json(self) -> dict:
        """A JSON-safe dict (see :func:`jsonable`). Not ``dataclasses.asdict``: its deep copy
        was most of the MQTT sink's time per report (64 nodes: ~20 ms of the loop per report);
        :func:`jsonable` copies the nested dicts and lists anyway."""
        return {name: jsonable(getattr(self, name)) for name in _FIELDS}


def auto_name(node: str) -> str:
    """The name of a node the inventory does not name: ``"Node 1 (192.168.1.20)"`` for the wire
    key ``"192.168.1.20#1"`` (any other key is its own name)."""
    address, sep, node_id = node.rpartition("#")
    return f"Node {node_id} ({address})" if sep and node_id.isdigit() else node


_FIELDS = tuple(f.name for f in fields(NodeReport))
_PLAIN = (str, int, bool, type(None))


def jsonable(v: Any) -> Any:
    """JSON-safe copy: NaN/inf floats become null (``json.dumps`` would write ``NaN``, which is not
    JSON and breaks Home Assistant and browsers); dict keys become strings."""
    if type(v) in _PLAIN:  # the common case first: this runs for every value of every report
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if is_dataclass(v) and not isinstance(v, type):  # what asdict() did for nested dataclasses
        return {f.name: jsonable(getattr(v, f.name)) for f in fields(v)}
    return v


class Sink(Protocol):
    """Where reports go (implementations in :mod:`csi_edge.sinks`): the gateway's only view of
    a sink, defined here so the gateway never imports the sinks package."""

    def publish(self, reports: list[NodeReport]) -> None: ...

    def close(self) -> None: ...
