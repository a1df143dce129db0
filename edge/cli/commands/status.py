"""``csi-edge status``: the health of a running gateway, read from its ``/health``."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--url",
    metavar="URL",
    help="The gateway's HTTP address [default: the running gateway's, "
    "else the config's sinks.http, else http://127.0.0.1:8080/].",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Gateway config (for sinks.http).",
)
@click.option(
    "--token",
    "show_token",
    is_flag=True,
    help="Print the HTTP access token (created on first use) and exit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print /health as JSON.")
def command(url, config_path, show_token, as_json):
    """Show a running gateway's state: sources, nodes (online, rate, loss, last frame), MQTT,
    report lag. Exit 0 when ok or degraded, 5 when unhealthy, 4 when no gateway answers.

    \b
    Examples:
      csi-edge status                 # the gateway on this machine
      csi-edge status --json | jq .nodes
      csi-edge status --token         # for http://<gateway>:8080/?token=... off loopback
      sudo CSI_EDGE_STATE_DIR=/var/lib/csi-edge csi-edge status --token   # the service's token
    """
    import json

    from csi_edge.app.statusclient import fetch_health, find_url, format_health
    from csi_edge.errors import CheckFailed
    from csi_edge.sinks.http_token import load_or_create_token

    if show_token:
        click.echo(load_or_create_token())
        return
    target = find_url(url, config_path)
    health = fetch_health(target)
    if as_json:
        click.echo(json.dumps(health))
    else:
        click.echo(format_health(health, target))
    if health.get("status") in ("unhealthy", "starting"):
        raise CheckFailed(
            f"gateway at {target} is {health['status']}: " + "; ".join(health.get("problems") or [])
        )
