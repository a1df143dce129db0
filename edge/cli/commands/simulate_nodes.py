"""``csi-edge simulate-nodes``: simulated ESP32 nodes sending real ADR-018 datagrams over UDP."""

from __future__ import annotations

import click

from csi_edge.app.signals import stop_on_signals
from csi_edge.errors import DeviceError


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


def content_factory(scenario: str | None, pairs: tuple[int, ...], seed: int):
    """``i -> csi_fn`` for node i: synthetic CSI, or the channel simulator's ``scenario``."""
    from csi_edge.sources.simnode import synthetic_csi

    if not scenario:
        return lambda i: synthetic_csi(pairs, seed=seed + i)
    from csi_edge.sim import NodeContent, preset

    try:
        world = preset(scenario, 24 * 3600.0)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--scenario") from None

    def make(i: int):
        per_layout = [NodeContent(world, node_index=i, seed=seed, n_pairs=p) for p in pairs]
        if len(per_layout) == 1:
            return per_layout[0]
        return lambda t, seq: per_layout[seq % len(per_layout)](t, seq)

    return make


def build_fleet(
    target, *, nodes, rate, jitter, loss, reboot_every, layouts, same_id, seed, scenario
):
    """The SimFleet the options describe (imports numpy: call inside a command)."""
    from csi_edge.sources.simnode import SimFleet, SimNodeSpec

    pairs = parse_layouts(layouts)
    content = content_factory(scenario, pairs, seed)
    loopback = target[0].startswith("127.") or target[0] == "localhost"
    if same_id and not loopback:
        raise click.BadParameter(
            "--same-id needs a loopback --target (127.x.x.x)", param_hint="--same-id"
        )
    specs = [
        SimNodeSpec(
            node_id=1 if same_id else i + 1,
            rate_hz=rate,
            jitter=jitter,
            loss=loss,
            reboot_every_s=reboot_every,
            rssi=-40 - 4 * (i % 8),
            vitals_every_s=1.0,
            bind_host=f"127.0.0.{i + 1}" if same_id else "",
            csi_fn=content(i),
        )
        for i in range(nodes)
    ]
    return SimFleet(specs, target, seed=seed)


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
    import asyncio
    import json

    from csi_edge.config import parse_hostport

    try:
        host, port = parse_hostport(target, default_host="127.0.0.1")
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--target") from None
    if port == 0:
        raise click.BadParameter("the target port must not be 0", param_hint="--target")
    _resolve(host, port)
    if replay:
        _replay(replay, (host, port), speed, duration, as_json)
        return
    fleet = build_fleet((host, port), **fleet_opts)
    nodes, rate = fleet_opts["nodes"], fleet_opts["rate"]

    async def main():
        click.echo(
            f"{nodes} simulated node(s) -> udp://{host}:{port} at {rate:g} Hz each (Ctrl-C stops)",
            err=True,
        )
        with stop_on_signals(fleet.stop):
            await fleet.run(duration)

    try:
        asyncio.run(main())
    except OSError as e:
        raise DeviceError(f"cannot send to {target}: {e.strerror or e}") from None
    doc = fleet_summary(fleet)
    errors = sum(s["send_errors"] for s in doc["nodes"].values())
    if doc["sent"] == 0 and errors:
        raise DeviceError(f"cannot send to {target}: all {errors} datagrams failed")
    if as_json:
        click.echo(json.dumps(doc))
    else:
        for nid, s in doc["nodes"].items():
            click.echo(
                f"{nid}: sent {s['sent']}, lost (simulated) {s['lost']}, reboots {s['reboots']}, "
                f"packets {s['packets']}, send errors {s['send_errors']}"
            )


def fleet_summary(fleet) -> dict:
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


def _replay(path: str, target: tuple[str, int], speed: float, duration, as_json: bool) -> None:
    """Re-send a capture's frames to ``target`` (ReplaySource in resend mode)."""
    import asyncio
    import json

    from csi_edge.capture import detect_format
    from csi_edge.ingest import Ingest
    from csi_edge.sources.replay import ReplaySource

    detect_format(path)  # CaptureError (exit 1) names the file before anything is sent
    source = ReplaySource(path, speed=speed or None, resend=target)
    ingest = Ingest([source])

    async def main():
        pace = "as fast as possible" if not speed else f"at {speed:g}x the recorded pace"
        click.echo(f"replaying {path} -> udp://{target[0]}:{target[1]} {pace}", err=True)
        with stop_on_signals(ingest.stop):
            await ingest.run(duration)

    try:
        asyncio.run(main())
    except OSError as e:
        raise DeviceError(f"cannot send to {target[0]}:{target[1]}: {e.strerror or e}") from None
    doc = {"replayed": path, "sent": source.sent, "send_errors": source.send_errors}
    if as_json:
        click.echo(json.dumps(doc))
    else:
        click.echo(f"re-sent {source.sent} frames from {path} ({source.send_errors} send errors)")


def _resolve(host: str, port: int) -> None:
    """Fail before sending when ``host`` does not resolve: otherwise every datagram fails and
    the run only counts send errors without saying why."""
    import socket

    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise DeviceError(
            f"--target {host}:{port}: cannot resolve {host!r}: {e.strerror}"
        ) from None
