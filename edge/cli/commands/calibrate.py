"""``csi-edge calibrate``: the old name of ``csi-edge baseline``, kept so scripts keep working."""

from __future__ import annotations

import click

from csi_edge.cli.commands.baseline import command as _baseline


@click.pass_context
def _run(ctx: click.Context, **kwargs) -> None:
    click.echo(
        "note: `csi-edge calibrate` is now `csi-edge baseline` (an empty-room baseline; "
        "quantization calibration sets are `csi-edge calibration`)",
        err=True,
    )
    ctx.invoke(_baseline, **kwargs)


command = click.Command(
    name="calibrate",
    callback=_run,
    params=_baseline.params,
    help="Old name of `baseline`: record an empty-room baseline per node.",
    short_help="Old name of `baseline` (empty-room baseline).",
)
