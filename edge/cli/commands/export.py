"""``csi-edge export``: a torch checkpoint -> one self-contained ONNX file per graph (+ LiteRT)."""

from __future__ import annotations

import contextlib
import json
import os

import click


def _quiet_converters() -> None:
    """Keep TensorFlow/absl chatter of the converters off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import warnings

    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)


def parse_config(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE such as window=32", param_hint="--config"
            )
        try:
            out[key] = int(val)
        except ValueError:
            try:
                out[key] = float(val)
            except ValueError:
                out[key] = val
    return out


def _read_norm(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            norm = json.load(f)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(
            f"{path}: not a JSON file ({exc})", param_hint="--input-norm"
        ) from None
    if not isinstance(norm, dict) or not {"mean", "std"} <= set(norm):
        raise click.BadParameter(
            f'{path}: expected {{"mean": [...], "std": [...]}}', param_hint="--input-norm"
        )
    return {"mean": [float(v) for v in norm["mean"]], "std": [float(v) for v in norm["std"]]}


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--arch",
    help="Registered architecture (csi-edge-pose, csi-edge-vitals, ruview-pose-v1) or "
    "package.module:factory for your own model. Not needed for a .pt2 program.",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(), help="MODEL.onnx, or a bundle folder."
)
@click.option(
    "--tflite", is_flag=True, help="Also convert to LiteRT (.tflite) through litert-torch."
)
@click.option(
    "--config",
    "config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Architecture setting (repeatable), e.g. window=32.",
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME:DIMS",
    help="Input of a factory model, e.g. x:B,56,20 (B = batch axis).",
)
@click.option(
    "--output-name", "output_names", multiple=True, help="Output names of a factory/.pt2 model."
)
@click.option(
    "--input-norm",
    type=click.Path(exists=True, dir_okay=False),
    help='JSON {"mean": [...], "std": [...]}: per-subcarrier log-amplitude normalization the '
    "model was trained with (written to the manifest's input.norm).",
)
@click.option(
    "--exporter",
    type=click.Choice(["dynamo", "torchscript"]),
    default="dynamo",
    show_default=True,
    help="torch's ONNX exporter: dynamo (opset 18) or the older torchscript one (opset 17, "
    "much faster on small graphs).",
)
@click.option("--name", help="Model name in the manifest (default: the architecture).")
@click.option(
    "--model-version", default="0.1.0", show_default=True, help="Version in the manifest."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of tables.")
def command(
    checkpoint,
    arch,
    output,
    tflite,
    config,
    inputs,
    output_names,
    input_norm,
    exporter,
    name,
    model_version,
    as_json,
):
    """Export a torch checkpoint to self-contained ONNX (and LiteRT), checked against torch.

    CHECKPOINT is a state dict saved with torch.save (a dict with 'state_dict' or 'model'
    works too), a .safetensors file, or a torch.export program (.pt2). Each graph is written
    as ONE file (opset 18, no external .data, dynamic batch axis) and its outputs are compared
    with torch (max abs diff must be <= 1e-4). The bundle folder gets manifest.json with the
    checkpoint's sha256, tool versions and parity figures, and a parity report (.json + .txt).

    \b
    Examples:
      csi-edge export pose.pt --arch csi-edge-pose -o bundles/pose/
      csi-edge export pose_v1.safetensors --arch ruview-pose-v1 -o ruview/pose_v1.onnx --tflite
      csi-edge export ckpt.pt --arch mypkg.models:build --input x:B,56,20 -o my.onnx
      csi-edge export program.pt2 -o my.onnx

    \b
    Then quantize with real windows:
      csi-edge calibration build capture.pcap --model bundles/pose/ -o cal.npz
      csi-edge quantize bundles/pose/ --calibration cal.npz --tflite --check

    Needs the export extra: pip install 'csi-edge[export]' torch==2.13.0
    """
    _quiet_converters()
    from csi_edge.errors import InputError
    from csi_edge.export.bundle import export_bundle, load_model

    if os.path.isfile(output) and not output.endswith(".onnx"):
        raise InputError(f"-o {output}: an existing file; give a new MODEL.onnx or a bundle folder")
    cfg = parse_config(config)
    if arch and ":" not in arch:  # registered architectures take positive sizes and rates only
        for key, val in cfg.items():
            if isinstance(val, str) or val <= 0:
                raise InputError(f"--config {key}={val}: expected a positive number")
    overrides = {"norm": _read_norm(input_norm)} if input_norm else None
    try:
        loaded = load_model(checkpoint, arch, cfg, list(inputs), list(output_names))
    except (TypeError, ValueError) as exc:  # the architecture rejected a --config value
        if isinstance(exc, InputError):
            raise
        raise InputError(f"--config {' '.join(config) or '(none)'}: {exc}") from None
    say = (lambda m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    existed = os.path.exists(output)
    try:
        res = export_bundle(
            loaded,
            output,
            tflite=tflite,
            name=name,
            version=model_version,
            progress=say,
            input_overrides=overrides,
            exporter=exporter,
        )
    except BaseException:
        if not existed:  # nothing half-written is left behind
            import shutil

            if os.path.isdir(output):
                shutil.rmtree(output, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(output)
        raise
    if as_json:
        res = {k: v for k, v in res.items() if k != "records"}
        click.echo(json.dumps(res, indent=2, default=float))
        return
    from pathlib import Path

    click.echo(Path(res["parity_report"]).with_suffix(".txt").read_text())
    for variant, files in res["files"].items():
        click.echo(f"{variant}: " + ", ".join(f"{r}={f}" for r, f in files.items()))
    if res["manifest"]:
        click.echo(f"manifest: {res['manifest']}")
