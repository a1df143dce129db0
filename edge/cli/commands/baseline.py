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

    from csi_edge.errors import InputError, NoDataError, file_error
    from csi_edge.vitals.baseline import baseline_path, load_baseline, save_baseline
    from csi_edge.vitals.room import calibrate_frames
    from csi_edge.vitals.run import frame_times

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
        frames = _listen(udp, duration)
    if node:
        keys = frames.node_keys(key_of)
        frames = frames[keys == node]
        if len(frames) == 0:
            raise NoDataError(f"--node {node}: no frames from that node")
    if len(frames) == 0:
        raise NoDataError(
            f"{capture}: no CSI frames" if capture else f"--udp {udp}: no CSI frames received"
        )
    times, src = frame_times(frames)
    if src == "none":
        raise InputError(
            f"{capture or '--udp ' + udp}: frames carry no timestamps; cannot calibrate"
        )
    baselines = {}
    keys = frames.node_keys(key_of)
    for key in sorted(set(keys.tolist())):
        try:
            baselines[key] = load_baseline(key, cal_dir)
        except ValueError as e:  # a corrupt baseline file, named in the message
            raise InputError(str(e)) from None
    results = calibrate_frames(frames, baselines, times, keys)
    refused = 0
    for r in results:
        path = None
        if r.accepted:
            try:
                path = str(save_baseline(baselines[r.node], cal_dir))
            except OSError as e:
                where = baseline_path(r.node, cal_dir)
                raise file_error(where, e, "cannot save the baseline") from None
        else:
            refused += 1
        if as_json:
            d = dict(r.__dict__, path=path or str(baseline_path(r.node, cal_dir)))
            d["complete"] = bool(r.accepted and baselines[r.node].complete)
            click.echo(
                json.dumps(
                    {k: (float(v) if isinstance(v, np.floating) else v) for k, v in d.items()}
                )
            )
        else:
            click.echo(
                f"{r.node}: {'ok' if r.accepted else 'REFUSED'}: {r.message}"
                + (f" -> {path}" if path else "")
            )
    if refused == len(results):
        raise NoDataError(
            "no still, empty-room data: calibration refused for every node (see above)"
        )


def _listen(hostport: str, duration: float):
    """Frames received on ``hostport`` for ``duration`` seconds (a plain blocking loop: the
    command does nothing else meanwhile)."""
    import sys
    import time

    import numpy as np

    from csi_edge.codecs.ruview import RuViewDecoder
    from csi_edge.config import parse_hostport
    from csi_edge.frames import FrameBatch
    from csi_edge.sources.udp import RECV_SIZE, open_udp_socket

    try:
        host, port = parse_hostport(hostport, what="--udp")
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--udp") from e
    try:
        sock = open_udp_socket(host, port)
    except OSError as e:
        from csi_edge.errors import DeviceError

        raise DeviceError(f"--udp {hostport}: cannot listen: {e.strerror or e}") from None
    from tqdm import tqdm

    dec = RuViewDecoder()
    start = time.monotonic()
    batches, end = [], start + duration
    dgs, ts, srcs = [], [], []
    senders: set[str] = set()
    n = 0
    # seconds listened, datagrams and senders so far (on a terminal; silent in a pipe)
    bar = tqdm(total=round(duration), desc="listening (keep the room empty and still)",
               unit="s", file=sys.stderr, disable=None, leave=False)  # fmt: skip
    with sock, bar:
        sock.settimeout(0.2)
        while (now := time.monotonic()) < end:
            bar.update(min(round(now - start), bar.total) - bar.n)
            try:
                d, addr = sock.recvfrom(RECV_SIZE)
            except TimeoutError:
                continue
            dgs.append(d)
            ts.append(time.time())
            srcs.append(addr[0])
            n += 1
            if addr[0] not in senders:
                senders.add(addr[0])
                bar.set_postfix_str(f"{n} datagrams from {len(senders)} sender(s)")
            if len(dgs) >= 256:
                batches.append(dec.decode(dgs, np.asarray(ts), srcs).frames)
                dgs, ts, srcs = [], [], []
                bar.set_postfix_str(f"{n} datagrams from {len(senders)} sender(s)")
    if dgs:
        batches.append(dec.decode(dgs, np.asarray(ts), srcs).frames)
    click.echo(
        f"listened {duration:.0f} s on {hostport}: {n} datagram(s) from {len(senders)} sender(s)",
        err=True,
    )
    return FrameBatch.concat(batches)
