"""Where reports go: console, JSONL files, the HTTP live view, MQTT with Home Assistant discovery.

A sink has ``publish(reports)`` (called about once a second from the gateway loop; must not block
for long) and ``close()``. A sink that raises is counted by the gateway (``sink-error:<Sink>``
in its skips) and the other sinks still get the report; a broker that goes away is retried by
the client library, not fatal.

:data:`SINKS` is the one list of sinks: adding one is its module plus one builder line here
(the builder reads its part of the config and returns the sink, or None when not configured).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from csi_edge.report import Sink
from csi_edge.sinks import build

# name -> builder(cfg, console_stream, totals) -> Sink | None, in publishing order
SINKS: dict[str, Callable] = {
    "console": build.console,
    "jsonl": build.jsonl,
    "http": build.http,
    "mqtt": build.mqtt,
}


def build_sinks(
    cfg, console_stream: TextIO | None = None, totals: Callable[[], str] | None = None
) -> list[Sink]:
    """Every configured sink of ``cfg`` (a GatewayConfig), in :data:`SINKS` order."""
    sinks = []
    for builder in SINKS.values():
        sink = builder(cfg, console_stream, totals)
        if sink is not None:
            sinks.append(sink)
    return sinks


__all__ = ["SINKS", "Sink", "build_sinks"]
