"""``csi-edge record``: lossless capture of what the nodes send, with receive times."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from csi_edge.cli.outputs import force_option, refuse_existing


@click.command()
@click.option(
    "--udp",
    "udp",
    metavar="HOST:PORT",
    help="Listen for RuView UDP datagrams here (e.g. 0.0.0.0:5005; port 0 picks a free one).",
)
@click.option(
    "--serial", "serial_port", metavar="PORT", help="Read CSI lines from this serial port."
)
@click.option(
    "--baud",
    type=click.IntRange(1200, 4_000_000),
    default=921600,
    show_default=True,
    help="Serial baud rate (esp-csi: 921600 or 2000000).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="File to write: pcap for --udp, csi-edge recording for --serial.",
)
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds."
)
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as one JSON object.")
@force_option
def command(udp, serial_port, baud, output, duration, as_json, force) -> None:
    """Record every datagram (UDP) or every line (serial) with its receive time, losslessly.

    UDP is written as a classic pcap (IPv4/UDP headers with the nodes' real source addresses
    and ports): Wireshark, tcpdump and `csi-edge decode` all read it. Serial lines go to
    csi-edge's text recording format, byte for byte (torn lines, log lines and non-UTF-8
    garbage included; only a line over 64 KiB without a newline, or the half line cut off by
    an unplug, is counted instead of kept).
    Ctrl-C (SIGINT) or SIGTERM stop cleanly: everything received is flushed, then a summary
    of what was recorded (frames per node, lost, packets, skipped) is printed.

    \b
    Examples:
      csi-edge record --udp 0.0.0.0:5005 -o session.pcap
      csi-edge record --udp :5005 -o 10min.pcap --duration 600 --json
      csi-edge record --serial /dev/ttyUSB0 --baud 2000000 -o bench.rec
      csi-edge decode session.pcap --summary       # look at it afterwards
    """
    if bool(udp) == bool(serial_port):
        raise click.UsageError("give exactly one source: --udp HOST:PORT or --serial PORT")
    import json

    from csi_edge.app.record import record
    from csi_edge.config import parse_hostport
    from csi_edge.report import jsonable
    from csi_edge.sinks.nodeview import final_text

    if udp:
        try:
            parse_hostport(udp)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--udp") from None
    refuse_existing(output, force=force)
    tty = sys.stderr.isatty()
    summary = record(
        output,
        udp=udp,
        serial_port=serial_port,
        baud=baud,
        duration=duration,
        say=lambda line: click.echo(line, err=True),
        progress=(lambda line: click.echo("\r" + line, err=True, nl=False)) if tty else None,
    )
    if tty:
        click.echo("", err=True)
    if as_json:
        click.echo(json.dumps(jsonable(summary)))
        return
    rec = summary["recorded"]
    kind = "datagrams" if rec["format"] == "pcap" else "lines"
    click.echo(f"recorded {rec['records']} {kind} to {rec['file']}")
    click.echo(final_text(summary))
