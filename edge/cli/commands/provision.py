"""``csi-edge provision``: configure an ESP32-S3 CSI node's NVS (Wi-Fi, gateway, node id, ...)."""

from __future__ import annotations

import json

import click

from csi_edge.cli.commands.flash import connection_options

# Kept in step with csi_edge.firmware.nodecfg.KEYS (a test checks it); listed here so --help stays instant.
_KEY_OPTIONS = [
    ("ssid", "Wi-Fi network name (≤ 32 bytes)."),
    (
        "password",
        "Wi-Fi password, 8–63 chars, empty = open; '-' reads it from stdin (keeps it out of the "
        "shell history and `ps`) [env CSI_EDGE_WIFI_PASSWORD].",
    ),
    ("target_ip", "Gateway IPv4 the node streams to (default: this gateway's LAN address)."),
    ("target_port", "Gateway UDP port (firmware default 5005)."),
    ("node_id", "Node id 0–255 carried in every frame."),
    ("hop_count", "Channel-hop count 1–6."),
    ("chan_list", "Hop channels, e.g. 1,6,11 (≤ 6)."),
    ("dwell_ms", "Dwell per channel in ms (≥ 10)."),
    ("tdm_slot", "TDM slot (< --tdm-nodes)."),
    ("tdm_nodes", "TDM node count."),
    ("edge_tier", "0 raw only, 1 +DSP vitals/features, 2 +compressed frames."),
    ("pres_thresh", "Presence threshold ×1000 (0 = auto)."),
    ("fall_thresh", "Fall threshold ×1000."),
    ("vital_win", "Vitals window 32–256."),
    ("vital_int", "ms between vitals packets (≥ 100)."),
    ("subk_count", "Subcarrier count 1–32."),
    ("power_duty", "Power duty % 10–100."),
    ("wasm_max", "Max WASM modules 1–8."),
    ("wasm_verify", "Verify WASM signatures 0/1."),
    ("wasm_pubkey", "WASM signing public key, 64 hex digits."),
    ("csi_channel", "CSI channel 1–14 or 36–177 (0 = auto)."),
    ("filter_mac", "Only CSI from this transmitter, aa:bb:cc:dd:ee:ff (strongly advised)."),
    ("seed_url", "Seed URL (≤ 63 chars)."),
    ("seed_token", "Seed bearer token (≤ 63 chars) [env CSI_EDGE_SEED_TOKEN]."),
    ("zone_name", "Zone name (≤ 15 chars); alias --zone."),
    ("swarm_hb", "Swarm heartbeat seconds (0 = default)."),
    ("swarm_ingest", "Swarm ingest seconds (0 = default)."),
    (
        "ota_psk",
        "OTA bearer token: 'auto' = a random one per board, or a value (≤ 64 chars) "
        "[env CSI_EDGE_OTA_PSK]; kept in the state directory (0600) for csi-edge ota.",
    ),
]
_ENV = {
    "password": "CSI_EDGE_WIFI_PASSWORD",
    "seed_token": "CSI_EDGE_SEED_TOKEN",
    "ota_psk": "CSI_EDGE_OTA_PSK",
}


def _key_options(f):
    for name, help_text in reversed(_KEY_OPTIONS):
        decls = ["--" + name.replace("_", "-")]
        if name == "zone_name":
            decls.append("--zone")
        f = click.option(
            *decls, name, default=None, envvar=_ENV.get(name), show_envvar=False, help=help_text
        )(f)
    return f


