"""Lossless recording of what the nodes send (``csi-edge record``).

UDP datagrams go to a classic pcap with the nodes' real source addresses, serial lines to
csi-edge's text recording format, each with its receive time. The source hands every datagram
or line to the writer before decoding, so nothing a decoder rejects is lost. The file is
flushed about once a second (a crash loses at most a second); the first write error (disk
full, ...) stops the recording with one clear error; a source that never opened leaves no file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from csi_edge.errors import DeviceError, InputError, file_error

Say = Callable[[str], None]


def record(
    output: Path,
    *,
    udp: str | None = None,
    serial_port: str | None = None,
    baud: int = 921600,
    duration: float | None = None,
    say: Say = lambda _line: None,
    progress: Say | None = None,
) -> dict:
    """Record from exactly one of ``udp`` (HOST:PORT) or ``serial_port`` into ``output`` until
    ``duration`` ends or SIGINT/SIGTERM; returns the ingest summary plus ``"recorded"``."""
    if bool(udp) == bool(serial_port):
        raise InputError("give exactly one source: a UDP HOST:PORT or a serial port")
    if udp:
        from csi_edge.config import parse_hostport

        try:
            parse_hostport(udp)
        except ValueError as e:
            raise InputError(f"--udp {udp}: {e}") from None
    if serial_port and serial_port.startswith("/") and not Path(serial_port).exists():
        # checked before the output is created: the serial source would retry forever
        raise DeviceError(f"--serial {serial_port}: no such serial port (is the board plugged in?)")
    started: list[bool] = []
    try:
        fh = open(output, "wb")  # noqa: SIM115 - closed below, also on error
    except OSError as e:
        raise file_error(output, e, "cannot write") from None
    try:
        summary = asyncio.run(
            _record(udp, serial_port, baud, fh, output, duration, started, say, progress)
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
    return summary


async def _record(
    udp, serial_port, baud, fh: BinaryIO, output: Path, duration, started: list, say, progress
) -> dict:  # noqa: ANN001
    from csi_edge.app.signals import stop_on_signals
    from csi_edge.ingest import Ingest

    failed: list[OSError] = []  # the first write error stops the recording

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
    say(f"recording {where} -> {output} (Ctrl-C stops)")
    ticker = asyncio.create_task(_tick(ingest, writer, write_failed, progress))
    try:
        with stop_on_signals(ingest.stop):
            await ingest.run(duration)
    finally:
        ticker.cancel()
        _flush(writer, write_failed)
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


def _open(udp, serial_port, baud, fh, write_failed):  # noqa: ANN001, ANN202
    """(writer, source): the source hands every datagram/line to the writer before decoding; a
    write error goes to ``write_failed`` (further records are not attempted)."""
    from csi_edge.codecs.pcap import PcapWriter
    from csi_edge.codecs.recording import RecordingWriter

    if udp:
        from csi_edge.config import parse_hostport
        from csi_edge.sources.udp import UdpSource

        host, port = parse_hostport(udp)
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


def _flush(writer, write_failed) -> None:  # noqa: ANN001
    try:
        writer.flush()
    except OSError as e:
        write_failed(e)


async def _tick(ingest, writer, write_failed, progress) -> None:  # noqa: ANN001
    """Flush to disk about once a second and report progress."""
    while True:
        await asyncio.sleep(1.0)
        _flush(writer, write_failed)
        if progress is not None:
            progress(f"{writer.count} records, {ingest.frames} frames, {len(ingest.nodes)} node(s)")
