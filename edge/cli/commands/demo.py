"""``csi-edge demo``: simulated nodes -> the gateway's UDP ingest, with a live per-node view."""

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
    "--json",
    "as_json",
    is_flag=True,
    help="End with one JSON summary on stdout (live view on stderr).",
)
def command(port, duration, as_json, **fleet_opts):
    """Run the gateway's ingest against simulated ESP32 nodes on this machine.

    Simulated nodes send real RuView ADR-018 datagrams over UDP loopback to the gateway's
    ingest (the same code that listens to real boards). A live view, refreshed every second,
    shows per node: frames, measured rate, lost / duplicate / reordered frames, reboots,
    RSSI and subcarrier layouts (frames per pair count), plus packets and skipped inputs.
    On a terminal it is a table (rich); in a pipe or log, one line per second.

    \b
    Examples:
      csi-edge demo                                   # 4 nodes at 20 Hz until Ctrl-C
      csi-edge demo --nodes 8 --duration 30
      csi-edge demo --loss 0.05 --reboot-every 10     # watch lost frames and reboots
      csi-edge demo --layouts 64,128,192 --same-id    # mixed layouts; all boards id 1
      csi-edge demo --scenario still                  # CSI of a person breathing in a room
      csi-edge demo --duration 5 --json | jq .nodes
    """
    import asyncio
    import json
    import sys

    from edge.cli.nodeview import final_text, jsonable

    if port != 0 and port < 1024:
        raise click.BadParameter("use port 0 or 1024..65535", param_hint="--port")
    view_stream = sys.stderr if as_json else sys.stdout
    try:
        summary = asyncio.run(_run(fleet_opts, port, duration, view_stream))
    except OSError as e:
        raise click.ClickException(
            f"cannot listen on UDP 127.0.0.1:{port}: {e.strerror or e}"
        ) from None
    if as_json:
        click.echo(json.dumps(jsonable(summary)))
    else:
        sim = summary["simulated"]
        click.echo(
            f"\nsimulated nodes sent {sim['sent']} frames; the gateway received {summary['frames']}"
        )
        click.echo(final_text(summary))


async def _run(fleet_opts: dict, port: int, duration, stream):
    import asyncio
    import signal

    from edge.cli.nodeview import LiveView
    from edge.ingest import Ingest
    from edge.sources.udp import UdpSource

    source = UdpSource("127.0.0.1", port)
    ingest = Ingest([source])
    await ingest.start()
    host, bound = source.address
    fleet = build_fleet((host, bound), **fleet_opts)
    nodes, rate = fleet_opts["nodes"], fleet_opts["rate"]
    click.echo(
        f"gateway ingest on udp://{host}:{bound}; {nodes} simulated node(s) at {rate:g} Hz "
        f"(Ctrl-C stops)",
        err=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sender = asyncio.create_task(fleet.run())
    runner = asyncio.create_task(ingest.run())
    deadline = None if duration is None else loop.time() + duration
    stopped = asyncio.ensure_future(stop.wait())
    try:
        with LiveView(stream, title=f"csi-edge demo: udp://{host}:{bound}") as view:
            while not stop.is_set() and not runner.done():
                left = 1.0 if deadline is None else min(1.0, deadline - loop.time())
                if left <= 0:
                    break
                await asyncio.wait({stopped, runner}, timeout=left)
                view.update(ingest.summary())
    finally:
        # stop the senders first and let their last datagrams land, so sent == received
        stopped.cancel()
        fleet.stop()
        await sender
        await asyncio.sleep(0.1)
        ingest.stop()
        await runner
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    summary = ingest.summary()
    summary["simulated"] = fleet_summary(fleet)
    return summary
