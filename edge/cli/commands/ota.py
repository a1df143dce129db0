"""``csi-edge ota``: update RuView CSI nodes over the network, canary first, verified."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("nodes", nargs=-1)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False),
    default=None,
    help="fleet.toml whose [[boards]] have host = the node's IP (plus node_id, mac, ota_port).",
)
@click.option(
    "--psk",
    default=None,
    envvar="CSI_EDGE_OTA_PSK",
    show_envvar=False,
    help="One PSK for every node [env CSI_EDGE_OTA_PSK] (default: the per-node PSKs stored by "
    "provision --ota-psk).",
)
@click.option("--canary", default=None, help="The node to update first (default: the first one).")
@click.option("--force", is_flag=True, help="Allow a downgrade or re-installing the same version.")
@click.option("--dry-run", is_flag=True, help="Check the image and every node; send nothing.")
@click.option(
    "--project",
    default="esp32-csi-node",
    show_default=True,
    help="Expected project name in the app descriptor ('' to skip).",
)
@click.option(
    "--boot-timeout",
    default=90.0,
    show_default=True,
    type=float,
    help="Seconds for a node to come back with the new version.",
)
@click.option(
    "--frame-timeout",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds for CSI frames to arrive again after the reboot.",
)
@click.option(
    "--csi-port",
    default=5005,
    show_default=True,
    type=int,
    help="UDP port the nodes stream to (listened on when free).",
)
@click.option(
    "--gateway-url",
    default=None,
    help="The running gateway to ask for the frames when it holds --csi-port "
    "(default: the one csi-edge status finds).",
)
@click.option("--no-csi-check", is_flag=True, help="Do not wait for CSI frames after an update.")
@click.option(
    "--upload-timeout",
    default=120.0,
    show_default=True,
    type=float,
    help="Socket timeout of the upload (≥ 120 s advised: real uploads take ~60-75 s).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def command(
    image,
    nodes,
    inventory,
    psk,
    canary,
    force,
    dry_run,
    project,
    boot_timeout,
    frame_timeout,
    csi_port,
    gateway_url,
    no_csi_check,
    upload_timeout,
    as_json,
):
    """Push an app image to RuView nodes over the network (HTTP port 8032), one at a time.

    NODES are HOST[:PORT][#NODE_ID] (port 8032 by default; the node id is what the CSI check
    looks for), or use --inventory. Before anything is sent the image is checked (magic,
    checksum, ESP32-S3, app descriptor, project name, not a downgrade unless --force) and every
    node is asked for /ota/status (PSK accepted, image fits its max_size). Then, canary first:
    POST /ota, wait until /ota/status shows the new version on the other partition, wait for the
    node's CSI frames; the first failure stops the rollout. Exit 0 all updated, 1 refused before
    any upload, 4 a node unreachable, 5 an update failed.

    \b
    Examples:
      csi-edge ota build/esp32-csi-node.bin 192.168.1.21#1 192.168.1.22#2 --dry-run
      csi-edge ota esp32-csi-node.bin --inventory fleet.toml --canary 192.168.1.21
    """
    from csi_edge.errors import InputError
    from csi_edge.firmware import ota

    if bool(nodes) == bool(inventory):
        raise click.UsageError("give NODES or --inventory (one of them)")
    img = ota.check_image(image, project)
    targets = ota.load_targets(inventory) if inventory else [ota.parse_node(n) for n in nodes]
    if canary:
        first = [t for t in targets if canary in (t.host, f"{t.host}:{t.port}", t.name)]
        if not first:
            raise InputError(f"--canary {canary}: not one of the nodes ({_names(targets)})")
        targets = [first[0]] + [t for t in targets if t is not first[0]]
    ota.attach_psks(targets, psk)
    opts = ota.Options(
        force=force,
        dry_run=dry_run,
        boot_timeout=boot_timeout,
        frame_timeout=frame_timeout,
        csi_port=csi_port,
        health=_health(gateway_url),
        csi_check=not no_csi_check,
        upload_timeout=upload_timeout,
    )
    say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    report = ota.rollout(img, targets, opts, progress=None if as_json else _progress, say=say)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(_table(report))
    if report.exit_code:
        from csi_edge.errors import CsiEdgeError

        bad = [n for n in report.nodes if n.status in ("failed", "unreachable", "refused")]
        err = CsiEdgeError(bad[0].message if bad else "the rollout did not complete")
        err.exit_code = report.exit_code  # type: ignore[assignment]
        raise err


def _health(gateway_url: str | None):
    """How ``ota`` reads the running gateway's /health when the gateway holds the CSI port."""

    def fetch() -> tuple[str, dict]:
        from csi_edge.app.statusclient import fetch_health, find_url

        url = find_url(gateway_url, None)
        return url, fetch_health(url, timeout=3.0)

    return fetch


def _names(targets) -> str:
    return ", ".join(t.name for t in targets)


def _progress(target, total: int):
    """A one-line progress bar on stderr (a plain final line when stderr is not a terminal)."""
    tty = sys.stderr.isatty()
    state = {"shown": -1}

    def update(sent: int) -> None:
        pct = sent * 100 // total if total else 100
        if tty and pct != state["shown"]:
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r  [{bar:<25}] {pct:3d}% {sent >> 10}/{total >> 10} KiB")
            state["shown"] = pct
        if sent >= total:
            sys.stderr.write("\r" if tty else "")
            sys.stderr.write(f"  sent {total} bytes to {target.name}\n")
        sys.stderr.flush()

    return update


def _table(report) -> str:
    head = "dry run: " if report.dry_run else ""
    lines = [f"{head}image {report.image_version}"]
    for n in report.nodes:
        ver = n.before or "?"
        if n.after and n.after != n.before:
            ver += f" -> {n.after}"
        why = n.message.removeprefix(n.node + ": ")
        lines.append(f"  {n.node:<30} {n.status:<13} {ver:<20} {why}")
    on = {}
    for n in report.nodes:
        on.setdefault(n.after or "unknown", []).append(n.node)
    lines.append("now: " + "; ".join(f"{v}: {', '.join(ns)}" for v, ns in on.items()))
    return "\n".join(lines)
