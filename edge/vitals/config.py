"""Tunables of the vitals estimator, with defaults that work before any calibration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class VitalsConfig:
    grid_hz: float = 8.0  # uniform grid the rate estimators work on (heart needs > 6 Hz)
    breath_window_s: float = 30.0
    heart_window_s: float = 20.0
    min_window_s: float = 10.0  # still data needed before the first rate
    breath_bpm: tuple[float, float] = (6.0, 40.0)
    breath_highpass_hz: float = 0.07  # drift below the band is filtered out first (4.2 BPM)
    heart_bpm: tuple[float, float] = (40.0, 180.0)
    noise_hz: tuple[float, float] = (3.2, 3.9)  # above every vital sign: the noise reference
    n_channels: int = 8
    max_gap_s: float = 2.0  # longer gaps restart the still window
    motion_block_s: float = 0.5  # motion statistic per block of frames (csi_edge.vitals.motion)
    motion_min_frames: int = 4  # fewer frames in a block: no statistic for it
    motion_window_s: float = 1.0  # moving = a hot block ended within this many seconds
    motion_k: float = 3.0  # hot block: statistic above k x the quiet level ...
    motion_floor: float = 0.015  # ... and above this floor (common-mode log-amplitude, ~0.13 dB)
    motion_obvious: float = 0.12  # always motion above this (~1 dB flicker within 0.5 s) ...
    motion_obvious_k: float = 2.5  # ... unless that is below this many quiet levels
    # A body that moved into a new pose changes the static channel: the last second's mean
    # amplitude profile against the still window's (csi_edge.vitals.node.NodeVitals._profile_moved).
    motion_profile_k: float = 2.5  # moved: RMS z-score (breathing component removed) above this
    motion_profile_ref_s: float = 10.0  # reference: up to this many seconds of 1-s means ...
    motion_profile_min_ref_s: int = 6  # ... and at least this many
    motion_profile_hold_s: float = 10.0  # moved: motion until the profile is back, at most this
    motion_release_s: float = 1.0  # still window starts this long after the last motion
    quiet_memory_s: float = 120.0
    quiet_percentile: float = 50.0
    quiet_tail_percentile: float = 80.0  # tail of the recent blocks (at most tail_cap x quiet)
    motion_tail_k: float = 2.0  # ... times this is the least a motion block must reach
    motion_tail_cap: float = 4.0
    motion_noise_ratio: float = 2.0  # quiet level <= this x the noise-predicted level
    noise_every_s: float = 3.0  # how often that noise level is sampled
    presence_snr: float = 30.0  # combined breathing-band SNR that proves someone is there
    # ... or, for a stable rhythm under it, the cross-fitted coherent combination's SNR at the
    # same rate (csi_edge.vitals.coherent; simulated empty rooms <= 16, real recordings <= 21, a
    # still person at 20 dB >= 60, docs/vitals.md); 0 = off
    coherent_snr: float = 40.0
    coherent_band: int = 4  # subcarriers averaged per channel before the combination
    # (empty rooms reached 22 in simulation, a breathing person 45-1300)
    # Presence lifecycle (csi_edge.vitals.node.NodeVitals.estimate): unknown until decided;
    # "nobody" needs a still window this long without breathing evidence ...
    # (a still person's breathing first proves presence 13-15 s into a still window in
    # simulation at 10-50 Hz, 20-35 dB: scripts/bench_real_motion.py "first"), so 20 s ...
    presence_decide_s: float = 20.0
    presence_motion_s: int = 2  # motion counts as someone there after this many seconds of it
    # breathing counts only as one stable rhythm (csi_edge.vitals.spectral.stable_rhythm)
    rhythm_min_prominence: float = 0.3
    rhythm_tol_bpm: float = 3.0
    # ... and the newest rhythm_segment_s of the window at most rhythm_power_jump x the
    # median segment's band power (csi_edge.vitals.spectral.steady_power: sway onset)
    rhythm_segment_s: float = 4.0
    rhythm_power_jump: float = 2.0
    # ... and an occupied room stays occupied this long after the last evidence (a still
    # person's breathing SNR dips for seconds at a time; see docs/vitals.md for the figures)
    presence_hold_s: float = 30.0
    # Motion by the change ratio (csi_edge.vitals.change): the same defaults for every chip
    # and rate, chosen on real recordings (quiet 0.9-1.3, movement 1.5-10) and the simulator.
    motion_ratio: float = 2.0
    motion_ratio_k: float = 1.3  # ... or this many times the node's median still ratio
    motion_ratio_memory_s: float = 60.0
    motion_ratio_window_s: float = 2.0  # longer below 8 Hz (2 x motion_ratio_min_frames)
    motion_ratio_min_frames: int = 8
    motion_window_fill: float = 0.75  # decide only once the window spans this much of itself
    motion_ratio_slow_hz: float = 0.67  # slower change than this is not motion (40 BPM)
    motion_ratio_band: int = 4  # adjacent subcarriers averaged first (csi_edge.vitals.change.bands)
    motion_level_k: float = 2.5  # change power above this many quiet levels: motion ...
    motion_level_percentile: float = 25.0  # ... the quiet level: this percentile ...
    motion_level_min_windows: int = 4  # ... of at least this many windows (the warm-up)
    # the level leaves out this many of a window's largest frame-to-frame changes: one glitched
    # frame makes two (csi_edge.vitals.change.change_ratio); 0 = the plain mean
    motion_level_trim: int = 2
    # ... or the change shared by neighbouring subcarriers is at least as strong as the noise
    # floor (csi_edge.vitals.change.change_coherence: 2.5 for bands of 4 is coherent power =
    # noise power, 2.3 is 0.76 x it; noise gives ~1, real empty rooms <= 1.94, a seated
    # person's quiet seconds <= 2.28, docs/vitals.md): fast motion such as walking at 10-20 Hz
    # that R cannot see, from a cold start. 0 = off
    motion_coherence: float = 2.3
    motion_coherence_band: int = 4
    motion_coherence_lag_s: float = 0.1  # the change over this long (whole frames, >= 1)
    motion_profile: bool = False
    # the older common-mode block test against a learned quiet level: off, it flagged 33 % of
    # real quiet ESP32 seconds (scripts/bench_real_motion.py); it catches fast limb motion in
    # the simulator that the change ratio misses
    motion_blocks: bool = False
    quiet_min_blocks: int = 10  # also the slow "moved into a new pose" test
    # Heart rate is published only when switched on: see docs/vitals.md for the SNR and rate
    # where its median error stayed <= 3 BPM on the simulator; elsewhere it is withheld.
    heart_enabled: bool = False
    # ... and only from nodes sending at least this rate: below it no row of the accuracy
    # benchmark reported a heart rate that was right (scripts/bench_vitals_accuracy.py)
    heart_min_rate_hz: float = 40.0
    profile_z: float = 6.0  # static change vs. the empty-room profile (calibrated nodes only)
    min_breath_conf: float = 0.3
    min_heart_conf: float = 0.05
    min_heart_window_s: float = 10.0
    n_heart_channels: int = 16
    # Heart gate, set on simulated windows (scripts/bench_vitals_accuracy.py): a peak is only
    # reported with this combined SNR, this prominence and both window halves agreeing; below,
    # wrong peaks are as strong as right ones.
    heart_min_snr: float = 4.0
    heart_min_prominence: float = 0.3
    heart_snr_lo: float = 3.0  # combined heart-band SNR mapped to confidence 0 ...
    heart_snr_hi: float = 30.0  # ... and 1 (log scale)
    heart_split_tol_bpm: float = 4.0  # both window halves must agree within this (or a cell)
    heart_persist: int = 3  # ... and this many consecutive estimates (s) pass and agree
    # a breathing rate is reported once this many estimates in a row (one a second) passed and
    # agree: a single marginal peak in an empty simulated room held "occupied" for 30 s
    breath_persist: int = 2
    smooth_s: float = 5.0  # reported rate = median of the raw estimates of the last smooth_s
