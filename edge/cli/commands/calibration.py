"""``csi-edge calibration``: data sets for quantization (``build``)."""

from __future__ import annotations

import json

import click

from csi_edge.cli.outputs import force_option, refuse_existing


@click.group()
def command():
    """Quantization data sets: model inputs drawn from captures (not `calibrate`).

    \b
    Examples:
      csi-edge simulate -o sim.pcap --scenario activities --nodes 2 --duration 120
      csi-edge calibration build sim.pcap real.pcap --model bundles/pose/ -o cal.npz
      csi-edge quantize bundles/pose/ --calibration cal.npz --check
    """


@command.command("build")
@click.argument("captures", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model",
    "-m",
    required=True,
    type=click.Path(exists=True),
    help="Bundle folder or its manifest.json.",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="CAL.npz to write."
)
@click.option(
    "--windows", "-n", type=int, default=512, show_default=True, help="Windows to draw in total."
)
@click.option(
    "--holdout",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of each stratum held out for parity reports.",
)
@click.option(
    "--hop",
    type=int,
    help="Frames between window starts (vitals: seconds). Default: half a window (vitals 4 s).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@force_option
def build_cmd(captures, model, output, windows, holdout, hop, seed, as_json, force):
    """Sample model input windows from CAPTURES, balanced, through the runtime's input builder.

    Reads any capture csi-edge decodes (pcap, .csi.jsonl, serial logs, recordings; simulated
    captures from 'csi-edge simulate' bring a ground-truth sidecar). Each node's frames become
    windows exactly as the gateway builds them for MODEL (grid, features, normalization, time
    resampling, layout). Windows are drawn evenly across node x activity (still / moving /
    empty) x frame layout (64/128/192 pairs); a share of each is held out. The report says what
    was drawn from where.

    \b
    Example:
      csi-edge calibration build a.pcap b.csi.jsonl --model bundles/pose/ -o cal.npz -n 256
    """
    if not 0 <= holdout < 1:
        raise click.BadParameter(f"{holdout}: must be in [0, 1)", param_hint="--holdout")
    if windows < 1:
        raise click.BadParameter(f"{windows}: must be >= 1", param_hint="--windows")
    npz = output if output.endswith(".npz") else output + ".npz"  # what numpy writes
    refuse_existing(npz, force=force)
    from tqdm import tqdm

    from csi_edge.calibration.build import build, report_table, save

    bar = tqdm(
        total=len(captures),
        desc="captures",
        unit="file",
        disable=as_json or len(captures) < 2,
        file=None,
    )

    def step(cap):
        bar.set_postfix_str(str(cap)[-40:])
        bar.update(1)

    try:
        arrays, report = build(list(captures), model, windows, holdout, seed, hop, progress=step)
    finally:
        bar.close()
    path = save(arrays, output)
    if as_json:
        click.echo(json.dumps({"output": str(path), **report}, indent=2))
    else:
        click.echo(report_table(report))
        click.echo(f"wrote {path}")
