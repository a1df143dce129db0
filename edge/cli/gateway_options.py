"""Options shared by the commands that run the gateway (``csi-edge run``, ``csi-edge demo``),
and the one place that folds them into a :class:`~csi_edge.config.GatewayConfig`."""

from __future__ import annotations

import click

_OPTIONS = (
    click.option("--http", metavar="HOST:PORT", help="Serve the live view (/) and /api/state here, e.g. 127.0.0.1:8080."),
    click.option("--mqtt", metavar="HOST[:PORT]", help="Publish to this MQTT broker, with Home Assistant discovery."),
    click.option("--jsonl", type=click.Path(dir_okay=False), help="Append every report to this JSONL file."),
    click.option("--pose", metavar="BUNDLE", help="Pose model: a bundled name, a bundle folder, or 'none' [default: csi-edge-pose]."),
    click.option("--vitals-model", "vitals_model", metavar="BUNDLE", help="Vital-sign model reported beside the DSP estimate (bundled name, folder, or 'none') [default: csi-edge-vitals]."),
    click.option("--precision", type=click.Choice(["fp32", "int8", "int8-tflite"]), help="Model variant for both models [default: int8]."),
    click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds (default: run until Ctrl-C / SIGTERM)."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout when the gateway stops."),
)  # fmt: skip


def gateway_options(f):
    """Decorate a click command with the shared gateway options."""
    for opt in reversed(_OPTIONS):
        f = opt(f)
    return f


def apply_gateway_options(
    cfg, *, http=None, mqtt=None, jsonl=None, pose=None, vitals_model=None, precision=None
) -> None:
    """Fold command-line overrides into ``cfg`` (a GatewayConfig); None leaves a value alone."""
    if http:
        cfg.sinks.http = http
    if mqtt:
        from csi_edge.sinks.mqtt import refuse_credentials_in_host

        refuse_credentials_in_host(mqtt)  # before anything can echo it (parse_hostport would)
        cfg.sinks.mqtt.host = mqtt
    if jsonl:
        cfg.sinks.jsonl = jsonl
    if pose:
        cfg.models.pose = "" if pose.lower() == "none" else pose
    if vitals_model:
        cfg.models.vitals = "" if vitals_model.lower() == "none" else vitals_model
    if precision:
        cfg.models.precision = precision
