"""One builder per sink: its part of a :class:`~csi_edge.config.GatewayConfig` -> the sink, or
None when that sink is not configured. Listed in :data:`csi_edge.sinks.SINKS`.

Every builder takes ``(cfg, ctx)``: ``ctx`` (:class:`SinkContext`) carries what the running
gateway lends its sinks (where the console view goes, the ingest-totals line, the status for
/health), so a new sink needs no new parameter threaded through the service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from csi_edge.config import ConfigError, GatewayConfig, parse_hostport
from csi_edge.report import Sink

log = logging.getLogger("csi_edge.service")


@dataclass(frozen=True)
class SinkContext:
    """What a sink may borrow from the gateway. ``console_stream``: where the console view
    goes (default stdout; stderr when stdout carries ``--json``); ``totals``: the ingest-totals
    line; ``status``: the gateway status behind the HTTP sink's /health and /metrics (None:
    the HTTP sink logs its URL itself, since no banner will)."""

    console_stream: TextIO | None = None
    totals: Callable[[], str] | None = None
    status: Callable[[], dict] | None = None


def rotate_policy(section: Any) -> Any:
    """A ``[sinks.*_rotate]`` config section as the rotating writer's policy."""
    from csi_edge.sinks.rotate import RotatePolicy

    return RotatePolicy(
        max_bytes=int(section.max_mb * 1024 * 1024),
        max_age_s=section.max_age_h * 3600.0,
        keep=section.keep,
        compress=section.compress,
    )


def console(cfg: GatewayConfig, ctx: SinkContext) -> Sink | None:
    if not cfg.sinks.console:
        return None
    from csi_edge.sinks.console import ConsoleSink

    return ConsoleSink(ctx.console_stream, totals=ctx.totals)


def jsonl(cfg: GatewayConfig, ctx: SinkContext) -> Sink | None:
    if not cfg.sinks.jsonl:
        return None
    from csi_edge.sinks.jsonl import JsonlSink

    try:
        return JsonlSink(cfg.sinks.jsonl, rotate_policy(cfg.sinks.jsonl_rotate))
    except OSError as e:
        raise ConfigError(
            f"sinks.jsonl {cfg.sinks.jsonl}: cannot open for appending: {e.strerror or e}"
        ) from None


def http(cfg: GatewayConfig, ctx: SinkContext) -> Sink | None:
    if not cfg.sinks.http:
        return None
    from csi_edge.sinks.http import HttpSink

    host, port = parse_hostport(cfg.sinks.http, default_host="127.0.0.1", what="sinks.http")
    try:
        sink = HttpSink(host, port, status=ctx.status, report_interval_s=cfg.report_interval_s)
    except OSError as e:
        raise ConfigError(
            f"sinks.http {cfg.sinks.http}: cannot listen: {e.strerror or e}"
        ) from None
    if ctx.status is None:  # `run` prints it in its start-up banner
        log.warning("live view at %s", sink.url)
    return sink


def mqtt(cfg: GatewayConfig, ctx: SinkContext) -> Sink | None:
    m = cfg.sinks.mqtt
    if not m.host:
        return None
    from csi_edge.sinks.mqtt import MqttSink, config_from
    from csi_edge.sinks.mqtt_transport import credentials, default_port

    port = m.port or default_port(m.tls)
    host, port = parse_hostport(
        m.host if ":" in m.host else f"{m.host}:{port}", what="sinks.mqtt.host"
    )
    username, password = credentials(m)
    return MqttSink(config_from(cfg, host, port, password, username))
