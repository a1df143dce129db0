"""Sending to a gateway: simulated nodes or a re-sent capture (``csi-edge simulate-nodes``).

The CLI only parses options; this module resolves the target, runs the senders until the
duration ends or a signal arrives, and turns "every datagram failed" into one clear error
instead of a run that only counts send errors.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from csi_edge.app.signals import stop_on_signals
from csi_edge.errors import DeviceError
from csi_edge.sim.fleet import FleetSpec, build_fleet, fleet_summary

Say = Callable[[str], None]


def check_resolves(host: str, port: int) -> None:
    """Fail before sending when ``host`` does not resolve: otherwise every datagram fails and
    the run only counts send errors without saying why."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise DeviceError(f"target {host}:{port}: cannot resolve {host!r}: {e.strerror}") from None


def send_fleet(target: tuple[str, int], spec: FleetSpec, duration: float | None, say: Say) -> dict:
    """Run simulated nodes against ``target``; returns :func:`fleet_summary`'s document."""
    host, port = target
    check_resolves(host, port)
    fleet = build_fleet(target, spec)

    say(
        f"{spec.nodes} simulated node(s) -> udp://{host}:{port} at {spec.rate:g} Hz each "
        "(Ctrl-C stops)"
    )
    _send(lambda: fleet.run(duration), fleet.stop, target)
    doc = fleet_summary(fleet)
    errors = sum(s["send_errors"] for s in doc["nodes"].values())
    if doc["sent"] == 0 and errors:
        raise DeviceError(f"cannot send to {host}:{port}: all {errors} datagrams failed")
    return doc


def resend_capture(
    path: str, target: tuple[str, int], speed: float, duration: float | None, say: Say
) -> dict:
    """Re-send a capture's frames to ``target`` as ADR-018 datagrams, one socket per recorded
    source (``speed`` 0: as fast as possible)."""
    from csi_edge.capture import detect_format
    from csi_edge.ingest import Ingest
    from csi_edge.sources.replay import ReplaySource

    host, port = target
    check_resolves(host, port)
    detect_format(path)  # CaptureError (exit 1) names the file before anything is sent
    source = ReplaySource(path, speed=speed or None, resend=target)
    ingest = Ingest([source])

    pace = "as fast as possible" if not speed else f"at {speed:g}x the recorded pace"
    say(f"replaying {path} -> udp://{host}:{port} {pace}")
    _send(lambda: ingest.run(duration), ingest.stop, target)
    return {"replayed": path, "sent": source.sent, "send_errors": source.send_errors}


def _send(run: Callable[[], Awaitable[object]], stop: Callable[[], None], target) -> None:  # noqa: ANN001
    """Run the senders until they end or SIGINT/SIGTERM calls ``stop``; a socket error is a
    DeviceError naming the target."""

    async def main() -> None:
        with stop_on_signals(stop):
            await run()

    try:
        asyncio.run(main())
    except OSError as e:
        raise DeviceError(f"cannot send to {target[0]}:{target[1]}: {e.strerror or e}") from None