@click.command()
@click.option("--port", "-p", default=None, help="Serial port of the board.")
@_key_options
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False),
    default=None,
    help="fleet.toml: provision several boards one after another.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where --inventory records MAC/node id/firmware (default: <inventory>.results.json).",
)
@click.option("--show", is_flag=True, help="Only read the board's configuration back and print it.")
@click.option("--reveal", is_flag=True, help="With --show: print passwords and tokens unmasked.")
@click.option(
    "--wait", is_flag=True, help="Reset the node, watch it boot and wait for its first UDP frames."
)
@click.option(
    "--wait-timeout",
    default=60.0,
    show_default=True,
    type=float,
    help="Seconds to wait for the boot.",
)
@click.option(
    "--frame-timeout",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds to wait for frames once the node says it streams.",
)
@click.option(
    "--force-defaults",
    is_flag=True,
    help="Replace an unreadable NVS partition (its settings are lost).",
)
@connection_options
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the Wi-Fi password from this file (its first line), e.g. a systemd credential.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def command(
    ctx,
    port,
    password_file,
    inventory,
    results,
    show,
    reveal,
    wait,
    wait_timeout,
    frame_timeout,
    force_defaults,
    baud,
    before,
    after,
    no_stub,
    connect_attempts,
    as_json,
    **keys,
):
    """Write the node's configuration (NVS namespaces csi_cfg and security) and verify it.

    Reads the board's NVS first, so settings you do not give keep their values; every value is
    checked against the firmware's limits before anything is written; the complete image is
    written at the NVS partition from the board's own partition table and read back.
    Passwords and tokens never appear in logs or results files.

    \b
    Examples:
      csi-edge provision -p /dev/ttyUSB0 --ssid HomeNet --password 's3cretpass' --node-id 3 --wait
      csi-edge provision -p /dev/ttyUSB0 --filter-mac aa:bb:cc:dd:ee:ff      # change one key
      csi-edge provision -p /dev/ttyUSB0 --show                             # read back (masked)
      csi-edge provision --inventory fleet.toml --ssid HomeNet --wait        # a fleet
    \b
    fleet.toml:
      [defaults]
      ssid = "HomeNet"
      [[boards]]
      port = "/dev/ttyUSB0"      # or mac = "f4:12:fa:00:00:01"
      node_id = 1
      zone = "kitchen"
    """
    from csi_edge.errors import ConfigError, ExitCode, file_error
    from csi_edge.firmware import fleet, nodecfg
    from csi_edge.firmware import provision as prov

    def note(line: str) -> None:
        click.echo(f"note: {line}", err=True)

    session = dict(
        baud=baud, before=before, after=after, no_stub=no_stub, connect_attempts=connect_attempts
    )
    try:
        if show:
            if not port:
                raise click.UsageError("--show needs --port")
            out = prov.show(port, reveal=reveal, progress=not as_json, **session)
            click.echo(json.dumps(out) if as_json else _show_text(out))
            return
        keys["password"] = _password(keys.get("password"), password_file)
        changes = {}
        for name, text in keys.items():
            if text is not None:
                changes[name] = nodecfg.parse_option(name, text)
        if inventory:
            clash = [
                o
                for o, v in (
                    ("--port", port),
                    ("--node-id", changes.get("node_id")),
                    ("--tdm-slot", changes.get("tdm_slot")),
                )
                if v is not None
            ]
            if clash:
                raise ConfigError(
                    f"{', '.join(clash)} cannot be used with --inventory (each board's value "
                    "comes from its [[boards]] entry); no board was touched"
                )
            out_path, rows, ok = fleet.provision_fleet(
                inventory,
                changes,
                session,
                results=results,
                wait=wait,
                wait_timeout=wait_timeout,
                frame_timeout=frame_timeout,
                force_defaults=force_defaults,
                progress=not as_json,
                note=None if as_json else note,
                on_board=None
                if as_json
                else (lambda r: click.echo(f"{r['port']} node {r['node_id']}: {r['status']}")),
            )
            if as_json:
                click.echo(json.dumps({"results": str(out_path), "boards": rows}))
            else:
                click.echo(f"results: {out_path}")
            ctx.exit(0 if ok else int(ExitCode.DEVICE))  # each board's outcome is printed
        if not port:
            raise click.UsageError("give --port (or --inventory)")
        fleet.auto_psk(changes)
        default_ip = fleet.default_target(changes, None if as_json else note)
        on_line = None if as_json else (lambda line: click.echo(f"  | {line}", err=True))
        res = prov.provision(
            port,
            changes,
            force_defaults=force_defaults,
            wait=wait,
            wait_timeout=wait_timeout,
            frame_timeout=frame_timeout,
            progress=not as_json,
            on_line=on_line,
            default_target_ip=default_ip,
            **session,
        )
    except OSError as e:  # a file on the command line; boards and ports raise DeviceError (4)
        if e.filename is None:
            raise
        raise file_error(e.filename, e) from None
    fleet.keep_psk(res, changes)
    if as_json:
        click.echo(json.dumps(res.as_dict()))
    else:
        for note in res.notes:
            click.echo(f"note: {note}", err=True)
        what = "written and verified" if res.written else "already up to date (nothing written)"
        click.echo(
            f"{res.mac} node {res.node_id}: NVS at {res.nvs_offset} {what}; "
            f"changed: {', '.join(res.changed) or 'nothing'}"
        )
        if res.watch:
            click.echo(res.watch["line"])
    if res.watch and not res.watch["streaming"]:
        ctx.exit(int(ExitCode.DEVICE))  # the line above says why


def _password(given: str | None, path: str | None) -> str | None:
    """The Wi-Fi password from --password (``-`` = one line of stdin) or --password-file."""
    import sys

    from csi_edge.errors import ConfigError, file_error

    if path is not None:
        if given is not None:
            raise click.UsageError("give --password or --password-file, not both")
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise file_error(path, e) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: --password-file is not a UTF-8 text file") from None
    if given == "-":
        line = sys.stdin.readline()
        if not line:
            raise ConfigError("--password -: nothing on stdin (pipe the password in)")
        return line.rstrip("\r\n")
    return given


def _show_text(out: dict) -> str:
    lines = [
        f"{out['port']}  MAC {out['mac']}  firmware {out['firmware_version'] or '?'}  "
        f"NVS {out['nvs_offset']}"
    ]
    if not out["provisioned"]:
        lines.append("not provisioned: the node runs on compiled defaults")
    for k, v in out["effective"].items():
        mark = "" if k in out["config"] else "   (default)"
        lines.append(f"  {k:<13} {v}{mark}")
    for ns, keys in out["other_namespaces"].items():
        lines.append(f"  [{ns}] {', '.join(keys)} (kept)")
    lines += [f"note: {n}" for n in out["notes"]]
    return "\n".join(lines)
