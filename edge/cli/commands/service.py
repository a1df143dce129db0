"""``csi-edge service install``: the systemd unit, a commented gateway.toml and the env file."""

from __future__ import annotations

import click


@click.group()
def command() -> None:
    """Run the gateway as a systemd service.

    \b
    Examples:
      sudo csi-edge service install              # unit + /etc/csi-edge/{gateway.toml,env}
      csi-edge service install --dry-run         # print the unit, write nothing
    """


@command.command("install")
@click.option(
    "--unit-dir", default="/etc/systemd/system", show_default=True, help="Where the unit goes."
)
@click.option(
    "--config-dir", default="/etc/csi-edge", show_default=True, help="gateway.toml and env go here."
)
@click.option("--dry-run", is_flag=True, help="Print the unit and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def install(unit_dir: str, config_dir: str, dry_run: bool, as_json: bool) -> None:
    """Write csi-edge.service for this installation (its own venv's csi-edge), a commented
    gateway.toml and a root-only env file for secrets (existing config and env files are kept),
    then print the two systemctl lines to start it."""
    import json
    import os
    import shutil
    import sys
    from pathlib import Path

    from csi_edge.app.unit import CONFIG, ENV, render_unit
    from csi_edge.errors import ConfigError

    exe = shutil.which("csi-edge", path=str(Path(sys.executable).parent)) or shutil.which(
        "csi-edge"
    )
    if exe is None:
        raise ConfigError(
            "cannot find the csi-edge executable beside this Python: install csi-edge first"
        )
    cdir = Path(config_dir)
    config, env = cdir / "gateway.toml", cdir / "env"
    unit = render_unit(str(Path(exe).absolute()), str(config), str(env))
    unit_path = Path(unit_dir) / "csi-edge.service"
    if dry_run:
        click.echo(unit, nl=False)
        return
    written, kept = [], []
    try:
        unit_path.parent.mkdir(parents=True, exist_ok=True)
        unit_path.write_text(unit)
        written.append(str(unit_path))
        cdir.mkdir(parents=True, exist_ok=True)
        if config.exists():
            kept.append(str(config))
        else:
            config.write_text(CONFIG.format(env=env))
            written.append(str(config))
        if env.exists():
            kept.append(str(env))
        else:
            fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(ENV)
            written.append(str(env))
    except PermissionError as e:
        raise ConfigError(
            f"{e.filename}: permission denied (run with sudo, or pass --unit-dir/--config-dir)"
        ) from None
    except OSError as e:
        raise ConfigError(f"{e.filename}: {e.strerror or e}") from None
    steps = ["sudo systemctl daemon-reload", "sudo systemctl enable --now csi-edge"]
    if as_json:
        click.echo(json.dumps({"written": written, "kept": kept, "next": steps}))
        return
    for p in written:
        click.echo(f"wrote {p}")
    for p in kept:
        click.echo(f"kept {p} (already there)")
    click.echo("then:")
    for s in steps:
        click.echo(f"  {s}")
