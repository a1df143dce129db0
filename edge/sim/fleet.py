"""A fleet of simulated nodes as ``csi-edge simulate-nodes`` and ``csi-edge demo`` run it.

Kept out of the CLI so scripts and tests build exactly the fleet a user gets from the command
line (same CSI content, ids, RSSI spread and edge-vitals packets).
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_edge.errors import InputError


@dataclass(frozen=True)
class FleetSpec:
    """What the node options of the CLI describe (see ``csi-edge simulate-nodes --help``)."""

    nodes: int = 4
    rate: float = 20.0
    jitter: float = 0.2
    loss: float = 0.0
    reboot_every: float | None = None
    pairs: tuple[int, ...] = (64,)  #: subcarrier pairs per frame, used in turn
    same_id: bool = False  #: every node is node 1 (the unprovisioned default), from 127.0.0.N
    seed: int = 0
    scenario: str | None = None  #: a channel-simulator preset; None: simple synthetic CSI


def content_factory(scenario: str | None, pairs: tuple[int, ...], seed: int):
    """``i -> csi_fn`` for node i: synthetic CSI, or the channel simulator's ``scenario``."""
    from csi_edge.sources.simnode import synthetic_csi

    if not scenario:
        return lambda i: synthetic_csi(pairs, seed=seed + i)
    from csi_edge.sim import PRESETS, NodeContent, preset

    if scenario not in PRESETS:
        raise InputError(f"scenario {scenario!r}: expected one of {', '.join(PRESETS)}")
    world = preset(scenario, 24 * 3600.0)

    def make(i: int):
        per_layout = [NodeContent(world, node_index=i, seed=seed, n_pairs=p) for p in pairs]
        if len(per_layout) == 1:
            return per_layout[0]
        return lambda t, seq: per_layout[seq % len(per_layout)](t, seq)

    return make


def build_fleet(target: tuple[str, int], spec: FleetSpec):
    """The :class:`~csi_edge.sources.simnode.SimFleet` that sends ``spec`` to ``target``."""
    from csi_edge.sources.simnode import SimFleet, SimNodeSpec

    content = content_factory(spec.scenario, spec.pairs, spec.seed)
    loopback = target[0].startswith("127.") or target[0] == "localhost"
    if spec.same_id and not loopback:
        raise InputError(
            f"same node id for every node needs a loopback target (127.x.x.x), got {target[0]}"
        )
    nodes = [
        SimNodeSpec(
            node_id=1 if spec.same_id else i + 1,
            rate_hz=spec.rate,
            jitter=spec.jitter,
            loss=spec.loss,
            reboot_every_s=spec.reboot_every,
            rssi=-40 - 4 * (i % 8),
            vitals_every_s=1.0,
            bind_host=f"127.0.0.{i + 1}" if spec.same_id else "",
            csi_fn=content(i),
        )
        for i in range(spec.nodes)
    ]
    return SimFleet(nodes, target, seed=spec.seed)


def fleet_summary(fleet) -> dict:
    """What each simulated node sent: the JSON ``simulate-nodes --json`` prints."""
    nodes = {}
    for n in fleet.nodes:
        key = f"{n.spec.bind_host or 'node'}#{n.spec.node_id}"
        s = n.stats
        nodes[key] = {
            "node_id": n.spec.node_id,
            "sent": s.sent,
            "lost": s.lost,
            "reboots": s.reboots,
            "packets": s.packets,
            "send_errors": s.send_errors,
        }
    return {"sent": sum(v["sent"] for v in nodes.values()), "nodes": nodes}
