"""The node's own vitals (RuView firmware ``0xC5110002`` edge vitals, ``0xC5110004`` fused), as
decoded by :mod:`csi_edge.codecs.ruview`, reduced to the fields reported beside the gateway's
estimate (``NodeReport.node_vitals``). The firmware computes its rates assuming a 10 Hz rate,
so they are shown for comparison, never merged into the gateway's estimate.
"""

from __future__ import annotations

from csi_edge.frames import Packet, node_key

EDGE_VITALS_KINDS = ("edge_vitals", "fused_vitals")
_FIELDS = (
    "presence",
    "motion",
    "fall",
    "breathing_bpm",
    "heart_bpm",
    "presence_score",
    "motion_energy",
)


def edge_vitals_report(packet: Packet) -> tuple[str, dict] | None:
    """``(node key, {"t", "kind", presence, motion, breathing_bpm, heart_bpm, ...})`` or None."""
    if packet.kind not in EDGE_VITALS_KINDS:
        return None
    d = {"t": packet.t_rx, "kind": packet.kind}
    d.update({k: packet.fields.get(k) for k in _FIELDS if k in packet.fields})
    if packet.kind == "fused_vitals":
        for k in ("mmwave_hr", "mmwave_br", "fusion_confidence", "mmwave_presence"):
            if k in packet.fields:
                d[k] = packet.fields[k]
    return node_key(packet.source, packet.node_id), d
