"""``csi-edge simulate``: write a simulated capture with a ground-truth sidecar."""

from __future__ import annotations

import click

from csi_edge.cli.outputs import force_option, refuse_existing

_PRESETS = ("still", "standing", "empty", "enter", "motion", "walk", "activities")


@click.command()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Capture to write (.pcap).",
)
@click.option("--scenario", type=click.Choice(_PRESETS), default="still", show_default=True)
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option(
    "--rate", type=float, default=20.0, show_default=True, help="Nominal frames/s per node."
)
@click.option("--nodes", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--breathing", type=float, default=15.0, show_default=True, help="Breathing BPM.")
@click.option("--heart", type=float, default=70.0, show_default=True, help="Heart BPM.")
@click.option("--snr", type=float, default=25.0, show_default=True, help="Thermal SNR, dB.")
@click.option("--loss", type=float, default=0.0, show_default=True, help="Frame loss probability.")
@click.option(
    "--jitter", type=float, default=0.15, show_default=True, help="Relative interval jitter."
)
@click.option(
    "--layout", type=click.Choice(["64", "128", "192", "mixed"]), default="64", show_default=True
)
@click.option("--reboot-at", type=float, default=None, help="A node reboot at this second.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@force_option
def command(
    output,
    scenario,
    duration,
    rate,
    nodes,
    seed,
    breathing,
    heart,
    snr,
    loss,
    jitter,
    layout,
    reboot_at,
    as_json,
    force,
):
    """Simulate ESP32 nodes watching a room; write CAPTURE + CAPTURE.truth.npz.

    The capture is ADR-018 UDP datagrams in a pcap (read it with `csi-edge decode` or
    `csi-edge vitals`); the sidecar holds ground truth per 0.1 s: breathing_bpm, heart_bpm,
    presence, motion, keypoints [T, 34] (COCO-17, normalized image coords), activity.

    \b
    Scenarios: still (sitting), standing, empty, enter (empty -> walk in -> sit),
    motion (sitting with waving/walking bursts), walk, activities (each activity in turn).

    \b
    Examples:
      csi-edge simulate -o sim.pcap --scenario still --duration 120 --rate 20
      csi-edge simulate -o two.pcap --scenario motion --nodes 2 --rate 50 --loss 0.05
    """
    import json

    from csi_edge.errors import file_error
    from csi_edge.sim import preset, simulate, truth_path, write_capture

    if duration <= 0 or rate <= 0 or nodes < 1:
        raise click.BadParameter("--duration, --rate and --nodes must be positive")
    if not 0 <= loss < 1:
        raise click.BadParameter("--loss must be in [0, 1)", param_hint="--loss")
    refuse_existing(output, truth_path(output), force=force)
    sc = preset(
        scenario, duration, rate_hz=rate, n_nodes=nodes, breathing_bpm=breathing, heart_bpm=heart,
        snr_db=snr, loss=loss, jitter=jitter, layout=layout if layout == "mixed" else int(layout),
        reboot_at_s=reboot_at,
    )  # fmt: skip
    res = simulate(sc, seed)
    try:
        cap, truth = write_capture(res, output)
    except OSError as e:
        raise file_error(output, e, "cannot write") from None
    info = {
        "capture": str(cap),
        "truth": str(truth),
        "frames": len(res.frames),
        "nodes": res.node_keys,
    }
    click.echo(
        json.dumps(info)
        if as_json
        else f"wrote {cap} ({len(res.frames)} frames, nodes {', '.join(res.node_keys)}) and {truth}"
    )
