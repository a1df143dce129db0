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


class _UserError(click.ClickException):
    """A :class:`~csi_edge.errors.CsiEdgeError` as click's own error type, keeping its exit
    code: so every way of running the group (``main``, click's test runner, scripts calling
    ``cli.main``) prints the same one line."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(str(exc))
        self.exit_code = int(getattr(exc, "exit_code", 1))


class _LazyGroup(click.Group):
    """Loads a subcommand's module only when that subcommand (or --help) needs it."""

    def invoke(self, ctx: click.Context):
        from csi_edge.errors import CsiEdgeError

        try:
            return super().invoke(ctx)
        except CsiEdgeError as exc:
            raise _UserError(exc) from None

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

    \b
    Exit codes: 0 ok, 1 bad input or config, 2 usage, 3 no data / nothing to do,
    4 device, port, host or broker unreachable, 5 a requested check failed, 130 interrupted.
    State (room baselines, node inventory, tokens): $CSI_EDGE_STATE_DIR, else
    $XDG_STATE_HOME/csi-edge (~/.local/state/csi-edge).
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: list[str] | None = None) -> None:
    """Run ``csi-edge``: the one place where a user's error becomes one line and an exit code.

    :class:`~csi_edge.errors.CsiEdgeError` -> ``Error: <message>`` on stderr and its exit code
    (see :mod:`csi_edge.errors`); click's usage errors -> exit 2; Ctrl-C -> 130; a closed stdout
    pipe (``csi-edge decode x --json | head``) ends quietly. Anything else is a bug and keeps
    its traceback.
    """
    from csi_edge.errors import CsiEdgeError, ExitCode

    try:
        rv = cli.main(args=argv, prog_name="csi-edge", standalone_mode=False)
    except CsiEdgeError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        _quiet_broken_pipe()
        sys.exit(int(ExitCode.OK))
    sys.exit(rv if isinstance(rv, int) else 0)


def _quiet_broken_pipe() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
