"""The demo: simulated nodes on loopback -> the full gateway, as ``csi-edge demo`` runs it.

In the library, not the CLI, so the README's first command and a test run the same assembly:
a loopback UDP source, the configured sinks (HTTP, MQTT, JSONL) plus a console view with the
ingest totals, a simulated fleet, and a stop that lets the last datagrams land (sent == received).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import IO

from csi_edge.config import GatewayConfig
from csi_edge.errors import DeviceError
from csi_edge.sim.fleet import FleetSpec


def run_demo(
    cfg: GatewayConfig,
    spec: FleetSpec,
    port: int,
    duration: float | None,
    stream: IO[str],
    say: Callable[[str], None],
):
    """Run until ``duration`` ends or a signal; returns ``(gateway, summary)`` where summary is
    the gateway's with the fleet's own counts under ``"simulated"``."""
    try:
        return asyncio.run(_run(cfg, spec, port, duration, stream, say))
    except OSError as e:
        raise DeviceError(f"cannot listen on UDP 127.0.0.1:{port}: {e.strerror or e}") from None


async def _run(cfg, spec: FleetSpec, port: int, duration, stream, say):  # noqa: ANN001, ANN202
    from csi_edge.app.signals import stop_on_signals
    from csi_edge.app.status import StatusBuilder
    from csi_edge.gateway import Gateway
    from csi_edge.service import build_sinks, load_pose_runtime, load_vitals_model
    from csi_edge.sim.fleet import build_fleet, fleet_summary
    from csi_edge.sinks.console import ConsoleSink
    from csi_edge.sources.udp import UdpSource

    source = UdpSource("127.0.0.1", port)
    gateway = Gateway(cfg, [source], [], load_pose_runtime(cfg), load_vitals_model(cfg))
    gateway.sinks = build_sinks(cfg, status=StatusBuilder(gateway))  # status: /health, /metrics
    for sink in gateway.sinks:
        if hasattr(sink, "url"):
            say(f"live view at {sink.url}")
    gateway.sinks.insert(
        0, ConsoleSink(stream, every_s=1.0, totals=gateway.totals_line, title="csi-edge demo")
    )
    await gateway.ingest.start()
    host, bound = source.address
    fleet = build_fleet((host, bound), spec)
    model = (
        "no pose model"
        if gateway.pose is None
        else f"pose model {cfg.models.pose} ({cfg.models.precision})"
    )
    say(
        f"gateway on udp://{host}:{bound} with {model}; {spec.nodes} simulated node(s) at "
        f"{spec.rate:g} Hz, scenario {spec.scenario!r} (Ctrl-C stops)"
    )
    with stop_on_signals(gateway.stop):
        sender = asyncio.create_task(fleet.run())
        runner = asyncio.create_task(gateway.run())
        try:
            await asyncio.wait(
                {sender, runner}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            # stop the senders first and let their last datagrams land, so sent == received
            fleet.stop()
            await sender
            await asyncio.sleep(0.1)
            gateway.stop()
            await runner
    summary = gateway.summary()
    summary["simulated"] = fleet_summary(fleet)
    return gateway, summary
