"""The per-node vitals estimators, off the ingest loop: on a worker thread or in a worker process.

The gateway's loop must never run an estimate: 64 nodes cost 0.3-0.8 s of CPU per report on
this machine, and numpy/scipy calls that hold the GIL for long stretches paused a loop sharing
a process with them by up to 350 ms (measured with ``scripts/bench_gateway_load.py``). So:

* :class:`Estimators` owns every :class:`~csi_edge.vitals.node.NodeVitals` (and the optional
  vitals model) and is only ever called from one thread: ``estimate(job)`` pushes the frames the
  loop queued since the last report, then estimates each node.
* :class:`ProcessEstimators` runs an :class:`Estimators` in a child process (a fresh
  interpreter: nothing of the parent's threads or sockets is inherited) and talks to it over a
  socket pair. Started with ``subprocess``, not multiprocessing's ``spawn``: spawn also starts
  a resource-tracker process (~12 MB RSS, ~7 MB of it private) and re-imports the parent's main
  script in the child (for ``csi-edge run``, the CLI), neither of which the estimates need.
  Per-node state stays consistent because only the child touches it; the loop only snapshots
  its queues and reads results. The child builds its vitals model with the ``model_loader`` it
  is given (a picklable callable) and says whether that worked (``model_loaded``: the gateway
  waits for it at build time, so a broken bundle is still a config error); the gateway never
  opens the model itself: onnxruntime and a session cost a process ~31 MB RSS (~10 MB of it
  private), for a model only the child runs. Then the child does its imports and a first
  estimate (a warm-up), so the first real estimate costs what the later ones do.

A job is ``(now, keys, frames, forget[, commands])``: the report time, the nodes to estimate, the
frames per node (``[(t_rx [k], csi [k, 53])...]``), the nodes to forget first, and node commands
(:mod:`csi_edge.nodecommands`: recalibrate, motion ratio) to apply before the frames. A result is
``({key: (VitalsEstimate, model vitals dict | None)}, {skip reason: count}, {key: calibration
status})``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from csi_edge.skips import SkipCounter

log = logging.getLogger("csi_edge.estimators")

NICE = 5  # the estimator process's niceness, relative to the gateway

Job = tuple  # (now, keys, frames, forget[, commands]): see the module docstring
Result = tuple[dict[str, tuple[Any, dict | None]], dict[str, int], dict[str, dict]]


def compact(frames: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict:
    """One (t, csi) pair per node instead of one per receive batch (~100 per node and second):
    pickling ~20,000 small arrays held the GIL for ~60 ms per report at 96 nodes, pausing the
    ingest loop."""
    out = {}
    for key, chunks in frames.items():
        if len(chunks) <= 1 or len({c[1].shape[1:] for c in chunks}) > 1:
            out[key] = chunks  # (a width change is NodeVitals' to see and count)
        else:
            t = np.concatenate([c[0] for c in chunks])
            out[key] = [(t, np.concatenate([c[1] for c in chunks]))]
    return out


class Estimators:
    """Every node's vitals estimator; call from one thread only (see module docstring)."""

    def __init__(
        self,
        baselines_dir: str | None = None,
        vitals_model: Any | None = None,
        config: Any | None = None,
    ) -> None:
        self.baselines_dir = baselines_dir or None
        self.vitals_model = vitals_model
        self.config = config  # VitalsConfig of the [vitals] section (None: the defaults)
        self.vitals: dict[str, Any] = {}
        self.skipped = SkipCounter()
        self.ratios: dict[str, float] = {}  # per-node motion ratio (nodecommands.SetMotionRatio)
        self.calibrating: dict[str, Any] = {}  # key -> nodecommands.LiveCalibration
        self.calibration: dict[str, dict] = {}  # key -> the last recalibration status

    def _config(self, key: str):
        from dataclasses import replace

        from csi_edge.vitals.config import VitalsConfig

        cfg = self.config or VitalsConfig()
        ratio = self.ratios.get(key)
        return cfg if ratio is None else replace(cfg, motion_ratio=ratio)

    def node(self, key: str):
        est = self.vitals.get(key)
        if est is None:
            from csi_edge.vitals.baseline import load_baseline
            from csi_edge.vitals.node import NodeVitals

            est = self.vitals[key] = NodeVitals(
                self._config(key), baseline=load_baseline(key, self.baselines_dir)
            )
        return est

    def command(self, cmd: Any, now: float) -> None:
        """Apply one :mod:`csi_edge.nodecommands` command (see there)."""
        from csi_edge.nodecommands import LiveCalibration, Recalibrate, SetMotionRatio

        if isinstance(cmd, SetMotionRatio):
            self.ratios[cmd.key] = cmd.ratio
            if cmd.key in self.vitals:
                self.vitals[cmd.key].cfg = self._config(cmd.key)
        elif isinstance(cmd, Recalibrate):
            self.calibrating[cmd.key] = cal = LiveCalibration(cmd, now)
            self.calibration[cmd.key] = cal.status(now)

    def _calibrate(self, now: float) -> None:
        """Finish the recalibrations whose time is up; refresh the others' status."""
        for key, cal in list(self.calibrating.items()):
            if now < cal.until:
                self.calibration[key] = cal.status(now)
                continue
            del self.calibrating[key]
            self.calibration[key], fresh = cal.finish(self.baselines_dir, self._config(key))
            if fresh is not None:
                self.node(key).baseline = fresh

    def _baseline_status(self, key: str) -> dict:
        """What the node's room baseline is, and its recalibration (running, or refused last):
        ``state`` is waiting / collecting / refused while that is news, else complete / partial
        / none (a baseline with too little still data is used only once complete)."""
        b = self.vitals[key].baseline
        base = "complete" if b.complete else ("partial" if b.still_s > 0 else "none")
        out = {
            "state": base,
            "baseline": base,
            "still_s": round(float(b.still_s), 1),
            "message": f"{b.still_s:.0f} of {b.required_s:.0f} s of still, empty-room data",
        }
        cal = self.calibration.get(key)
        if cal is not None:
            out["recalibration"] = cal["state"]
            out["message"] = cal["message"]
            if cal["state"] != "accepted":
                out["state"] = cal["state"]
        return out

    def estimate(self, job: Job) -> Result:
        now, keys, frames, forget = job[:4]
        frames = compact(frames)  # the same pushes as in the estimator process
        for key in forget:
            self.vitals.pop(key, None)
            self.calibrating.pop(key, None)
            self.calibration.pop(key, None)
        for cmd in job[4] if len(job) > 4 else ():
            self.command(cmd, now)
        for key, chunks in frames.items():
            est = self.node(key)
            cal = self.calibrating.get(key)
            for t, csi in chunks:
                est.push(t, csi)
                if cal is not None:
                    cal.feed(t, csi)
        if self.calibrating:
            self._calibrate(now)
        out = {}
        for key in keys:
            est = self.vitals.get(key)
            if est is None:
                continue
            v = est.estimate(now)
            out[key] = (v, self.model_vitals(est, now) if self.vitals_model is not None else None)
        skipped = self.skipped.as_dict()
        self.skipped.clear()
        return out, skipped, {key: self._baseline_status(key) for key in out}

    def model_vitals(self, est: Any, now: float) -> dict | None:
        """The vitals model on the node's last 32 s (None until it has them)."""
        from csi_edge.dsp.features import vitals_window_from_grid

        win = est.amplitude_window(now)
        if win is None:
            return None
        try:
            out = self.vitals_model.run(vitals_window_from_grid(win))[0]
        except Exception as exc:  # noqa: BLE001 - a model failure must not stop the DSP vitals
            self.skipped.skip("vitals-model-error", repr(exc))
            return None
        # logits -> probabilities; clipped so a wild logit cannot raise OverflowError in exp
        sig = lambda v: 1.0 / (1.0 + math.exp(-min(max(float(v), -60.0), 60.0)))  # noqa: E731
        return {
            "breathing_bpm": round(out["breathing_bpm"], 2),
            "presence": round(sig(out["presence_logit"]), 3),
            "motion": round(sig(out["motion_logit"]), 3),
        }

    def warm_up(self) -> float:
        """Every import and lazy set-up a first estimate does (BLAS limits, caches, the
        model's first run), on 40 s of synthetic frames; returns the seconds it took."""
        t0 = time.perf_counter()
        import csi_edge.paths  # noqa: F401 - what load_baseline imports at a node's first job
        from csi_edge.vitals.baseline import Baseline
        from csi_edge.vitals.node import NodeVitals

        rng = np.random.default_rng(0)
        k = 400  # 40 s at 10 Hz: enough for the breathing and heart paths to run
        t = 1e6 + np.arange(k) / 10.0
        csi = (rng.normal(size=(k, 53)) + 1j * rng.normal(size=(k, 53))).astype(np.complex64)
        csi += 20.0
        est = NodeVitals(baseline=Baseline.default())
        est.push(t, csi)
        est.estimate(float(t[-1]))
        if self.vitals_model is not None:
            self.model_vitals(est, float(t[-1]))
        self.skipped.clear()
        return time.perf_counter() - t0


