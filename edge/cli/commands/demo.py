"""``csi-edge demo``: simulated nodes -> the full gateway (vitals, bundled pose model), live view."""

from __future__ import annotations

import click

from csi_edge.cli.commands.simulate_nodes import fleet_spec, node_options
from csi_edge.cli.gateway_options import apply_gateway_options, gateway_options


@click.command()
@node_options
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="UDP port the gateway listens on (127.0.0.1); 0 picks a free one.",
)
@gateway_options
def command(
    nodes,
    rate,
    jitter,
    loss,
    reboot_every,
    layouts,
    same_id,
    scenario,
    seed,
    port,
    duration,
    pose,
    vitals_model,
    precision,
    http,
    mqtt,
    jsonl,
    as_json,
    **mqtt_transport,
):
    """Run the full gateway against simulated ESP32 nodes on this machine.

    Simulated nodes send real RuView ADR-018 datagrams over UDP loopback to the gateway (the
    same code that listens to real boards). Their CSI comes from the channel simulator: by
    default a person sitting still and breathing (--scenario still; try walk, enter, empty,
    activities). The gateway estimates presence, motion, breathing and heart rate per node,
    runs the bundled pose model (INT8 by default) with its streaming temporal head, and shows
    a live table: on a terminal a table redrawn in place, in a pipe one line per second.

    \b
    Examples:
      csi-edge demo                                   # 4 nodes at 20 Hz until Ctrl-C
      csi-edge demo --nodes 8 --duration 60 --http 127.0.0.1:8080
      csi-edge demo --scenario walk                   # motion: rates are withheld
      csi-edge demo --loss 0.05 --reboot-every 20     # watch lost frames and reboots
      csi-edge demo --duration 20 --json | jq .latest
    """
    import json
    import sys

    from csi_edge.app.demo import run_demo
    from csi_edge.config import GatewayConfig
    from csi_edge.report import jsonable
    from csi_edge.sinks.console import reports_text
    from csi_edge.sinks.nodeview import final_text

    if port != 0 and port < 1024:
        raise click.BadParameter("use port 0 or 1024..65535", param_hint="--port")
    spec = fleet_spec(
        nodes=nodes,
        rate=rate,
        jitter=jitter,
        loss=loss,
        reboot_every=reboot_every,
        layouts=layouts,
        same_id=same_id,
        seed=seed,
        scenario=scenario or "still",
    )
    cfg = GatewayConfig()
    cfg.ingest.udp = []  # the demo's own loopback source
    cfg.sinks.console = False  # the demo's console view, with ingest totals
    apply_gateway_options(
        cfg,
        http=http,
        mqtt=mqtt,
        jsonl=jsonl,
        pose=pose,
        vitals_model=vitals_model,
        precision=precision,
        **mqtt_transport,
    )
    stream = sys.stderr if as_json else sys.stdout
    gateway, summary = run_demo(
        cfg, spec, port, duration, stream, say=lambda line: click.echo(line, err=True)
    )
    if as_json:
        click.echo(json.dumps(jsonable(summary), default=str))
        return
    sim = summary["simulated"]
    click.echo(
        f"\nsimulated nodes sent {sim['sent']} frames; the gateway received {summary['frames']}"
    )
    click.echo(final_text(summary))
    click.echo("\n" + reports_text(gateway.last_reports))
