"""``csi-edge quantize``: static INT8 (QDQ) ONNX and full-int8 LiteRT, with a parity report."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(exists=True))
@click.option(
    "--calibration",
    "-c",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CAL.npz from 'csi-edge calibration build'.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Output .onnx when MODEL is one file (default MODEL.int8.onnx).",
)
@click.option(
    "--method",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default="minmax",
    show_default=True,
    help="Activation range calibration.",
)
@click.option(
    "--activations",
    type=click.Choice(["uint8", "int8"]),
    default="uint8",
    show_default=True,
    help="Activation type (weights are always int8, per channel).",
)
@click.option(
    "--tflite",
    is_flag=True,
    help="Also write a full-int8 LiteRT variant (needs the bundle's checkpoint).",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="Checkpoint for --tflite when the manifest's path moved.",
)
@click.option(
    "--dynamic",
    is_flag=True,
    help="Dynamic INT8 instead; refused when it measures slower than fp32 here.",
)
@click.option(
    "--check", is_flag=True, help="Fail (exit 1) when the accuracy loss passes the threshold."
)
@click.option(
    "--max-loss",
    type=float,
    help="Threshold for --check: the rise in keypoint error (normalized image units, default "
    "0.005) or in breathing error (BPM, default 0.5) vs fp32; without ground truth, the drift "
    "from fp32 in the same unit.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def command(
    model,
    calibration,
    output,
    method,
    activations,
    tflite,
    checkpoint,
    dynamic,
    check,
    max_loss,
    as_json,
):
    """Quantize an fp32 model or bundle to INT8 and report what it cost.

    MODEL is one .onnx file or a bundle folder from 'csi-edge export'. Static INT8 in QDQ form
    with per-channel weights, calibrated on the windows of CAL.npz (onnxruntime's
    quant_pre_process first). A bundle gains an 'int8' variant (and 'int8-tflite' with
    --tflite) in its manifest. The parity report compares against fp32 on the held-out windows
    of CAL.npz: max/mean abs diff, keypoint error and PCK@20/@50 (or BPM error) against ground
    truth when the captures had it, model size and latency on this machine.

    \b
    Examples:
      csi-edge quantize bundles/pose/ -c cal.npz --tflite --check
      csi-edge quantize ruview/pose_v1.onnx -c cal.npz -o ruview/pose_v1.int8.onnx
      csi-edge quantize bundles/vitals/ -c cal.npz --method percentile --check --max-loss 0.2

    Pose bundles quantize the per-frame encoder (the streaming temporal step stays fp32).
    """
    from csi_edge.cli.commands.export import _quiet_converters

    _quiet_converters()
    from csi_edge.errors import CheckFailed
    from csi_edge.export.quantize_bundle import quantize

    say = (lambda m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    res = quantize(
        model,
        calibration,
        output,
        method=method,
        tflite=tflite,
        dynamic=dynamic,
        check=check,
        max_loss=max_loss,
        checkpoint=checkpoint,
        progress=say,
        activations=activations,
    )
    if as_json:
        click.echo(
            json.dumps({k: v for k, v in res.items() if k != "records"}, indent=2, default=float)
        )
    else:
        click.echo(Path(res["parity_report"]).with_suffix(".txt").read_text())
        click.echo("wrote: " + ", ".join(res["outputs"]))
        if res["manifest"]:
            click.echo(f"manifest: {res['manifest']} (variants: {', '.join(res['variants'])})")
    if res["failed"]:
        detail = "; ".join(
            f"{k}: {c['loss_kind']} loss {c['loss']:.4g} > {c['threshold']:.4g}"
            for k, c in res["failed"].items()
        )
        raise CheckFailed(f"accuracy check failed: {detail}")
