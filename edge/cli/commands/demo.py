"""``csi-edge demo``: simulated nodes -> the full gateway (vitals, bundled pose model), live view."""

from __future__ import annotations

import click

from edge.cli.commands.simulate_nodes import build_fleet, fleet_summary, node_options


@click.command()
@node_options
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="UDP port the gateway listens on (127.0.0.1); 0 picks a free one.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after S seconds (default: Ctrl-C).",
)
@click.option(
    "--pose",
    default="csi-edge-pose",
    show_default=True,
    metavar="BUNDLE",
    help="Pose model (bundled name, folder, or 'none').",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8", "int8-tflite"]),
    default="int8",
    show_default=True,
    help="Pose model variant.",
)
@click.option("--http", metavar="HOST:PORT", help="Also serve the live view (e.g. 127.0.0.1:8080).")
@click.option(
    "--mqtt",
    metavar="HOST[:PORT]",
    help="Also publish to an MQTT broker (Home Assistant discovery).",
)
@click.option(
    "--jsonl", type=click.Path(dir_okay=False), help="Also append every report to this JSONL file."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="End with one JSON summary on stdout (live view on stderr).",
)
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
    precision,
    http,
    mqtt,
    jsonl,
    as_json,
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
    import asyncio
    import json
    import sys

    from edge.cli.nodeview import final_text, jsonable
    from edge.config import ConfigError

    if port != 0 and port < 1024:
        raise click.BadParameter("use port 0 or 1024..65535", param_hint="--port")
    fleet_opts = dict(
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
    stream = sys.stderr if as_json else sys.stdout
    try:
        gateway, summary = asyncio.run(
            _run(fleet_opts, port, duration, stream, pose, precision, http, mqtt, jsonl)
        )
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(
            f"cannot listen on UDP 127.0.0.1:{port}: {e.strerror or e}"
        ) from None
    if as_json:
        click.echo(json.dumps(jsonable(summary), default=str))
        return
    sim = summary["simulated"]
    click.echo(
        f"\nsimulated nodes sent {sim['sent']} frames; the gateway received {summary['frames']}"
    )
    click.echo(final_text(summary))
    from edge.sinks.console import HEADERS, report_cells

    rows = [HEADERS] + [report_cells(r) for r in gateway.last_reports]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    click.echo(
        "\n"
        + "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )
    )


async def _run(fleet_opts, port, duration, stream, pose, precision, http, mqtt, jsonl):
    import asyncio
    import signal

    from edge.cli.nodeview import totals_line
    from edge.config import GatewayConfig
    from edge.gateway import Gateway
    from edge.service import build_sinks, load_pose_runtime, load_vitals_model
    from edge.sinks.console import ConsoleSink
    from edge.sources.udp import UdpSource

    cfg = GatewayConfig()
    cfg.ingest.udp = []
    cfg.models.pose = "" if pose.lower() == "none" else pose
    cfg.models.precision = precision
    cfg.sinks.console = False
    cfg.sinks.http, cfg.sinks.jsonl = http or "", jsonl or ""
    cfg.sinks.mqtt.host = mqtt or ""
    source = UdpSource("127.0.0.1", port)
    gateway = Gateway(
        cfg, [source], build_sinks(cfg), load_pose_runtime(cfg), load_vitals_model(cfg)
    )
    gateway.sinks.insert(
        0,
        ConsoleSink(
            stream,
            every_s=1.0,
            totals=lambda: totals_line(gateway.ingest.summary()),
            title="csi-edge demo",
        ),
    )
    await gateway.ingest.start()
    host, bound = source.address
    fleet = build_fleet((host, bound), **fleet_opts)
    model = (
        "no pose model" if gateway.pose is None else f"pose model {cfg.models.pose} ({precision})"
    )
    click.echo(
        f"gateway on udp://{host}:{bound} with {model}; {fleet_opts['nodes']} simulated node(s) at "
        f"{fleet_opts['rate']:g} Hz, scenario {fleet_opts['scenario']!r} (Ctrl-C stops)",
        err=True,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.stop)
    sender = asyncio.create_task(fleet.run())
    runner = asyncio.create_task(gateway.run())
    try:
        done, _ = await asyncio.wait(
            {sender, runner}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        # stop the senders first and let their last datagrams land, so sent == received
        fleet.stop()
        await sender
        await asyncio.sleep(0.1)
        gateway.stop()
        await runner
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    summary = gateway.summary()
    summary["simulated"] = fleet_summary(fleet)
    return gateway, summary
