"""``csi-edge vitals``: presence, motion, breathing and heart rate from a capture."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.argument("capture", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (for scripts).")
@click.option(
    "--every",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between estimates.",
)
@click.option(
    "--dir", "cal_dir", default=None, help="Baseline directory [env CSI_EDGE_CALIBRATION_DIR]."
)
@click.option(
    "--assume-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Frame rate to assume ONLY when the capture has no timestamps at all.",
)
@click.option(
    "--plot", type=click.Path(dir_okay=False), default=None, help="Save a plot (needs matplotlib)."
)
def command(capture, as_json, every, cal_dir, assume_rate, plot):
    """Estimate presence, motion, breathing and heart rate per node from CAPTURE.

    Reads anything `csi-edge decode` reads. Time comes from receive timestamps (or the
    node's microsecond clock); no rate is assumed. Rates are null while the person moves, when
    nobody is there, or when confidence is low; "reason" says which.

    \b
    Examples:
      csi-edge vitals capture.pcap
      csi-edge vitals capture.pcap --json | jq .breathing_bpm
      csi-edge simulate -o sim.pcap --scenario still && csi-edge vitals sim.pcap --json

    \b
    --json prints one object per line, at least once per second of capture per node:
      {"t": s since first frame, "node": "<key>", "presence": bool|null, "motion": bool|null,
       (null = not decided yet, with "presence_reason"),
       "breathing_bpm": float|null, "breathing_conf": float, "heart_bpm": float|null,
       "heart_conf": float, "reason": str, ["edge": node's own vitals packet]}
    """
    import numpy as np

    from csi_edge.capture import read_capture as read_any
    from csi_edge.errors import InputError, NoDataError, file_error
    from csi_edge.vitals import edge_vitals_report, frame_times, run_frames
    from csi_edge.vitals.baseline import load_baseline
    from csi_edge.vitals.estimate import yes_no

    try:
        res = read_any(capture)  # CaptureError (1) / NoDataError (3) name the file
    except OSError as e:
        raise file_error(capture, e) from None
    frames = res.frames
    edge_reports: dict[str, list[dict]] = {}
    for p in res.packets:
        r = edge_vitals_report(p)
        if r:
            edge_reports.setdefault(r[0], []).append(r[1])
    if len(frames) == 0:
        held = ", ".join(f"{k} {v}" for k, v in sorted(res.packet_counts.items()) if v)
        raise NoDataError(f"{capture}: no CSI frames, only non-CSI packets ({held or 'none'})")
    times, source = frame_times(frames, assume_rate)
    if source == "none":
        raise InputError(
            f"{capture}: frames carry no receive time and no node clock (local_us); "
            "pass --assume-rate HZ to assume a fixed rate"
        )
    if source != "t_rx":
        click.echo(f"note: {capture}: using {source} as the time base", err=True)
    clocks = {k[len("time-from-") :]: v for k, v in res.notes.items() if k.startswith("time-from-")}
    if clocks and source == "t_rx":  # a text capture's own clocks (docs/text-captures.md §5)
        used = ", ".join(f"{k} ({v} frames)" for k, v in sorted(clocks.items()))
        click.echo(f"note: {capture}: frame times from {used}", err=True)

    def baseline_for(key):
        try:
            return load_baseline(key, cal_dir)
        except ValueError as e:
            click.echo(f"warning: {e}; using the default baseline", err=True)
            return None

    t0 = float(np.nanmin(times))
    rows = []
    if not as_json:
        click.echo(
            f"{'t':>7} {'node':24} {'presence':>8} {'motion':>7} {'breath':>12} {'heart':>12}  reason"
        )
    for key, est in run_frames(frames, every_s=every, times=times, baseline_for=baseline_for):
        rec = est.to_json(t0, key)
        er = [
            e for e in edge_reports.get(key, []) if e["t"] <= est.t and e["t"] > est.t - 2 * every
        ]
        if er:
            rec["edge"] = {k: v for k, v in er[-1].items() if k != "t"}
        rows.append(rec)
        if as_json:
            sys.stdout.write(json.dumps(rec) + "\n")
        else:
            br = (
                "-"
                if rec["breathing_bpm"] is None
                else f"{rec['breathing_bpm']:.1f} ({rec['breathing_conf']:.2f})"
            )
            hr = (
                "-"
                if rec["heart_bpm"] is None
                else f"{rec['heart_bpm']:.1f} ({rec['heart_conf']:.2f})"
            )
            click.echo(
                f"{rec['t']:7.1f} {key[:24]:24} {yes_no(rec['presence']):>8} "
                f"{yes_no(rec['motion']):>7} {br:>12} {hr:>12}  {rec['reason']}"
            )
    if plot:
        _plot(rows, plot)


def _plot(rows: list[dict], out: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        from csi_edge.errors import InputError

        raise InputError("--plot needs matplotlib (pip install matplotlib)") from e
    fig, ax = plt.subplots(2, 1, sharex=True, figsize=(10, 5))
    for node in sorted({r["node"] for r in rows}):
        rr = [r for r in rows if r["node"] == node]
        t = [r["t"] for r in rr]
        ax[0].plot(
            t,
            [r["breathing_bpm"] if r["breathing_bpm"] is not None else float("nan") for r in rr],
            label=node,
        )
        ax[1].plot(
            t,
            [r["heart_bpm"] if r["heart_bpm"] is not None else float("nan") for r in rr],
            label=node,
        )
    ax[0].set_ylabel("breathing BPM")
    ax[1].set_ylabel("heart BPM")
    ax[1].set_xlabel("s")
    ax[0].legend()
    fig.savefig(out)