# The child's first lines: the parent's sys.path (as spawn would give it) before any csi_edge
# import, then the arguments; only the standard library is imported before that.
_CHILD = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "conn = Connection(int(sys.argv[1]))\n"
    "sys.path[:] = conn.recv()\n"
    "from csi_edge.estimators import _serve\n"
    "_serve(conn, *conn.recv())\n"
)


def _serve(
    conn,
    baselines_dir: str | None,
    model_loader: Callable[[], Any] | None,
    config: Any | None = None,
) -> None:
    """The child process: build, warm up, then answer jobs until the pipe closes."""
    # Lower priority than the ingest loop: a late estimate costs little, a descheduled loop
    # costs frames once the socket buffer fills (a Pi has 4 cores, this box 2).
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICE)
    model, said = None, None
    if model_loader is not None:  # the model is opened here only (see ProcessEstimators)
        try:
            model, said = model_loader(), ("model", None)
        except BaseException as exc:  # noqa: BLE001 - the parent decides: warn or refuse
            said = ("model-error", _error_kind(exc), str(exc) or repr(exc))
    try:
        est = Estimators(baselines_dir, model, config)
        warm = None
    except BaseException as exc:  # noqa: BLE001 - report it to the parent, which raises
        est, warm = None, ("error", repr(exc))
    try:  # the parent may be gone already (it failed to bind a port): end quietly then
        if said is not None:
            conn.send(said)
        if est is not None:
            try:
                warm = ("ready", est.warm_up())
            except BaseException as exc:  # noqa: BLE001 - report it to the parent, which raises
                est, warm = None, ("error", repr(exc))
        conn.send(warm)
    except OSError:
        return
    if est is None:
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if job is None:
            return
        try:
            answer = ("ok", est.estimate(job))
        except Exception as exc:  # noqa: BLE001 - one bad job must not end the worker
            answer = ("error", repr(exc))
        try:
            conn.send(answer)
        except OSError:  # the gateway is gone
            return


