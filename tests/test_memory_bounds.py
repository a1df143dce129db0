"""Memory that must stay bounded in a gateway left running for weeks (issue 13: RSS <= 150 MB and
flat): sizes checked after N generations of reports, not by timing a run."""

from __future__ import annotations

import gc
import json
import time
import tracemalloc

import numpy as np
import pytest

from csi_edge.report import NodeReport
from csi_edge.sinks.history import History
from csi_edge.sinks.http import HISTORY_POINTS, HttpSink
from tests.test_sinks_http import _get, _wait


def _report(node: str, t: float, i: int) -> NodeReport:
    """A report as a running gateway publishes them (values change every time)."""
    return NodeReport(
        t=t,
        node=node,
        presence=[True, False, None][i % 3],
        motion=i % 5 == 0,
        breathing_bpm=None if i % 7 == 0 else 12.0 + (i % 50) / 10.0,
        breathing_conf=0.8,
        heart_bpm=None,
        link={"rssi": -40 - i % 30, "rate_hz": 50.0 + (i % 9) / 10.0, "online": True},
    )


def _sink_bytes() -> int:
    gc.collect()
    # all_frames: numpy's arrays are allocated inside numpy, called from the sink
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, "*/sinks/*", all_frames=True)]
    )
    return sum(s.size for s in snap.statistics("filename"))


def measure_history(n_nodes: int = 16) -> list[int]:
    """Sink bytes (tracemalloc, sinks/ only) after 700 reports per node, and after 700 more."""
    nodes = [f"10.0.0.{i}#1" for i in range(n_nodes)]
    sink = HttpSink(port=0, status=lambda: {})
    tracemalloc.start(4)  # enough frames to reach the sink from inside numpy
    try:
        t0 = time.time()
        sizes = []
        _sink_bytes()
        for rnd in range(2):
            for i in range(700):
                k = rnd * 700 + i
                sink.publish([_report(n, t0 + k, k) for n in nodes])
            last = t0 + k  # wait until the HTTP loop applied every report (none in flight)
            assert _wait(
                lambda last=last: all(sink._latest.get(n, {}).get("t") == last for n in nodes)
                and all(len(sink._history.get(n, ())) == HISTORY_POINTS for n in nodes)
            )
            sizes.append(_sink_bytes())
        return sizes
    finally:
        tracemalloc.stop()
        sink.close()


@pytest.mark.slow
def test_live_page_history_is_a_fixed_ring_of_numbers_per_node():
    """16 nodes x 700 reports, then 700 more: the history the HTTP sink keeps per node is the
    600-point ring, <= 48 KiB (38 KiB of float64), and does not grow between the two passes.
    As one dict per point (main c32d146) this measured 165 KiB a node, and RSS climbed for the
    first 10 minutes of every run while it filled. Measured in a fresh interpreter: tracemalloc
    counts every thread's allocations, and a thread left by an earlier test would count too."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "from tests.test_memory_bounds import measure_history\n"
        "print(*measure_history(16))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    sizes = [int(x) for x in out[-2:]]
    per_node = sizes[-1] / 16
    assert per_node <= 48 * 1024, f"{per_node / 1024:.0f} KiB of sink memory per node"
    assert sizes[1] <= sizes[0] + 16 * 1024, sizes  # flat: the second pass adds nothing


def test_history_points_keep_unknown_apart_from_false_and_stay_in_order():
    h = History(4)
    assert h.points() == []
    reports = [
        {"t": 1.0, "breathing_bpm": 14.2, "presence": True, "motion": False,
         "link": {"rate_hz": 50.0, "rssi": -48, "online": True}},
        {"t": 2.0, "breathing_bpm": None, "presence": None, "motion": None, "link": None},
        {"t": 3.0, "heart_bpm": 61.5, "presence": False, "motion": True,
         "link": {"rate_hz": None, "rssi": "bad", "online": False}},
    ]  # fmt: skip
    for r in reports:
        h.append(r)
    pts = h.points()
    assert pts[0] == {"t": 1.0, "b": 14.2, "h": None, "p": True, "m": False,
                      "hz": 50.0, "rssi": -48.0, "on": True}  # fmt: skip
    assert pts[1] == dict.fromkeys(("b", "h", "p", "m", "hz", "rssi", "on")) | {"t": 2.0}
    assert pts[2]["p"] is False and pts[2]["m"] is True and pts[2]["on"] is False
    assert pts[2]["rssi"] is None and pts[2]["h"] == 61.5  # not a number: unknown
    for t in range(4, 10):  # wrap the ring: the newest 4, oldest first
        h.append({"t": float(t)})
    assert [p["t"] for p in h.points()] == [6.0, 7.0, 8.0, 9.0] and len(h) == 4
    assert h.nbytes == 4 * 8 * 8


def test_history_endpoint_serves_the_ring_as_the_page_reads_it():
    sink = HttpSink(port=0, status=lambda: {})
    try:
        t0 = time.time()
        for i in range(HISTORY_POINTS + 5):
            sink.publish([_report("n#1", t0 + i, i)])
        assert _wait(lambda: len(sink._history.get("n#1", ())) == HISTORY_POINTS)
        hist = json.loads(_get(sink.url + "api/history")[2])["nodes"]["n#1"]
        assert len(hist) == HISTORY_POINTS
        assert [p["t"] for p in hist[:2]] == pytest.approx([t0 + 5, t0 + 6])
        assert np.all(np.diff([p["t"] for p in hist]) > 0)
        assert [p["p"] for p in hist[:3]] == [None, True, False]  # i = 5, 6, 7
    finally:
        sink.close()
