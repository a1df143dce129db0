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
from csi_edge.sinks.build import SinkContext

# name (the config key a reload compares) -> builder(cfg, SinkContext) -> Sink | None,
# in publishing order
SINKS: dict[str, Callable] = {
    "console": build.console,
    "jsonl": build.jsonl,
    "http": build.http,
    "mqtt": build.mqtt,
}


def build_sink_map(
    cfg,
    console_stream: TextIO | None = None,
    totals: Callable[[], str] | None = None,
    status: Callable[[], dict] | None = None,
    only: set[str] | None = None,
) -> dict[str, Sink]:
    """Every configured sink of ``cfg`` (a GatewayConfig) by its :data:`SINKS` name, in that
    order; ``only``: just these names (a reload rebuilds only the sinks whose section changed).
    The context arguments are :class:`~csi_edge.sinks.build.SinkContext`'s."""
    ctx = SinkContext(console_stream, totals, status)
    sinks: dict[str, Sink] = {}
    for name, builder in SINKS.items():
        if only is not None and name not in only:
            continue
        sink = builder(cfg, ctx)
        if sink is not None:
            sinks[name] = sink
    return sinks


def build_sinks(
    cfg,
    console_stream: TextIO | None = None,
    totals: Callable[[], str] | None = None,
    status: Callable[[], dict] | None = None,
) -> list[Sink]:
    """Every configured sink of ``cfg``, in :data:`SINKS` order (see :func:`build_sink_map`)."""
    return list(build_sink_map(cfg, console_stream, totals, status).values())


__all__ = ["SINKS", "Sink", "SinkContext", "build_sink_map", "build_sinks"]
