"""When frames arrive at the gateway: nominal rate, jitter, loss, delivery bursts, a reboot.

Returns both the capture time (when the node measured the channel: what the CSI shows) and the
receive time (what the gateway stamps: capture time plus network/queue delay). Bursts hold
frames back and release them together, so several frames share nearly one receive time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    rate_hz: float = 20.0
    jitter: float = 0.15  # relative std of the inter-frame interval
    loss: float = 0.0  # probability a frame is lost (the sequence number still advances)
    burst_every_s: float = 0.0  # mean seconds between delivery bursts; 0 = none
    burst_hold_s: float = 0.3  # how long a burst holds frames back
    reboot_at_s: float | None = None  # node reboots here (sequence restarts at 0)
    reboot_gap_s: float = 2.5


def frame_times(duration_s: float, timing: Timing, rng: np.random.Generator):
    """-> (t_cap, t_rx, seq, local_us), all relative to the start, lost frames removed."""
    n = int(duration_s * timing.rate_hz * 1.2) + 16
    dt = (
        rng.gamma(1.0 / max(timing.jitter, 1e-3) ** 2, max(timing.jitter, 1e-3) ** 2, n)
        / timing.rate_hz
    )
    t_cap = np.cumsum(dt) - dt[0] + rng.uniform(0, 1.0 / timing.rate_hz)
    t_cap = t_cap[t_cap < duration_s]
    seq = np.arange(len(t_cap), dtype=np.int64)
    boot = np.zeros(len(t_cap))
    if timing.reboot_at_s is not None and 0 < timing.reboot_at_s < duration_s:
        down = (t_cap >= timing.reboot_at_s) & (t_cap < timing.reboot_at_s + timing.reboot_gap_s)
        after = t_cap >= timing.reboot_at_s + timing.reboot_gap_s
        t_cap, seq, boot, after = t_cap[~down], seq[~down], boot[~down], after[~down]
        if after.any():
            seq[after] -= seq[after][0]
            boot[after] = timing.reboot_at_s + timing.reboot_gap_s - 0.3
    local_us = np.round((t_cap - boot + 4.0) * 1e6).astype(np.int64)
    delay = 0.002 + rng.exponential(0.003, len(t_cap))
    if timing.burst_every_s > 0:
        starts = np.cumsum(
            rng.exponential(timing.burst_every_s, int(duration_s / timing.burst_every_s) + 4)
        )
        for s in starts[starts < duration_s]:
            held = (t_cap >= s) & (t_cap < s + timing.burst_hold_s)
            delay[held] += s + timing.burst_hold_s - t_cap[held] + 1e-4 * np.arange(held.sum())
    t_rx = t_cap + delay
    keep = rng.random(len(t_cap)) >= timing.loss
    order = np.argsort(t_rx[keep], kind="stable")
    return t_cap[keep][order], t_rx[keep][order], seq[keep][order], local_us[keep][order]
