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
    heart_bpm: tuple[float, float] = (40.0, 180.0)
    noise_hz: tuple[float, float] = (3.2, 3.9)  # above every vital sign: the noise reference
    n_channels: int = 8
    max_gap_s: float = 2.0  # longer gaps restart the still window
    motion_window_s: float = 0.75
    motion_k: float = 3.0  # motion when the recent change rate exceeds k x the quiet level
    motion_floor: float = 0.004  # ... and this absolute floor (log-amplitude / radians per step)
    motion_release_s: float = 1.0  # still window starts this long after the last motion
    quiet_memory_s: float = 120.0
    quiet_percentile: float = 20.0
    presence_snr: float = 20.0  # combined breathing-band SNR that proves someone is there
    presence_hold_s: float = 10.0
    profile_z: float = 6.0  # static change vs. the empty-room profile (calibrated nodes only)
    min_breath_conf: float = 0.3
    min_heart_conf: float = 0.25
    smooth_s: float = 5.0  # reported rate = median of the raw estimates of the last smooth_s
    hampel_half_window: int = 3
