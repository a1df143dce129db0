"""The vitals estimators off the ingest loop (csi_edge.estimators): in a child process they give
the same estimates as in-process, survive a dead child, and a warm-up does the first estimate's
imports before any real one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from csi_edge.estimators import Estimators, ProcessEstimators, WorkerError


def _jobs(n_nodes: int = 3, seconds: int = 30, rate: float = 20.0):
    """Per-second jobs for a few synthetic nodes (a slow 'breathing' modulation + noise)."""
    rng = np.random.default_rng(1)
    t0 = 1.7e9
    keys = [f"10.0.0.{i}#1" for i in range(n_nodes)]
    for s in range(seconds):
        frames = {}
        for key in keys:
            t = t0 + s + np.arange(int(rate)) / rate
            amp = 20 + 2 * np.sin(2 * np.pi * 0.25 * t)[:, None]
            csi = amp * np.exp(1j * rng.normal(0, 0.05, (len(t), 53))) + rng.normal(
                0, 0.3, (len(t), 53)
            )
            frames[key] = [
                (t[:10], csi[:10].astype(np.complex64)),
                (t[10:], csi[10:].astype(np.complex64)),
            ]
        yield (t0 + s + 1.0, keys, frames, [])


def test_the_child_process_estimates_what_the_thread_would():
    here = Estimators()
    there = ProcessEstimators()
    try:
        for job in _jobs():
            a, *_ = here.estimate(job)
            b, *_ = there.estimate(job)
            assert a.keys() == b.keys()
            for key in a:
                assert a[key][0] == b[key][0]  # VitalsEstimate dataclasses, field by field
        assert there.warm_up_s is not None and there.warm_up_s > 0
    finally:
        there.close()


def test_forgotten_nodes_leave_the_worker():
    est = Estimators()
    jobs = list(_jobs(seconds=2))
    est.estimate(jobs[0])
    assert set(est.vitals) == set(jobs[0][1])
    now, keys, _, _ = jobs[1]
    est.estimate((now, keys[1:], {}, [keys[0]]))
    assert keys[0] not in est.vitals


def test_a_dead_child_is_an_error_for_that_report_and_restarted_for_the_next():
    pe = ProcessEstimators()
    try:
        jobs = list(_jobs(seconds=3))
        pe.estimate(jobs[0])
        os.kill(pe._proc.pid, signal.SIGKILL)
        pe._proc.wait(5)
        with pytest.raises(WorkerError, match="died"):
            pe.estimate(jobs[1])
        got, *_ = pe.estimate(jobs[2])  # a fresh child (its state starts over)
        assert set(got) == set(jobs[2][1]) and pe.restarts == 1
    finally:
        pe.close()


def test_the_warm_up_does_the_first_estimates_imports():
    """In a fresh interpreter: every module a real estimate needs is imported by the warm-up,
    not later on the ingest loop (importing scipy.signal there once took 0.7-5.9 s on a Pi;
    the estimators no longer use it at all: ~75 MB RSS, see csi_edge.dsp.iir)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from csi_edge.estimators import Estimators\n"
        "est = Estimators()\n"
        "est.warm_up()\n"
        "before = set(sys.modules)\n"
        "rng = np.random.default_rng(1)\n"
        "t = 5e6 + np.arange(600) / 20.0\n"
        "csi = (rng.normal(size=(600, 53)) + 1j * rng.normal(size=(600, 53)) + 20).astype(np.complex64)\n"
        "out, *_ = est.estimate((float(t[-1]), ['n'], {'n': [(t, csi)]}, []))\n"
        "assert 'n' in out, out\n"
        "new = set(sys.modules) - before\n"
        "assert not new, sorted(new)\n"
        "assert not [m for m in sys.modules if m.startswith('scipy')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


class _StuckEstimators:
    """Estimators that never answer until released (a hung worker)."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.calls = 0

    def warm_up(self) -> float:
        return 0.0

    def estimate(self, job):
        self.calls += 1
        self.release.wait(30)
        return {}, {}


def test_a_hung_estimator_costs_the_vitals_not_the_reports():
    import asyncio

    from csi_edge.config import GatewayConfig
    from csi_edge.gateway import Gateway

    cfg = GatewayConfig()
    cfg.models.pose = cfg.models.vitals = ""
    cfg.report_interval_s = 0.1
    stuck = _StuckEstimators()
    gw = Gateway(cfg, estimators=stuck)
    published = []
    gw.sinks = [type("S", (), {"publish": lambda self, r: published.append(r),
                               "close": lambda self: None})()]  # fmt: skip

    async def main():
        task = asyncio.create_task(gw.run())
        while len(published) < 8:
            await asyncio.sleep(0.02)
        calls.append(stuck.calls)
        stuck.release.set()
        gw.stop()
        await task

    calls: list[int] = []
    asyncio.run(main())
    skipped = gw.skipped.as_dict()
    assert calls == [1]  # while it hung, no second job was queued behind it
    assert skipped.get("vitals-late", 0) == 1 and skipped.get("vitals-busy", 0) >= 6
