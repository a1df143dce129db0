"""Motion, presence and room calibration on REAL labelled ESP32 recordings (tests/data/labelled).

The same per-node estimator the gateway runs, default configuration, cold start (no baseline),
one estimate a second. Figures per file: ``python scripts/bench_real_motion.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from csi_edge.vitals.baseline import Baseline
from csi_edge.vitals.room import calibrate_node
from csi_edge.vitals.run import run_node
from tests.labelled import recordings, second_labels

RECS = recordings()


def _run(rec):
    est = list(run_node(rec.t, rec.csi))
    ticks = np.array([e.t for e in est])
    return est, ticks, second_labels(rec, ticks)


@pytest.fixture(scope="module")
def runs():
    return {rec.name: (rec, *_run(rec)) for rec in RECS}


def test_the_labelled_set_covers_quiet_and_movement_on_three_chip_families():
    kinds = {(r.chip, r.kind) for r in RECS}
    assert {c for c, _ in kinds} >= {"esp32", "esp32-s2", "esp32-s3"}
    assert any(k == "empty" for _, k in kinds) and any(k == "motion" for _, k in kinds)


def test_quiet_seconds_are_not_motion_on_real_recordings(runs):
    flagged = quiet = 0
    for _rec, est, _, lab in runs.values():
        mot = np.array([bool(e.motion) for e in est])
        flagged += int((mot & (lab == 0)).sum())
        quiet += int((lab == 0).sum())
    assert quiet >= 150
    assert flagged / quiet <= 0.02, (flagged, quiet)


def test_a_cold_start_does_not_read_as_motion(runs):
    # the first 5 s of every recording that starts quiet: a node that just rebooted
    for rec, est, ticks, lab in runs.values():
        first = (ticks - rec.t[0] <= 5.0) & (lab == 0)
        assert not any(est[i].motion for i in np.flatnonzero(first)), rec.name


def test_movement_is_flagged_on_real_recordings(runs):
    hit = total = 0
    for rec, est, ticks, lab in runs.values():
        mov = (lab == 1) & (ticks - rec.t[0] > 5.0)
        mot = np.array([bool(e.motion) for e in est])
        if rec.chip == "esp32-s2":  # per-frame labels: standing up, walking, turning
            assert mot[mov].all(), rec.name
        hit += int((mot & mov).sum())
        total += int(mov.sum())
    assert total >= 50
    # the 60 cm hand-waving recording stays weak, and its last seconds look still in every
    # statistic (see docs/vitals.md): 46 of 51 today, >= 90 % overall
    assert hit / total >= 0.90, (hit, total)


def test_motion_is_flagged_within_2_s_of_its_start(runs):
    # 3 s on the decoder that crowded each second's ESP32-CSI-Tool frames into ~1 ms (it read
    # real_timestamp's decimal fraction as microseconds); with the radio's frame spacing every
    # onset after the warm-up is flagged within 2 s (docs/vitals.md, "Frame times")
    checked = 0
    for rec, est, _ticks, _ in runs.values():
        assert np.median(np.diff(rec.t)) > 0.5 / rec.rate_hz, rec.name  # frames spread out
        on = np.flatnonzero(np.diff(rec.motion.astype(int)) == 1) + 1
        for k in on:
            t_on = rec.t[k]
            if t_on - rec.t[0] < 5.0:
                continue
            hits = [e.t - t_on for e in est if e.motion and e.t > t_on]
            assert hits and hits[0] <= 2.0 + 1e-6, (rec.name, t_on - rec.t[0])
            checked += 1
    assert checked >= 3  # both hand-waving recordings and an ESP32-S2 stand-up


def test_presence_is_unknown_until_decided_and_never_occupied_in_an_empty_room(runs):
    for rec, est, _, _ in runs.values():
        assert est[0].presence is None, rec.name  # never a guessed "Clear" at start-up
        if rec.kind == "empty":
            assert not any(e.presence for e in est), rec.name
    # a 20 s empty recording is decided "nobody" before it ends
    long_empty = [
        v for v in runs.values() if v[0].kind == "empty" and v[0].t[-1] - v[0].t[0] >= 19.5
    ]
    assert long_empty and all(v[1][-1].presence is False for v in long_empty)


@pytest.mark.parametrize(
    "rec",
    [r for r in RECS if r.kind in ("empty", "static") and (r.scored is None or r.scored.all())],
    ids=lambda r: r.name,
)
def test_room_calibration_accepts_every_quiet_recording(rec):
    out = calibrate_node(rec.name, rec.t, rec.csi, Baseline.default(rec.name))
    assert out.accepted, out.message


def test_calibrating_twice_on_the_same_capture_counts_it_once_and_survives_a_restart(tmp_path):
    from csi_edge.vitals.baseline import load_baseline, save_baseline

    rec = next(r for r in RECS if r.name.startswith("E00_static_15s_140cm"))
    b = Baseline.default(rec.name)
    first = calibrate_node(rec.name, rec.t, rec.csi, b)
    assert first.accepted and first.still_s > 10
    save_baseline(b, tmp_path)
    again = load_baseline(rec.name, tmp_path)  # a restart: read back from disk
    assert again.still_s == b.still_s
    second = calibrate_node(rec.name, rec.t, rec.csi, again)
    assert second.accepted and second.still_s == 0.0 and "counted once" in second.message
    assert again.still_s == b.still_s and again.runs == b.runs
    other = next(r for r in RECS if r.name.startswith("E00_static_15s_60cm"))
    assert calibrate_node(rec.name, other.t, other.csi, again).still_s > 10  # new data adds
    assert again.still_s > b.still_s
