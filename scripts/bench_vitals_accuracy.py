#!/usr/bin/env python3
"""Vitals accuracy on simulated scenarios with ground truth, vs a fixed-10-Hz baseline.

The baseline is the classic failure: it ignores receive times and assumes frames arrive at
10 Hz (grid index / 10 Hz as time). Both run in the same process on the same captures.
Prints a table and a JSON line. ``--quick`` for a smaller grid.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from edge.sim import preset, simulate
from edge.vitals import run_frames


def score(sc, seed, fixed10):
    r = simulate(sc, seed)
    times = None
    if fixed10:
        times = r.frames.meta["t_rx"][0] + np.arange(len(r.frames)) / 10.0
    est = [e for _, e in run_frames(r.frames, times=times)]
    t = np.array([e.t for e in est])
    tr = r.truth.at(t if not fixed10 else r.frames.meta["t_rx"][0] + (t - t[0]) * 0 + t)
    br = np.array([np.nan if e.breathing_bpm is None else e.breathing_bpm for e in est])
    hr = np.array([np.nan if e.heart_bpm is None else e.heart_bpm for e in est])
    return t - t[0], tr, br, hr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rates = (10, 20, 50, 100)
    breaths = (8, 15, 30) if not a.quick else (12, 24)
    hearts = (50, 80, 120) if not a.quick else (75,)
    snrs = (25, 45) if not a.quick else (40,)
    rows = {"ours": [], "fixed10": []}
    for rate, b, h, snr in itertools.product(rates, breaths, hearts, snrs):
        sc = preset("still", 60, rate_hz=rate, breathing_bpm=b, heart_bpm=h, snr_db=snr, loss=0.05, body_gain=0.6)
        for name in rows:
            t, tr, br, hr = score(sc, 1, name == "fixed10")
            ok_b, ok_h = np.isfinite(br), np.isfinite(hr)
            first = float(t[ok_b][0]) if ok_b.any() else None
            rows[name].append(dict(rate=rate, br=b, hr=h, snr=snr,
                br_err=float(np.median(np.abs(br[ok_b] - tr["breathing_bpm"][ok_b]))) if ok_b.any() else None,
                hr_err=float(np.median(np.abs(hr[ok_h] - tr["heart_bpm"][ok_h]))) if ok_h.any() else None,
                br_cov=float(ok_b.mean()), hr_cov=float(ok_h.mean()), first=first))  # fmt: skip
    gating = {}
    for name in rows:
        rep, n = 0, 0
        for scn, rate in itertools.product(("motion", "empty"), (10, 50)):
            t, tr, br, hr = score(preset(scn, 90, rate_hz=rate, loss=0.05), 2, name == "fixed10")
            bad = tr["motion"] | ~tr["presence"]
            rep += int((np.isfinite(br) | np.isfinite(hr))[bad].sum())
            n += int(bad.sum())
        gating[name] = rep / max(n, 1)
    print(f"{'method':8} {'rate':>4} {'BR':>3} {'HR':>4} {'SNR':>3} {'BRerr':>6} {'HRerr':>6} {'BRcov':>5} {'HRcov':>5} {'first':>5}")
    for name, rr in rows.items():
        for r in rr:
            f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
            print(f"{name:8} {r['rate']:4} {r['br']:3} {r['hr']:4} {r['snr']:3} {f(r['br_err']):>6} {f(r['hr_err']):>6} {r['br_cov']:5.2f} {r['hr_cov']:5.2f} {f(r['first']):>5}")
    summary = {}
    for name, rr in rows.items():
        be = [r["br_err"] for r in rr if r["br_err"] is not None]
        he = [r["hr_err"] for r in rr if r["hr_err"] is not None]
        fi = [r["first"] for r in rr if r["first"] is not None]
        summary[name] = dict(breathing_median_abs_err=float(np.median(be)) if be else None,
            heart_median_abs_err=float(np.median(he)) if he else None, heart_scenarios_reported=len(he),
            scenarios=len(rr), first_estimate_s_median=float(np.median(fi)) if fi else None,
            reported_in_motion_or_empty=gating[name])  # fmt: skip
    print(json.dumps({"summary": summary, "rows": rows}))


if __name__ == "__main__":
    main()
