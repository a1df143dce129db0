#!/usr/bin/env python3
"""Motion on the simulator across SNR, rate and radio impairments (~2 min, one core).

Share of seconds flagged as motion after a 5-s warm-up (cold start, default configuration,
30 s per row, seed 3): a person walking from the start at 15-35 dB, and a still person / an
empty room at 10, 25 and 45 dB, plain and with a free-running AGC (1 dB per frame), a drifting
room reflector, mixed 64/128/192-pair frames and 10 AGC steps a minute. Figures in
docs/vitals.md ("Walking, slow nodes and a cold start"). ``--set key=value`` changes one
VitalsConfig field, e.g. ``--set motion_coherence=0`` for the detector before that test.
"""

from __future__ import annotations

import argparse

import numpy as np

from csi_edge.sim import preset, simulate
from csi_edge.vitals.config import VitalsConfig
from csi_edge.vitals.run import frame_times, lltf_frames, run_node

RATES = (10, 20, 50, 100)
WARMUP_S = 5.0


def flagged(name: str, config: VitalsConfig, **scenario) -> float:
    """Share of the seconds after warm-up with the motion flag up."""
    sim = simulate(preset(name, 30, **scenario), seed=3)
    t, _ = frame_times(sim.frames)
    est = list(run_node(t, lltf_frames(sim.frames), config))
    return float(np.mean([e.motion is True for e in est if e.t - t[0] > WARMUP_S]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    cfg = VitalsConfig()
    for item in a.set:
        key, _, value = item.partition("=")
        if not hasattr(cfg, key):
            ap.error(f"--set {item}: VitalsConfig has no field {key!r}")
        setattr(cfg, key, type(getattr(cfg, key))(value))
    rates = "/".join(str(r) for r in RATES)
    for snr in (15, 20, 25, 35):
        row = " ".join(f"{flagged('walk', cfg, snr_db=snr, rate_hz=r):5.0%}" for r in RATES)
        print(f"walk   {snr:2d} dB               flagged at {rates} Hz: {row}", flush=True)
    impairments = (
        ("plain", {}),
        ("agc_jitter_db=1", {"agc_jitter_db": 1.0}),
        ("env_drift=0.1", {"env_drift": 0.1}),
        ("layout=mixed", {"layout": "mixed"}),
        ("agc_steps_per_min=10", {"agc_steps_per_min": 10.0}),
    )
    for label, kw in impairments:
        for snr in (10, 25, 45):
            row = " ".join(
                f"{flagged(n, cfg, snr_db=snr, rate_hz=r, **kw):4.0%}"
                for r in RATES
                for n in ("still", "empty")
            )
            print(f"still/empty {snr:2d} dB {label:20} at {rates} Hz: {row}", flush=True)


if __name__ == "__main__":
    main()