def _error_kind(exc: BaseException) -> str:
    """How the parent should take a model that failed to open: "manifest" (a bad bundle: a
    default one is disabled with a warning, a named one is a config error), "input" (another
    user error with its message), "bug" (anything else)."""
    from csi_edge.errors import CsiEdgeError
    from csi_edge.inference.manifest import ManifestError

    if isinstance(exc, ManifestError):
        return "manifest"
    return "input" if isinstance(exc, CsiEdgeError) else "bug"


class WorkerError(RuntimeError):
    """The estimator process failed a job or died (the gateway counts it as a report error)."""


class ModelLoadError(WorkerError):
    """The estimator process could not open the vitals model (it runs on without one);
    ``kind`` is :func:`_error_kind`'s, ``message`` the loader's error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


class ProcessEstimators:
    """:class:`Estimators` in a child process; ``estimate(job)`` blocks (call it off the loop,
    from one thread at a time). A dead child is restarted at the next job (its state is lost
    and the gateway says so in the log)."""

    def __init__(
        self,
        baselines_dir: str | None = None,
        model_loader: Callable[[], Any] | None = None,
        config: Any | None = None,
    ) -> None:
        self.baselines_dir = baselines_dir
        self.model_loader = model_loader
        self.config = config
        self.warm_up_s: float | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._model_pending = False  # the child's ("model", ...) answer is still to be read

    def start(self) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        with ours, theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
            self._conn = Connection(ours.detach())
        self._conn.send(list(sys.path))
        self._conn.send((self.baselines_dir, self.model_loader, self.config))
        self.warm_up_s = None
        self._model_pending = self.model_loader is not None

    def model_loaded(self) -> None:
        """Start the child if needed and wait until it has opened the vitals model (not for
        its warm-up). Raises :class:`ModelLoadError` if it could not: the child then runs on
        without a model, and so do its restarts."""
        with self._lock:
            if self._proc is None:
                self.start()
            self._model_answer()

    def _model_answer(self) -> None:
        if not self._model_pending:
            return
        answer = self._recv()
        self._model_pending = False
        if answer[0] == "model-error":
            self.model_loader = None
            raise ModelLoadError(answer[1], answer[2])
        if answer[0] != "model":
            raise WorkerError(f"the estimator process failed to start: {answer[1]}")

    def _ready(self) -> None:
        if self._proc is None:
            self.start()
        if self._model_pending:  # a restart: the model opened before, so it should again
            try:
                self._model_answer()
            except ModelLoadError as exc:
                log.warning(
                    "the restarted estimator process runs without its vitals model: %s", exc
                )
        if self.warm_up_s is None:
            status, value = self._recv()
            if status != "ready":
                raise WorkerError(f"the estimator process failed to start: {value}")
            self.warm_up_s = value

    def _recv(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            self._reap()
            raise WorkerError(f"the estimator process died ({exc!r}); restarting it") from None

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=1.0)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        self._model_pending = False
        self.restarts += 1

    def warm_up(self) -> float:
        with self._lock:
            self._ready()
            return self.warm_up_s or 0.0

    def estimate(self, job: Job) -> Result:
        job = (job[0], job[1], compact(job[2]), *job[3:])
        with self._lock:
            self._ready()
            try:
                self._conn.send(job)
            except (BrokenPipeError, OSError) as exc:
                self._reap()
                raise WorkerError(f"the estimator process died ({exc!r}); restarting it") from None
            status, value = self._recv()
            if status != "ok":
                raise WorkerError(f"estimate failed in the estimator process: {value}")
            return value

    def close(self) -> None:
        """Stop the child. If a job is stuck in it (the lock is held), the child is killed,
        which ends the stuck call with a WorkerError."""
        got = self._lock.acquire(timeout=5.0)
        try:
            if got and self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
            proc = self._proc
            if proc is not None:
                try:
                    proc.wait(timeout=5.0 if got else 0.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=1.0)
            if got:
                if self._conn is not None:
                    self._conn.close()
                self._proc = self._conn = None
        finally:
            if got:
                self._lock.release()
