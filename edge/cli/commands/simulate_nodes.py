"""``csi-edge simulate-nodes``: simulated ESP32 nodes sending real ADR-018 datagrams over UDP."""

from __future__ import annotations

import click


def parse_layouts(text: str) -> tuple[int, ...]:
    try:
        layouts = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated pair counts like 64,128,192, got {text!r}",
            param_hint="--layouts",
        ) from None
    if not layouts or any(not 1 <= p <= 1024 for p in layouts):
        raise click.BadParameter(
            f"pair counts must be 1..1024 (2068-byte frames at most), got {text!r}",
            param_hint="--layouts",
        )
    return layouts


def node_options(f):
    """Options shared with ``csi-edge demo``."""
    opts = [
        click.option("--nodes", type=click.IntRange(1, 255), default=4, show_default=True, help="How many nodes."),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True, max=100_000),
            default=20.0,
            show_default=True,
            help="Raw CSI frames per second per node (real nodes: 10-25).",
        ),
        click.option(
            "--jitter",
            type=click.FloatRange(0, 1, max_open=True),
            default=0.2,
            show_default=True,
            help="Send-time jitter, as a fraction of the frame period.",
        ),
        click.option(
            "--loss",
            type=click.FloatRange(0, 1, max_open=True),
            default=0.0,
            show_default=True,
            help="Probability that a frame is lost (its sequence number is used anyway).",
        ),
        click.option(
            "--reboot-every",
            type=click.FloatRange(min=0, min_open=True),
            help="Reboot each node after this many seconds up (2 s silence, sequence from 0).",
        ),
        click.option(
            "--layouts",
            default="64",
            show_default=True,
            help="Subcarrier pairs per frame, used in turn: 64 (LLTF), 128 (+HT-LTF), 192 (+STBC).",
        ),
        click.option("--same-id", is_flag=True, help="Give every node id 1 (the unprovisioned default); "
                     "nodes then differ by source address 127.0.0.N (loopback targets only)."),
        click.option(
            "--scenario",
            metavar="NAME",
            help="CSI content from the physical channel simulator (a person in a room): still, "
            "standing, empty, enter, motion, walk, activities. Default: simple synthetic CSI.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f


def fleet_spec(*, nodes, rate, jitter, loss, reboot_every, layouts, same_id, seed, scenario):  # noqa: ANN001, ANN201 - click's values
    """The :class:`~csi_edge.sim.fleet.FleetSpec` that :func:`node_options` describe."""
    from csi_edge.sim.fleet import FleetSpec

    return FleetSpec(
        nodes=nodes,
        rate=rate,
        jitter=jitter,
        loss=loss,
        reboot_every=reboot_every,
        pairs=parse_layouts(layouts),
        same_id=same_id,
        seed=seed,
        scenario=scenario,
    )


@click.command()
@click.option(
    "--target",
    default="127.0.0.1:5005",
    show_default=True,
    metavar="HOST:PORT",
    help="Where the gateway listens (csi-edge demo/record, or a gateway elsewhere).",
)
@node_options
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds."
)
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="CAPTURE",
    help="Instead of simulating, re-send the frames of a capture (pcap, .csi.jsonl, serial "
    "log, csi-edge recording) as ADR-018 datagrams, one socket per recorded source.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="With --replay: 1 = the recorded pace, 10 = ten times faster, 0 = as fast as possible.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was sent as one JSON object.")
def command(target, duration, replay, speed, as_json, **fleet_opts):
    """Run simulated ESP32 nodes that send real RuView ADR-018 datagrams to a gateway.

    Each node has its own UDP socket (source port; a new one after a reboot), node id,
    sequence counter and jittered rate, and sends one edge-vitals packet a second like the
    firmware. The CSI content is synthetic (multipath profile, breathing-like modulation,
    random phase, guard/DC bins zero), or with --scenario comes from the physical channel
    simulator (csi_edge.sim). Ctrl-C stops.

    \b
    Examples:
      csi-edge simulate-nodes --nodes 4 --rate 20 --target 127.0.0.1:5005
      csi-edge simulate-nodes --nodes 16 --rate 500 --duration 10 --json
      csi-edge simulate-nodes --loss 0.05 --reboot-every 30 --layouts 64,128,192
      csi-edge simulate-nodes --nodes 3 --same-id      # three boards all called node 1
      csi-edge simulate-nodes --scenario still         # a person breathing in the room
      csi-edge simulate-nodes --replay session.pcap --target 192.168.1.10:5005
    """
    import json

    from csi_edge.app.simulate import resend_capture, send_fleet
    from csi_edge.config import parse_hostport

    try:
        host, port = parse_hostport(target, default_host="127.0.0.1")
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--target") from None
    if port == 0:
        raise click.BadParameter("the target port must not be 0", param_hint="--target")
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    if replay:
        doc = resend_capture(replay, (host, port), speed, duration, say)
        if as_json:
            click.echo(json.dumps(doc))
        else:
            click.echo(
                f"re-sent {doc['sent']} frames from {replay} ({doc['send_errors']} send errors)"
            )
        return
    doc = send_fleet((host, port), fleet_spec(**fleet_opts), duration, say)
    if as_json:
        click.echo(json.dumps(doc))
        return
    for nid, s in doc["nodes"].items():
        click.echo(
            f"{nid}: sent {s['sent']}, lost (simulated) {s['lost']}, reboots {s['reboots']}, "
            f"packets {s['packets']}, send errors {s['send_errors']}"
        )
