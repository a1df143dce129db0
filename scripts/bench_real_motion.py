#!/usr/bin/env python3
"""Motion, presence and room calibration on REAL labelled ESP32 recordings, beside the simulator.

Every recording in ``tests/data/labelled/`` (see ``tests/data/PROVENANCE.md``) goes through the
same per-node estimator the gateway runs (frames pushed in 1-s chunks, one estimate a second,
default configuration, no baseline: a cold start). Per file and in total:

- ``fp``: motion flagged in quiet seconds (every second, warm-up included: a node that just
  rebooted must not read as motion while it learns)
- ``recall``: motion flagged in movement seconds after the first ``WARMUP_S`` seconds
- ``collar``: fp and recall again without the seconds within ``--collar`` s (default 1) of a
  label change, beside the strict figures: the labels are hand-made
- ``onset``: the worst delay from a labelled movement onset (quiet -> movement) to the flag;
  the totals give the median and 90th percentile over all onsets (a missed onset counts as
  infinite)
- ``first``: seconds until presence is first decided (not unknown)
- ``pres``: presence in the decided seconds (empty recordings: should be ~0; seated: ~1)
- ``flips/h``: presence changes per hour of decided seconds
- ``calib``: ``csi-edge baseline`` on the file (quiet recordings only): ok / refused

Also the per-frame-labelled recordings from their first movement frame (``@moving``: a node
that boots while someone moves, with no quiet second to learn from).
Then the same figures on a small simulator grid (still person, empty room, bursts of motion,
walking from the start, 10-100 Hz). Prints a table and one JSON line. ``--quick``: fewer simulator rows.
``--heldout DIR``: also the same figures on the labelled recordings under DIR that are not in
tests/data (DIR: a folder with the original ``esp32-csi-tool-labelled`` and
``esp32s2-har-amplitude`` folders); skipped with a message when DIR holds none.
``--max-rate HZ``: keep every n-th frame of each recording so it arrives at about HZ (a node
sending 10 or 20 Hz): fast motion such as walking aliases into white-looking change there.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from labelled import (  # noqa: E402
    LABEL_WINDOW_S,
    heldout_recordings,
    recordings,
    second_labels,
)

from csi_edge.vitals.baseline import Baseline  # noqa: E402
from csi_edge.vitals.config import VitalsConfig  # noqa: E402
from csi_edge.vitals.room import calibrate_node  # noqa: E402
from csi_edge.vitals.run import run_node  # noqa: E402

WARMUP_S = 5.0
COLLAR_S = 1.0  # --collar: tolerance around label changes for the second set of figures
CONFIG = VitalsConfig()  # --set key=value changes it (to compare settings on the same data)


def _presence(e) -> float | None:
    p = e.presence
    return None if p is None else float(bool(p))


def transitions(t: np.ndarray, *labels: np.ndarray | None) -> np.ndarray:
    """Times at which any per-frame label changes (movement on/off, scored on/off)."""
    at = [np.flatnonzero(np.diff(x.astype(int)) != 0) + 1 for x in labels if x is not None]
    return t[np.concatenate(at)] if at else np.empty(0)


def near_transition(ticks: np.ndarray, changes: np.ndarray, collar_s: float) -> np.ndarray:
    """Per tick: its label window (tick - LABEL_WINDOW_S, tick] comes within ``collar_s`` of a
    label change. Why a collar: the labels are hand-made (per frame for the ESP32-S2 set, a
    protocol's nominal 10 s for mendelas), so the second next to a change is as likely to be
    mislabelled as not; sound-event evaluation (DCASE) uses such tolerance collars for the
    same reason. Reported beside the strict figures, never instead of them."""
    if collar_s <= 0 or len(changes) == 0:
        return np.zeros(len(ticks), bool)
    lo = ticks[:, None] - LABEL_WINDOW_S
    return ((ticks[:, None] > changes - collar_s) & (lo < changes + collar_s)).any(axis=1)


def score(
    name,
    chip,
    kind,
    t,
    csi,
    moving_frames,
    ticks_labels=None,
    present_truth=None,
    scored_all=True,
    changes=None,
):
    """Run one node's frames; returns a row of figures. ``changes``: label-change times, for
    the figures with a ``COLLAR_S`` tolerance (default: where ``moving_frames`` changes)."""
    est = list(run_node(t, csi, CONFIG))
    ticks = np.array([e.t for e in est])
    rel = ticks - t[0]
    lab = ticks_labels(ticks)
    mot = np.array([bool(e.motion) for e in est])
    quiet = lab == 0
    mov = (lab == 1) & (rel > WARMUP_S)
    far = ~near_transition(
        ticks, transitions(t, moving_frames) if changes is None else changes, COLLAR_S
    )
    pres = [_presence(e) for e in est]
    decided = np.array([p is not None for p in pres])
    pv = np.array([p if p is not None else np.nan for p in pres])
    first = float(rel[decided][0]) if decided.any() else None
    dv = pv[decided]
    flips = int((np.diff(dv) != 0).sum()) if len(dv) > 1 else 0
    hours = max(decided.sum(), 1) / 3600.0
    # onsets: quiet -> movement in the labels, after warm-up
    onsets = np.flatnonzero(np.diff(moving_frames.astype(int)) == 1) + 1
    lat, lat_all = [], []
    for k in onsets:
        t_on = t[k]
        hit = np.flatnonzero((ticks > t_on) & mot)
        lat_all.append(float(ticks[hit[0]] - t_on) if len(hit) else np.inf)
        if t_on - t[0] >= WARMUP_S:
            lat.append(lat_all[-1])
    calib = None
    if kind in ("empty", "static") and scored_all:
        out = calibrate_node(name, t, csi, Baseline.default(name), CONFIG)
        calib = "ok" if out.accepted else f"refused: {out.message.split(';')[0]}"
    return dict(
        file=name,
        chip=chip,
        kind=kind,
        rate=round((len(t) - 1) / float(t[-1] - t[0]), 1),
        s=len(est),
        quiet_s=int(quiet.sum()),
        fp_n=int((mot & quiet).sum()),
        motion_s=int(mov.sum()),
        hit_n=int((mot & mov).sum()),
        quiet_c_s=int((quiet & far).sum()),
        fp_c_n=int((mot & quiet & far).sum()),
        motion_c_s=int((mov & far).sum()),
        hit_c_n=int((mot & mov & far).sum()),
        onset=max(lat) if lat else None,
        onsets=lat,
        onsets_all=lat_all,  # also the onsets in the first WARMUP_S (most ESP32-S2 ones)
        first=first,
        decided_s=int(decided.sum()),
        pres_n=int(np.nansum(dv)),
        flips_h=round(flips / hours, 1),
        calib=calib,
        present_truth=present_truth,
    )


def decimate(recs, max_rate: float | None):
    """Every n-th frame, so each recording arrives at about ``max_rate`` Hz (None: unchanged)."""
    if not max_rate:
        return recs
    out = []
    for rec in recs:
        n = max(1, int(round(rec.rate_hz / max_rate)))
        sl = slice(None, None, n)
        scored = None if rec.scored is None else rec.scored[sl]
        out.append(replace(rec, t=rec.t[sl], csi=rec.csi[sl], motion=rec.motion[sl], scored=scored))
    return out


def from_movement(recs):
    """The per-frame-labelled recordings cut at their first movement frame: a node that boots
    while someone stands up, walks and turns (no quiet second to learn from)."""
    out = []
    for rec in recs:
        if rec.kind != "labelled" or not rec.motion.any():
            continue
        k = int(np.argmax(rec.motion))
        scored = None if rec.scored is None else rec.scored[k:]
        out.append(
            replace(
                rec,
                name=rec.name + "@moving",
                t=rec.t[k:],
                csi=rec.csi[k:],
                motion=rec.motion[k:],
                scored=scored,
            )
        )
    return out


def real_rows(recs):
    rows = []
    for rec in recs:
        present = {"empty": False, "labelled": True}.get(rec.kind)
        rows.append(
            score(
                rec.name,
                rec.chip,
                rec.kind,
                rec.t,
                rec.csi,
                rec.motion,
                lambda ticks, rec=rec: second_labels(rec, ticks),
                present,
                rec.scored is None or bool(rec.scored.all()),
                transitions(rec.t, rec.motion, rec.scored),
            )
        )
    return rows


def sim_rows(quick: bool):
    from csi_edge.sim import preset, simulate
    from csi_edge.vitals.run import frame_times, lltf_frames

    rows = []
    rates = (10, 20, 100) if quick else (10, 20, 50, 100)
    for name in ("still", "empty", "motion", "walk"):
        for rate in rates:
            sc = preset(name, 90, rate_hz=rate, snr_db=25, loss=0.05)
            r = simulate(sc, 1)
            t, _ = frame_times(r.frames)
            csi = lltf_frames(r.frames)
            tr = r.truth

            def labels(ticks, tr=tr):
                m_now, m_prev = tr.at(ticks)["motion"], tr.at(ticks - LABEL_WINDOW_S)["motion"]
                return np.where(m_now & m_prev, 1, np.where(~m_now & ~m_prev, 0, -1))

            moving = tr.at(t)["motion"].astype(bool)
            rows.append(
                score(
                    f"sim:{name}@{rate}Hz",
                    "sim",
                    {"empty": "empty"}.get(name, "labelled"),
                    t,
                    csi,
                    moving,
                    labels,
                    name != "empty",
                )
            )
    return rows


def _pct(n, d):
    return f"{100 * n / d:5.1f}" if d else "    -"


def table(rows, title):
    print(f"\n{title}")
    print(
        f"{'file':34} {'chip':8} {'Hz':>5} {'kind':8} {'quiet':>5} {'fp%':>5} {'mov':>4} "
        f"{'rec%':>5} {'onset':>5} {'first':>5} {'pres%':>5} {'fl/h':>6}  calib"
    )
    for r in rows:
        onset = "-" if r["onset"] is None else f"{r['onset']:.1f}"
        first = "-" if r["first"] is None else f"{r['first']:.0f}"
        print(
            f"{r['file'][:34]:34} {r['chip']:8} {r['rate']:5.1f} {r['kind']:8} {r['quiet_s']:5d} "
            f"{_pct(r['fp_n'], r['quiet_s'])} {r['motion_s']:4d} {_pct(r['hit_n'], r['motion_s'])} "
            f"{onset:>5} {first:>5} {_pct(r['pres_n'], r['decided_s'])} {r['flips_h']:6.0f}  "
            f"{r['calib'] or ''}"
        )


def totals(rows):
    q = sum(r["quiet_s"] for r in rows)
    fp = sum(r["fp_n"] for r in rows)
    m = sum(r["motion_s"] for r in rows)
    hit = sum(r["hit_n"] for r in rows)
    qc = sum(r["quiet_c_s"] for r in rows)
    mc = sum(r["motion_c_s"] for r in rows)
    emp = [r for r in rows if r["present_truth"] is False]
    ed = sum(r["decided_s"] for r in emp)
    ep = sum(r["pres_n"] for r in emp)
    cal = [r for r in rows if r["calib"] is not None]
    on = [r["onset"] for r in rows if r["onset"] is not None]
    lat = np.array([x for r in rows for x in r["onsets"]])
    lat_all = np.array([x for r in rows for x in r["onsets_all"]])

    def pct(v, q):
        # a missed onset counts as infinite: "inf" when more than (100 - q) % are missed
        return float(np.percentile(v, q, method="higher")) if len(v) else None

    p50, p90 = pct(lat, 50), pct(lat, 90)
    return dict(
        quiet_s=q,
        fp=fp / q if q else None,
        motion_s=m,
        recall=hit / m if m else None,
        collar_s=COLLAR_S,
        quiet_collar_s=qc,
        fp_collar=sum(r["fp_c_n"] for r in rows) / qc if qc else None,
        motion_collar_s=mc,
        recall_collar=sum(r["hit_c_n"] for r in rows) / mc if mc else None,
        onset_max=max(on) if on else None,
        onset_n=len(lat),
        onset_p50=p50,
        onset_p90=p90,
        onset_all_n=len(lat_all),
        onset_all_p50=pct(lat_all, 50),
        onset_all_p90=pct(lat_all, 90),
        empty_presence=ep / ed if ed else None,
        empty_decided_s=ed,
        calib_ok=sum(r["calib"] == "ok" for r in cal),
        calib_n=len(cal),
        first_max=max((r["first"] for r in rows if r["first"] is not None), default=None),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer simulator rows")
    ap.add_argument("--no-sim", action="store_true", help="real recordings only")
    ap.add_argument(
        "--heldout",
        metavar="DIR",
        help="also score the labelled recordings under DIR that are not in tests/data",
    )
    ap.add_argument(
        "--max-rate",
        type=float,
        metavar="HZ",
        help="keep every n-th frame so each real recording arrives at about HZ (e.g. 10, 20)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one VitalsConfig field for this run, e.g. --set motion_ratio=2.0",
    )
    ap.add_argument(
        "--collar",
        type=float,
        default=COLLAR_S,
        metavar="S",
        help="also give fp and recall without the seconds within S of a label change "
        f"(hand-made labels; default {COLLAR_S:g}, 0 = off)",
    )
    a = ap.parse_args()
    globals()["COLLAR_S"] = a.collar
    for item in a.set:
        key, _, value = item.partition("=")
        if not hasattr(CONFIG, key):
            ap.error(f"--set {item}: VitalsConfig has no field {key!r}")
        kind = type(getattr(CONFIG, key))
        setattr(CONFIG, key, kind(value) if kind is not bool else value.lower() in ("1", "true"))
    real = real_rows(decimate(recordings(), a.max_rate))
    setting = "config: " + " ".join(a.set) if a.set else "default config"
    if a.max_rate:
        setting += f", decimated to ~{a.max_rate:g} Hz"
    table(real, f"real ESP32 recordings (tests/data/labelled), cold start, {setting}")
    tot = {"real": totals(real)}
    for chip in sorted({r["chip"] for r in real}):
        tot[f"real:{chip}"] = totals([r for r in real if r["chip"] == chip])
    cold = real_rows(from_movement(decimate(recordings(), a.max_rate)))
    table(cold, f"the same, labelled sequences from their first movement frame, {setting}")
    tot["real:from-moving"] = totals(cold)
    if a.heldout:
        held = decimate(heldout_recordings(Path(a.heldout)), a.max_rate)
        if not held:
            print(f"\nheld-out: no labelled recordings under {a.heldout}: skipped")
        else:
            hrows = real_rows(held)
            table(hrows, f"held-out recordings under {a.heldout} (not in tests/data), {setting}")
            tot["heldout"] = totals(hrows)
            hcold = real_rows(from_movement(held))
            table(hcold, f"the same, from their first movement frame, {setting}")
            tot["heldout:from-moving"] = totals(hcold)
            for chip in sorted({r["chip"] for r in hrows}):
                tot[f"heldout:{chip}"] = totals([r for r in hrows if r["chip"] == chip])
    if not a.no_sim:
        sim = sim_rows(a.quick)
        table(sim, "simulator (25 dB, 5 % loss, 90 s)")
        tot["sim"] = totals(sim)
    print("\ntotals")
    for k, v in tot.items():
        f = lambda x: "-" if x is None else f"{100 * x:.1f} %"  # noqa: E731
        g = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731
        print(
            f"  {k:16} fp {f(v['fp'])} of {v['quiet_s']} s | recall {f(v['recall'])} of "
            f"{v['motion_s']} s | collar {v['collar_s']:g} s: fp {f(v['fp_collar'])} of "
            f"{v['quiet_collar_s']} s, recall {f(v['recall_collar'])} of {v['motion_collar_s']} s"
            f" | onset p50/p90/max {g(v['onset_p50'])}/{g(v['onset_p90'])}/"
            f"{g(v['onset_max'])} s of {v['onset_n']} (all onsets, first 5 s too: "
            f"{g(v['onset_all_p50'])}/{g(v['onset_all_p90'])} s of {v['onset_all_n']}) | empty presence "
            f"{f(v['empty_presence'])} of {v['empty_decided_s']} s | calib {v['calib_ok']}/"
            f"{v['calib_n']} | first decision max {v['first_max']} s"
        )
    print(json.dumps({"totals": tot}))


if __name__ == "__main__":
    main()
