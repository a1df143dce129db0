"""The ``csi-edge`` command.

Subcommands live one per module in :mod:`csi_edge.cli.commands`; each module defines ``command``
(a click command or group). Modules import only click and the standard library at the top, and
load numpy/onnxruntime/torch inside the command body, so ``csi-edge --help`` stays instant and
torch never enters the gateway's import path.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import click

from csi_edge import __version__
from csi_edge.cli import commands as _commands_pkg


def _command_modules() -> dict[str, str]:
    """Map subcommand name -> module name, one module per file in edge/cli/commands/."""
    found = {}
    for info in pkgutil.iter_modules(_commands_pkg.__path__):
        if not info.name.startswith("_"):
            found[info.name.replace("_", "-")] = f"{_commands_pkg.__name__}.{info.name}"
    return found


class _LazyGroup(click.Group):
    """Loads a subcommand's module only when that subcommand (or --help) needs it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_command_modules())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _command_modules().get(name)
        if module is None:
            return None
        return importlib.import_module(module).command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="csi-edge")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """WiFi-CSI sensing on the edge: ESP32-S3 nodes -> gateway -> presence, vitals, pose.

    \b
    Start here:
      csi-edge demo                  simulated nodes -> gateway, live console view
      csi-edge decode CAPTURE        read any capture (pcap, .csi.jsonl, serial logs)
      csi-edge <command> --help      every command explains itself
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main() -> None:
    cli(prog_name="csi-edge")
