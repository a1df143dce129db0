"""One builder per sink: its part of a :class:`~csi_edge.config.GatewayConfig` -> the sink, or
None when that sink is not configured. Listed in :data:`csi_edge.sinks.SINKS`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TextIO

from csi_edge.config import ConfigError, GatewayConfig, parse_hostport
from csi_edge.report import Sink

log = logging.getLogger("csi_edge.service")


def console(
    cfg: GatewayConfig, stream: TextIO | None, totals: Callable[[], str] | None
) -> Sink | None:
    if not cfg.sinks.console:
        return None
    from csi_edge.sinks.console import ConsoleSink

    return ConsoleSink(stream, totals=totals)


def jsonl(
    cfg: GatewayConfig, stream: TextIO | None, totals: Callable[[], str] | None
) -> Sink | None:
    if not cfg.sinks.jsonl:
        return None
    from csi_edge.sinks.jsonl import JsonlSink

    try:
        return JsonlSink(cfg.sinks.jsonl)
    except OSError as e:
        raise ConfigError(
            f"sinks.jsonl {cfg.sinks.jsonl}: cannot open for appending: {e.strerror or e}"
        ) from None


def http(
    cfg: GatewayConfig, stream: TextIO | None, totals: Callable[[], str] | None
) -> Sink | None:
    if not cfg.sinks.http:
        return None
    from csi_edge.sinks.http import HttpSink

    host, port = parse_hostport(cfg.sinks.http, default_host="127.0.0.1", what="sinks.http")
    try:
        sink = HttpSink(host, port)
    except OSError as e:
        raise ConfigError(
            f"sinks.http {cfg.sinks.http}: cannot listen: {e.strerror or e}"
        ) from None
    log.warning("live view at %s", sink.url)
    return sink


def mqtt(
    cfg: GatewayConfig, stream: TextIO | None, totals: Callable[[], str] | None
) -> Sink | None:
    m = cfg.sinks.mqtt
    if not m.host:
        return None
    from csi_edge.sinks.mqtt import MqttSink, config_from

    host, port = parse_hostport(
        m.host if ":" in m.host else f"{m.host}:{m.port}", what="sinks.mqtt.host"
    )
    password = os.environ.get(m.password_env) if m.password_env else None
    if m.username and not password:
        log.warning(
            "sinks.mqtt: username %r is set but $%s is empty: connecting without a password",
            m.username,
            m.password_env,
        )
    return MqttSink(config_from(cfg, host, port, password))
