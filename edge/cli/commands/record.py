"""``csi-edge record``: lossless capture of what the nodes send, with receive times."""

from __future__ import annotations

import contextlib
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
    import asyncio

    from csi_edge.errors import DeviceError, file_error

    if serial_port and serial_port.startswith("/") and not Path(serial_port).exists():
        # checked before the output is created: the serial source would retry forever
        raise DeviceError(f"--serial {serial_port}: no such serial port (is the board plugged in?)")
    refuse_existing(output, force=force)
    started: list[bool] = []
    try:
        fh = open(output, "wb")  # noqa: SIM115 - closed in _record's finally
    except OSError as e:
        raise file_error(output, e, "cannot write") from None
    try:
        summary = asyncio.run(
            _record(udp, serial_port, baud, fh, output, duration, as_json, started)
        )
    except BaseException:
        with contextlib.suppress(OSError):  # the error being raised says more
            fh.close()
            if not started:  # the source never opened: nothing was recorded, leave no file
                output.unlink()
        raise
    try:
        fh.close()
    except OSError as e:
        raise file_error(output, e, "cannot write") from None
    _report(summary, as_json)


async def _record(
    udp, serial_port, baud, fh, output: Path, duration, as_json: bool, started: list
) -> dict:
    import asyncio

    from csi_edge.app.signals import stop_on_signals
    from csi_edge.errors import DeviceError, InputError
    from csi_edge.ingest import Ingest

    failed: list[OSError] = []  # the first write error (disk full, ...) stops the recording

    def write_failed(e: OSError) -> None:
        if not failed:
            failed.append(e)
            ingest.stop()

    writer, source = _open(udp, serial_port, baud, fh, write_failed)
    ingest = Ingest([source])
    try:
        await ingest.start()
    except OSError as e:
        what = f"cannot listen on UDP {udp}" if udp else f"cannot open serial port {serial_port}"
        raise DeviceError(f"{what}: {e.strerror or e}") from None
    started.append(True)
    where = f"UDP {source.address[0]}:{source.address[1]}" if udp else f"serial {serial_port}"
    click.echo(f"recording {where} -> {output} (Ctrl-C stops)", err=True)
    ticker = asyncio.create_task(_tick(ingest, writer, write_failed))
    try:
        with stop_on_signals(ingest.stop):
            await ingest.run(duration)
    finally:
        ticker.cancel()
        _flush(writer, write_failed)
        if sys.stderr.isatty():
            click.echo("", err=True)
    if failed:
        e = failed[0]
        raise InputError(f"{output}: cannot write: {e.strerror or e}; recording stopped")
    summary = ingest.summary()
    summary["recorded"] = {
        "file": str(output),
        "records": writer.count,
        "format": "pcap" if udp else "recording",
    }
    return summary


def _open(udp, serial_port, baud, fh, write_failed):
    """(writer, source): the source hands every datagram/line to the writer before decoding; a
    write error goes to ``write_failed`` (further records are not attempted)."""
    from csi_edge.codecs.pcap import PcapWriter
    from csi_edge.codecs.recording import RecordingWriter

    if udp:
        from csi_edge.config import parse_hostport
        from csi_edge.sources.udp import UdpSource

        try:
            host, port = parse_hostport(udp)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--udp") from None
        writer = PcapWriter(fh, dst_ip="127.0.0.1")  # for a wildcard address (0.0.0.0, ::)

        def sink(datagrams, times, addrs):
            # the bound address, numeric even when HOST was a name (--udp localhost:5005)
            ip, dst_port = source.address
            dst_ip = None if ip in ("0.0.0.0", "::") else ip
            try:
                for d, t, a in zip(datagrams, times, addrs, strict=True):
                    writer.write(d, t, a[0], a[1], dst_ip=dst_ip, dst_port=dst_port)
            except OSError as e:
                write_failed(e)

        source = UdpSource(host, port, raw_sink=sink)
        return writer, source
    from csi_edge.sources.serial import SerialSource

    writer = RecordingWriter(fh)

    def line_sink(lines, t):
        try:
            for line in lines:
                writer.write(t, serial_port, line)
        except OSError as e:
            write_failed(e)

    return writer, SerialSource(serial_port, baud, raw_sink=line_sink)


def _flush(writer, write_failed) -> None:
    try:
        writer.flush()
    except OSError as e:
        write_failed(e)


async def _tick(ingest, writer, write_failed) -> None:
    """Flush to disk about once a second (a crash loses at most a second) and show progress."""
    import asyncio

    while True:
        await asyncio.sleep(1.0)
        _flush(writer, write_failed)
        if sys.stderr.isatty():
            click.echo(
                f"\r{writer.count} records, {ingest.frames} frames, {len(ingest.nodes)} node(s)",
                err=True,
                nl=False,
            )


def _report(summary: dict, as_json: bool) -> None:
    import json

    from csi_edge.report import jsonable
    from csi_edge.sinks.nodeview import final_text

    if as_json:
        click.echo(json.dumps(jsonable(summary)))
    else:
        rec = summary["recorded"]
        click.echo(
            f"recorded {rec['records']} {'datagrams' if rec['format'] == 'pcap' else 'lines'} to {rec['file']}"
        )
        click.echo(final_text(summary))
