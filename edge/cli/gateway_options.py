"""Options shared by the commands that run the gateway (``csi-edge run``, ``csi-edge demo``),
and the one place that folds them into a :class:`~csi_edge.config.GatewayConfig`."""

from __future__ import annotations

import click

_OPTIONS = (
    click.option("--http", metavar="HOST:PORT", help="Serve the live view (/) and /api/state here, e.g. 127.0.0.1:8080."),
    click.option("--mqtt", metavar="HOST[:PORT]", help="Publish to this MQTT broker, with Home Assistant discovery (credentials: $CSI_EDGE_MQTT_USERNAME / $CSI_EDGE_MQTT_PASSWORD or sinks.mqtt.password_file, never an option)."),
    click.option("--mqtt-tls", "mqtt_tls", is_flag=True, default=None, help="TLS to the MQTT broker (port 8883 unless given)."),
    click.option("--mqtt-ca-file", "mqtt_ca_file", type=click.Path(dir_okay=False), help="CA certificate (PEM) the broker's certificate must chain to [default: the system's CAs]; implies --mqtt-tls."),
    click.option("--mqtt-cert-file", "mqtt_cert_file", type=click.Path(dir_okay=False), help="Client certificate (PEM) for a broker that requires one; implies --mqtt-tls."),
    click.option("--mqtt-key-file", "mqtt_key_file", type=click.Path(dir_okay=False), help="The client certificate's unencrypted key (PEM), if not in --mqtt-cert-file."),
    click.option("--mqtt-insecure", "mqtt_insecure", is_flag=True, default=None, help="Do not verify the broker's certificate or host name (self-signed; logs a warning); implies --mqtt-tls."),
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
    cfg,
    *,
    http=None,
    mqtt=None,
    jsonl=None,
    pose=None,
    vitals_model=None,
    precision=None,
    mqtt_tls=None,
    mqtt_ca_file=None,
    mqtt_cert_file=None,
    mqtt_key_file=None,
    mqtt_insecure=None,
) -> None:
    """Fold command-line overrides into ``cfg`` (a GatewayConfig); None leaves a value alone."""
    m = cfg.sinks.mqtt
    for key, value in (
        ("ca_file", mqtt_ca_file),
        ("cert_file", mqtt_cert_file),
        ("key_file", mqtt_key_file),
        ("insecure", mqtt_insecure),
    ):
        if value:
            setattr(m, key, value)
            m.tls = True  # a CA, a client certificate or insecure only make sense with TLS
    if mqtt_tls:
        m.tls = True
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
