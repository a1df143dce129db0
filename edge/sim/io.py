"""Simulated captures on disk: an ADR-018 pcap plus a ground-truth sidecar.

The pcap holds real ``0xC5110001`` datagrams from each node's IP (what ``csi-edge decode``
reads), the sidecar ``<capture>.truth.npz`` the truth arrays (see :class:`csi_edge.sim.scenario.Truth`)
and the scenario as JSON, so a benchmark can score any estimator against the recording.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from csi_edge.sim.scenario import TRUTH_FIELDS, Scenario, SimResult, Truth


def truth_path(capture: str | os.PathLike) -> Path:
    return Path(f"{capture}.truth.npz")


def write_capture(result: SimResult, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``result`` as a pcap (one UDP datagram per frame) and its truth sidecar."""
    from csi_edge.codecs.pcap import PcapWriter
    from csi_edge.codecs.ruview import encode_raw_frame

    fr = result.frames
    m = fr.meta
    path = Path(path)
    with PcapWriter(path) as w:
        for i in range(len(fr)):
            dg = encode_raw_frame(
                int(m["node_id"][i]),
                int(m["seq"][i]),
                fr.raw(i),
                int(m["freq_mhz"][i]),
                int(m["rssi"][i]),
                int(m["noise"][i]),
            )
            w.write(
                dg, float(m["t_rx"][i]), fr.sources[int(m["src"][i])], 40000 + int(m["node_id"][i])
            )
    tp = truth_path(path)
    np.savez_compressed(
        tp,
        **result.truth.arrays(),
        scenario=json.dumps(result.scenario.to_dict()),
        seed=result.seed,
    )
    return path, tp


def load_truth(capture: str | os.PathLike) -> tuple[Truth, Scenario | None]:
    """Read the sidecar of ``capture`` (raises FileNotFoundError naming it when absent)."""
    p = truth_path(capture)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no ground-truth sidecar next to the capture")
    z = np.load(p, allow_pickle=False)
    truth = Truth(**{k: z[k] for k in TRUTH_FIELDS})
    sc = Scenario(**json.loads(str(z["scenario"]))) if "scenario" in z else None
    return truth, sc
