"""``csi-edge baseline``: per-node empty-room baselines (old name: ``calibrate``)."""

from __future__ import annotations

import click


@click.command()
@click.argument("capture", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--udp",
    default=None,
    metavar="HOST:PORT",
    help="Listen for ADR-018 UDP instead of reading a capture.",
)
@click.option(
    "--node",
    default=None,
    help="Only this node key (e.g. 192.168.1.20#1, or with --config a named node's "
    "mac_... / id_<gateway>_<n>).",
)
@click.option(
    "--duration", type=float, default=60.0, show_default=True, help="Seconds to listen (--udp)."
)
@click.option(
    "--dir",
    "cal_dir",
    default=None,
    help="Baseline directory [default: <state dir>/baselines, where `run` looks; the state dir is "
    "$CSI_EDGE_STATE_DIR, else ~/.local/state/csi-edge].",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The gateway's gateway.toml: nodes it names ([nodes.<id>], [inventory] results) get "
    "their baselines under their identity key, where the gateway looks for them; its "
    "baselines_dir is the default --dir.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result per node.")
def command(capture, udp, node, duration, cal_dir, config_path, as_json):
    """Record an empty-room baseline per node for presence and vitals.

    (Not quantization: that is `csi-edge calibration`.)

    Records what an EMPTY, STILL room looks like, per node. Leave the room, keep doors and
    fans still, then run this. Runs accumulate: if a node needs more still data, run again
    (nothing already stored is lost). A run that sees motion or a breathing-like signal is
    refused for that node and stores nothing. Until a node has a baseline the vitals estimator
    uses adaptive defaults.

    \b
    Examples:
      csi-edge baseline --udp 0.0.0.0:5005 --duration 60
      csi-edge baseline empty-room.pcap --node 192.168.1.20#1
      CSI_EDGE_STATE_DIR=/var/lib/csi-edge csi-edge baseline --udp :5005   (for the service)
      csi-edge baseline --udp :5005 --config /etc/csi-edge/gateway.toml  (named nodes)
    """
    import json

    import numpy as np

    from csi_edge.app.baseline import calibrate_and_save, listen_frames
    from csi_edge.errors import NoDataError, file_error

    if (capture is None) == (udp is None):
        raise click.UsageError("give either CAPTURE or --udp HOST:PORT")
    key_of = None
    if config_path:
        from csi_edge.config import load_config
        from csi_edge.service import build_inventory

        cfg = load_config(config_path)  # ConfigError (1) names the file and key
        inventory = build_inventory(cfg, config_path)
        cal_dir = cal_dir or cfg.baselines_dir or None
        key_of = lambda address, node_id: inventory.resolve(address, node_id, tell=False).key  # noqa: E731
    if capture:
        from csi_edge.capture import read_capture as read_any

        try:
            frames = read_any(capture).frames  # CaptureError (1) / NoDataError (3) name the file
        except OSError as e:
            raise file_error(capture, e) from None
    else:
        from csi_edge.config import parse_hostport

        try:
            host, port = parse_hostport(udp, what="--udp")
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--udp") from e
        frames = listen_frames(host, port, duration, say=lambda line: click.echo(line, err=True))
    outcomes = calibrate_and_save(frames, cal_dir, capture or f"--udp {udp}", node, key_of)
    for o in outcomes:
        r = o.result
        if as_json:
            d = dict(r.__dict__, path=str(o.path), complete=o.complete)
            click.echo(
                json.dumps(
                    {k: (float(v) if isinstance(v, np.floating) else v) for k, v in d.items()}
                )
            )
        else:
            click.echo(
                f"{r.node}: {'ok' if r.accepted else 'REFUSED'}: {r.message}"
                + (f" -> {o.path}" if o.saved else "")
            )
    if not any(o.saved for o in outcomes):
        raise NoDataError(
            "no still, empty-room data: calibration refused for every node (see above)"
        )
