"""``csi-edge ha``: Home Assistant housekeeping (``ha forget NODE``)."""

from __future__ import annotations

import click


@click.group()
def command() -> None:
    """Home Assistant housekeeping for the MQTT discovery the gateway publishes.

    \b
    Examples:
      csi-edge ha forget 10.0.0.7#1                 # by node key
      csi-edge ha forget Bedroom -c gateway.toml    # by its name in HA, broker from the config
      csi-edge ha forget nonsense                   # lists the nodes that exist
    """


@command.command("forget")
@click.argument("node")
@click.option(
    "--gateway-id",
    metavar="ID",
    help="The gateway the node belongs to [default: the config's gateway_id, else this "
    "machine's, as `csi-edge run` would use].",
)
@click.option(
    "--broker",
    metavar="HOST[:PORT]",
    help="The MQTT broker [default: the config's sinks.mqtt.host, else localhost:1883].",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Gateway config: broker, username (password from $CSI_EDGE_MQTT_PASSWORD), topic "
    "prefixes and gateway_id.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was cleared as JSON.")
def forget(node: str, gateway_id: str | None, broker: str | None, config_path, as_json: bool):
    """Remove NODE's device (and its entities) from Home Assistant.

    NODE is the node key (10.0.0.7#1, mac_aabbccddeeff), its topic slug (10_0_0_7_1), its
    device id or its device name in Home Assistant. The broker's retained messages are read
    first, so a wrong name or gateway id lists what exists. Cleared (empty retained
    messages): the node's device config, per-entity configs of older gateways, its state and
    availability. Home Assistant then deletes the device.

    \b
    A node that is still sending comes back the next time the gateway reconnects or Home
    Assistant restarts: stop the node, or remove it from the inventory, first.
    Exit 0 done, 1 no such node (the nodes that exist are listed), 4 broker unreachable.
    """
    import json
    import os

    from csi_edge.config import load_config, parse_hostport
    from csi_edge.gatewayid import check_gateway_id, resolve_gateway_id
    from csi_edge.sinks.ha_forget import forget_node
    from csi_edge.sinks.mqtt import refuse_credentials_in_host

    cfg = load_config(config_path)
    m = cfg.sinks.mqtt
    spec = broker or m.host or "localhost"
    refuse_credentials_in_host(spec)
    if broker is None and m.host and ":" not in m.host:
        spec = f"{m.host}:{m.port}"
    host, port = parse_hostport(spec if ":" in spec else f"{spec}:1883", what="--broker")
    gw = (
        check_gateway_id(gateway_id, "--gateway-id")
        if gateway_id
        else resolve_gateway_id(cfg.gateway_id)
    )
    password = os.environ.get(m.password_env) if m.password_env else None
    res = forget_node(
        node,
        host=host,
        port=port,
        gateway_id=gw,
        prefix=m.prefix,
        discovery_prefix=m.discovery_prefix,
        username=m.username or None,
        password=password,
    )
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
        return
    label = f"{res.node} ({res.name})" if res.name else res.node
    click.echo(
        f"forgot {label} of gateway {res.gateway_id} on {res.broker}: "
        f"{len(res.cleared)} retained topic(s) cleared; Home Assistant removes device "
        f"{res.device_id}"
    )
    if res.was_online:
        click.echo(
            "note: the node was online: it comes back when the gateway reconnects or Home "
            "Assistant restarts; stop the node or remove it from the inventory",
            err=True,
        )
