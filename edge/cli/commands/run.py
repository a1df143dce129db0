"""``csi-edge run``: the headless gateway daemon."""

from __future__ import annotations

import click

from csi_edge.cli.gateway_options import apply_gateway_options, gateway_options


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Gateway config file (TOML).",
)
@click.option(
    "--udp",
    multiple=True,
    metavar="HOST:PORT",
    help="Listen for ADR-018 UDP here (repeatable; overrides the config).",
)
@click.option(
    "--udp-allow",
    "udp_allow",
    multiple=True,
    metavar="NET",
    help="Accept UDP only from this address or network, e.g. 192.168.10.0/24 (repeatable; "
    "overrides ingest.allow). Without it, anyone who can reach the port may send.",
)
@click.option(
    "--serial",
    multiple=True,
    metavar="PORT[@BAUD]",
    help="Read CSI lines from a serial port (repeatable).",
)
@click.option(
    "--quiet", is_flag=True, help="No console view (for services: use --jsonl/--mqtt/--http)."
)
@click.option(
    "--print-config", is_flag=True, help="Print the effective configuration as TOML and exit."
)
@gateway_options
def command(
    config_path,
    udp,
    udp_allow,
    serial,
    http,
    mqtt,
    jsonl,
    pose,
    vitals_model,
    precision,
    duration,
    quiet,
    as_json,
    print_config,
    **mqtt_transport,
):
    """Run the gateway: ingest CSI from nodes, estimate presence, vitals and pose, publish.

    Listens for RuView ADR-018 datagrams on UDP port 5005 by default (many nodes on one
    port) and/or reads esp-csi / ESP32-CSI-Tool lines from serial ports. Per node it reports,
    about once a second: presence, motion, breathing and heart rate (with confidences, null
    while the person moves), the pose (when a pose model is loaded), the node's own on-board
    vitals, and link statistics. Reports go to the console, and to JSONL / HTTP / MQTT when
    configured. SIGINT or SIGTERM stop it cleanly; SIGHUP re-reads --config (sinks, models,
    offline timeout) without dropping sources or node state. At start it prints what it listens
    on, loaded and writes to; under systemd (Type=notify) it reports READY, STATUS and WATCHDOG.

    \b
    Examples:
      csi-edge run                                  # UDP :5005, console view
      csi-edge run --http 127.0.0.1:8080            # live view, /health, /metrics on this machine
      csi-edge run --http 192.168.1.5:8080          # on the LAN: needs the token
                                                    #   (csi-edge status --token prints it)
      csi-edge run --mqtt homeassistant.local       # Home Assistant picks nodes up by itself
      csi-edge run --serial /dev/ttyUSB0@921600     # an esp-csi board on USB
      csi-edge run --udp-allow 192.168.10.0/24      # only the nodes' subnet may send
      csi-edge run --print-config > gateway.toml    # then: csi-edge run -c gateway.toml
    """
    import asyncio
    import json
    import sys

    from csi_edge.config import SerialSource, dump_config, load_config
    from csi_edge.errors import DeviceError

    serial_sources = []
    for spec in serial:
        port, _, baud = spec.partition("@")
        try:
            serial_sources.append(SerialSource(port, int(baud) if baud else 921600))
        except ValueError:
            raise click.BadParameter(
                f"{spec!r}: expected PORT or PORT@BAUD, e.g. /dev/ttyUSB0@921600",
                param_hint="--serial",
            ) from None

    def make_config():
        """The config file with the command line on top: at start and on every SIGHUP."""
        cfg = load_config(config_path)
        if udp:
            cfg.ingest.udp = list(udp)
        if udp_allow:
            from csi_edge.config import check_ingest

            cfg.ingest.allow = list(udp_allow)
            check_ingest(cfg.ingest, "--udp-allow")
        cfg.ingest.serial.extend(serial_sources)
        apply_gateway_options(
            cfg,
            http=http,
            mqtt=mqtt,
            jsonl=jsonl,
            pose=pose,
            vitals_model=vitals_model,
            precision=precision,
            **mqtt_transport,
        )
        if quiet:
            cfg.sinks.console = False
        return cfg

    cfg = make_config()
    if print_config:
        click.echo(dump_config(cfg), nl=False)
        return

    from csi_edge.service import build_gateway, run_until_signal

    # with --json, stdout carries only the summary: the console view goes to stderr
    gateway = build_gateway(cfg, console_stream=sys.stderr if as_json else None)
    try:
        asyncio.run(
            run_until_signal(
                gateway, duration, reload=make_config if config_path else None, banner=True
            )
        )
    except OSError as e:
        where = ", ".join(
            [f"udp {u}" for u in cfg.ingest.udp] + [s.port for s in cfg.ingest.serial]
        )
        raise DeviceError(
            f"cannot open a source ({where}): {e.strerror or e} (is another gateway on that port?)"
        ) from None
    if as_json:
        from csi_edge.report import jsonable

        click.echo(json.dumps(jsonable(gateway.summary()), default=str))
    else:
        s = gateway.summary()
        click.echo(
            f"gateway stopped: {s['frames']} frames from {len(s['nodes'])} node(s), {s['reports']} reports",
            file=sys.stderr,
        )
