"""``--force`` for commands that write files: an existing output is refused unless asked for.

A capture or data set is often hours of work; writing over one silently (``simulate -o`` onto
last week's recording) loses it. Checked before any work starts, so a refused run costs nothing.
"""

from __future__ import annotations

import os

import click

force_option = click.option(
    "--force", is_flag=True, help="Overwrite the output file(s) if they already exist."
)


def refuse_existing(*paths: str | os.PathLike, force: bool) -> None:
    """:class:`~csi_edge.errors.InputError` (exit 1) naming the first of ``paths`` (an output
    and any sidecar written beside it) that exists, unless ``force``."""
    from csi_edge.errors import InputError

    if force:
        return
    for p in paths:
        if os.path.isfile(p):  # a regular file; devices and pipes (/dev/null, a FIFO) are fine
            raise InputError(f"{os.fspath(p)}: already exists; pass --force to overwrite it")
