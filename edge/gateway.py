"""The gateway daemon: ingest -> per-node DSP/vitals and pose -> tracking -> sinks.

::

    Ingest (sources, codecs, NodeTable) --DecodeResult--> Gateway.on_result
        frames -> canonical LLTF [k, 53] per node -> NodeVitals.push      (edge/vitals)
                                                  -> PoseRuntime.push      (edge/inference, temporal)
                                                     -> decode, gate, NodeTracker (edge/pose)
        packets -> the node's own edge vitals, kept beside the gateway's estimate
    every report_interval_s: NodeReport per node -> every sink (console, JSONL, HTTP, MQTT)

Threads: ingest, per-batch routing, pose and the sinks run on the ingest loop's thread. The
vitals estimators (:class:`~csi_edge.vitals.node.NodeVitals`, and the optional vitals model) live
on one worker thread and are touched nowhere else, so they need no locks either: per batch the
loop only queues each node's frames (a list append); per report it swaps the queues out (the
snapshot), the worker conditions them and estimates every node, and the loop builds the reports
and publishes them. Every import and the first (costly) estimate are done on the worker at
start-up (a warm-up), so no estimate stalls the loop: importing scipy.signal on the loop once
paused ingest for 0.7-5.9 s and lost 272 frames with a Raspberry Pi's socket buffer.

Reports are scheduled on a fixed grid (start + k x ``report_interval_s``), not "sleep, then work"
(which drifted by the work's duration: 1.07-1.34 s periods under load). The snapshot is taken
ahead of each tick by the measured estimate time; an estimate that is still not back at the
tick (+2 %) does not hold the report: it goes out with the previous estimates (at most 2.5
intervals old, counted as ``vitals-late``), and how old the data are is in
``summary()["report_timing"]["data_age_s"]``. One estimate runs at a time; while it does, new
frames stay queued (``vitals-busy``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.config import GatewayConfig
from csi_edge.estimators import Estimators
from csi_edge.ingest import Ingest, Source
from csi_edge.layout import LLTF_RAW_BINS, lltf_canonical
from csi_edge.paths import state_dir
from csi_edge.report import NodeReport, Sink
from csi_edge.skips import SkipCounter
from csi_edge.vitals.edge_packets import edge_vitals_report

log = logging.getLogger("csi_edge.gateway")

TIMING_KEEP = 600
FINAL_ESTIMATE_S = 10.0
STALE_INTERVALS = 2.5  # a late estimate's report may use estimates this many intervals old  # how long the last report at shutdown waits for its estimates  # report periods / lags kept for the summary's percentiles


@dataclass
class _Snapshot:
    """What one report needs, taken on the loop: the worker reads nothing else."""

    now: float
    links: dict[str, dict]
    frames: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    forget: list[str] = field(default_factory=list)
    commands: list = field(default_factory=list)  # csi_edge.nodecommands, for the estimators


class Gateway:
    """Glue between ingest, the per-node estimators and the sinks (see module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        sources: Iterable[Source] = (),
        sinks: Iterable[Sink] = (),
        pose_runtime: Any | None = None,
        vitals_model: Any | None = None,
        inventory: Any | None = None,
        estimators: Any | None = None,
    ) -> None:
        from csi_edge.nodes import NodeTable
        from csi_edge.pose.tracking import NodeTracker

        self.config = config
        ing = config.ingest
        # the node inventory (csi_edge.inventory) names each new (address, node id) once, in
        # the node table: everything downstream (estimators, baselines, pose, reports, sinks)
        # is keyed by the board's identity, so an IP change keeps it; None: wire keys
        self.inventory = inventory
        self.identities: dict[str, Any] = {}  # key -> NodeIdentity (loop thread only)
        #: key -> the inventory's name, for named nodes only (/health: null = unnamed)
        self.names: dict[str, str] = {}
        nodes = NodeTable(
            offline_after_s=ing.offline_after_s,
            clock=time.time,
            key=None if inventory is None else self._identify,
        )
        known_only = bool(getattr(getattr(config, "inventory", None), "known_only", False))
        self.ingest = Ingest(
            sources,
            nodes=nodes,
            consumers=[self.on_result],
            inventory=inventory if known_only else None,
            max_nodes=ing.max_nodes,
            max_new_nodes_per_min=ing.max_new_nodes_per_min,
            forget_after_s=ing.forget_after_s,
        )
        self.ingest.on_forget.append(self._forget)
        self.sinks: list[Sink] = list(sinks)
        self.pose = pose_runtime
        self.vitals_model = vitals_model
        self.tracker = NodeTracker()
        # every NodeVitals lives here, touched by the worker only (see module docstring):
        # in this process (Estimators, on the worker thread) or in a child (ProcessEstimators)
        self.estimators = estimators or Estimators(
            config.baselines_dir, vitals_model, _vitals_config(config)
        )
        self._queued: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # loop thread only
        self._to_forget: list[str] = []
        # node commands (Recalibrate, SetMotionRatio) from any thread (an MQTT client's too);
        # they travel to the estimators with the next job
        self._commands_lock = threading.Lock()
        self._commands: list = []
        self.calibration: dict[str, dict] = {}  # key -> recalibration status (from the worker)
        from csi_edge.nodecommands import SetMotionRatio, load_settings

        self._settings_dir = state_dir()
        self.node_settings = load_settings(self._settings_dir)
        self._commands += [SetMotionRatio(k, v["motion_ratio"]) for k, v in self.node_settings.items()]
        self._worker_skips: list[dict[str, int]] = []  # appended by the worker, read on the loop
        self._inflight: asyncio.Future | None = None  # the estimate on the worker, if any
        self._last_estimates: tuple[float, dict] = (-math.inf, {})  # (snapshot time, estimates)
        self._estimates_t = -math.inf
        self.node_vitals: dict[str, dict] = {}
        self._pose_t = np.zeros(0)  # tracker row -> grid time of its last pose output
        self._pose_conf = np.zeros((0, 17), np.float32)
        self.skipped = SkipCounter()
        self.reports_sent = 0
        self.report_overruns = 0
        self.pose_frames = 0
        self.forgotten: list[str] = []
        self.last_reports: list[NodeReport] = []
        self.periods: deque = deque(maxlen=TIMING_KEEP)  # seconds between published reports
        self.lags: deque = deque(maxlen=TIMING_KEEP)  # report time -> handed to every sink
        self.compute_s: deque = deque(maxlen=TIMING_KEEP)  # one estimate pass on the worker
        self.data_age: deque = deque(maxlen=TIMING_KEEP)  # snapshot -> handed to the sinks
        self.loop_s: deque = deque(maxlen=TIMING_KEEP)  # report work on the loop (+ sinks)
        self._last_publish: float | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._warm: Any = None

    # -- identity -------------------------------------------------------------------------------
    def _identify(self, address: str, node_id: int) -> str:
        """The node table's key for a new (address, node id): the inventory's identity."""
        ident = self.inventory.resolve(address, node_id)
        self.identities[ident.key] = ident
        if ident.configured:
            self.names[ident.key] = ident.name
        return ident.key

    def rename(self, inventory: Any) -> list[str]:
        """A re-read inventory (SIGHUP): names and areas of known nodes change at once (their
        next report); a node the new inventory would key differently keeps its key until a
        restart. Returns those keys."""
        self.inventory = inventory
        stuck = []
        for st in list(self.ingest.nodes.nodes.values()):
            ident = inventory.resolve(st.source, st.node_id, tell=False)
            if ident.key != st.key:
                stuck.append(st.key)
                continue
            self.identities[ident.key] = ident
            if ident.configured:
                self.names[ident.key] = ident.name
            else:
                self.names.pop(ident.key, None)
        return stuck

    # -- forgetting -----------------------------------------------------------------------------
    def _forget(self, keys: list[str]) -> None:
        """Ingest forgot silent nodes: drop their state and tell the sinks (``sink.forget``)."""
        for key in keys:
            self._queued.pop(key, None)
            self.node_vitals.pop(key, None)
            self.identities.pop(key, None)
            self.names.pop(key, None)
        self._to_forget.extend(keys)  # the estimators go on the worker, with the next report
        self.forgotten.extend(keys)
        del self.forgotten[:-TIMING_KEEP]
        for sink in self.sinks:
            forget = getattr(sink, "forget", None)
            if forget is None:
                continue
            try:
                forget(keys)
            except Exception as exc:  # noqa: BLE001 - one broken sink must not stop the others
                self.skipped.skip(f"sink-error:{type(sink).__name__}", repr(exc))

    # -- per batch ----------------------------------------------------------------------------
    def on_result(self, result: DecodeResult) -> None:
        """Ingest consumer: route each node's frames to its estimators (runs per batch)."""
        frames = result.frames
        if len(frames):
            usable = frames.meta["n_pairs"] >= 64  # every layout starts with a 64-bin LLTF
            if not usable.all():
                self.skipped.skip(
                    "no-lltf",
                    f"{int((~usable).sum())} frame(s) with < 64 pairs",
                    int((~usable).sum()),
                )
                frames = frames[usable]
        if len(frames):
            csi = lltf_canonical(frames, self.config.ingest.iq_order)
            t = frames.meta["t_rx"]
            groups = list(frames.node_groups(self.ingest.nodes.key_of))
            queued = self._queued
            for key, idx in groups:
                q = queued.get(key)
                if q is None:
                    q = queued[key] = []
                q.append((t[idx], csi[idx]))  # conditioned on the worker, per report
            if self.pose is not None and groups:
                order = np.concatenate([idx for _, idx in groups])
                node_idx = np.repeat(np.arange(len(groups)), [len(idx) for _, idx in groups])
                raw = np.zeros((len(order), 64), np.complex64)
                raw[:, LLTF_RAW_BINS] = csi[order]  # the pose runtime reads raw order
                self._run_pose([k for k, _ in groups], node_idx, t[order], raw)
        for packet in result.packets:
            rep = edge_vitals_report(packet)
            if rep is not None:
                key = self.ingest.nodes.key_of(packet.source, packet.node_id)
                self.node_vitals[key] = rep[1]

    def _run_pose(
        self, keys: list[str], node_idx: np.ndarray, t: np.ndarray, raw: np.ndarray
    ) -> None:
        """All nodes' frames of a batch through the pose runtime and the tracker at once; the
        JSON for reports is built once per report, not per frame."""
        try:
            outputs = self.pose.push_batch(keys, node_idx, t, raw)
        except Exception as exc:  # noqa: BLE001 - a model/input mismatch must not stop vitals
            self.skipped.skip("pose-error", repr(exc), len(t))
            return
        self.pose_frames += len(outputs)
        if not len(outputs):
            return
        last = outputs.latest()
        kp = np.clip(last.keypoints, 0.0, 1.0)  # decode(): normalized image units
        tb = self.tracker.update_many(last.nodes, kp, last.confidence)
        self._pose_t = _grown(self._pose_t, tb.rows, -np.inf)
        self._pose_conf = _grown(self._pose_conf, tb.rows, 0.0)
        self._pose_t[tb.rows], self._pose_conf[tb.rows] = last.t, last.confidence

    def reset_pose_tracks(self) -> None:
        """Forget every pose track (a new pose model was loaded: its streams start empty)."""
        from csi_edge.pose.tracking import NodeTracker

        self.tracker = NodeTracker()
        self._pose_t = np.zeros(0)
        self._pose_conf = np.zeros((0, 17), np.float32)

    def _pose_report(self, key: str, now: float) -> dict | None:
        """The node's tracked pose when its track is confirmed and under 2 s old."""
        from csi_edge.pose.tracking import CONFIRMED

        row = self.tracker.rows.get(key)
        if row is None or row >= len(self._pose_t) or now - self._pose_t[row] >= 2.0:
            return None
        if self.tracker.batch.status[row] != CONFIRMED:
            return None
        st = self.tracker.batch.state(row)
        return {
            "keypoints": np.round(st.xy, 4).tolist(),
            "confidence": np.round(self._pose_conf[row], 3).tolist(),
            "track": st.track_id,
        }

    # -- node commands (Home Assistant's buttons and numbers, or any caller; any thread) ------
    def recalibrate(self, key: str, seconds: float = 75.0, delay_s: float = 10.0) -> None:
        """Collect a new room baseline for node ``key``: after ``delay_s`` (time to leave the
        room), ``seconds`` of its frames; the status is in its reports (``calibration``)."""
        from csi_edge.nodecommands import recalibrate

        self._known(key)
        cmd = recalibrate(key, seconds, delay_s)
        with self._commands_lock:
            self._commands.append(cmd)
        log.info("node %s: recalibration requested (%g s after %g s)", key, seconds, delay_s)

    def set_motion_ratio(self, key: str, ratio: float) -> None:
        """Node ``key``'s motion threshold (lower: more sensitive), kept across restarts."""
        from csi_edge.nodecommands import motion_ratio, save_settings

        self._known(key)
        cmd = motion_ratio(key, ratio)
        with self._commands_lock:
            self._commands.append(cmd)
            self.node_settings[key] = {"motion_ratio": cmd.ratio}
            settings = {k: dict(v) for k, v in self.node_settings.items()}
        try:
            save_settings(self._settings_dir, settings)
        except OSError as e:
            log.warning("node %s: motion ratio %g applied but not saved: %s", key, cmd.ratio, e)
        log.info("node %s: motion ratio set to %g", key, cmd.ratio)

    def motion_ratio(self, key: str) -> float:
        """The motion ratio node ``key`` runs with (its own, else ``[vitals] motion_ratio``)."""
        own = self.node_settings.get(key)
        if own is not None:
            return own["motion_ratio"]
        section = getattr(self.config, "vitals", None)
        return float(getattr(section, "motion_ratio", 2.0))

    def _log_calibration(self, new: dict[str, dict]) -> None:
        """Log each recalibration's outcome once (the estimator process's own log goes nowhere)."""
        for key, st in new.items():
            done = st.get("recalibration")
            old = (self.calibration.get(key) or {}).get("recalibration")
            if done in ("accepted", "refused") and old != done:
                (log.info if done == "accepted" else log.warning)(
                    "node %s: recalibration %s: %s", key, done, st.get("message", "")
                )

    def _known(self, key: str) -> None:
        from csi_edge.errors import InputError

        if key not in self.ingest.nodes:
            raise InputError(f"no node {key!r} on this gateway")

    # -- per report ---------------------------------------------------------------------------
    def _snapshot(self, now: float) -> _Snapshot:
        """On the loop: link statistics and the frames queued since the last report."""
        frames, self._queued = self._queued, {}
        forget, self._to_forget = self._to_forget, []
        self._take_sink_commands()
        with self._commands_lock:
            commands, self._commands = self._commands, []
        return _Snapshot(now, self.ingest.nodes.summary(), frames, forget, commands)

    def _take_sink_commands(self) -> None:
        """Commands a sink received (``take_commands()``, optional: the MQTT sink's Recalibrate
        button and motion threshold number) as ``(node key, what, value)``, pulled once per
        report so a reloaded sink needs no wiring; each goes through :meth:`recalibrate` /
        :meth:`set_motion_ratio`, whose checks hold for every caller."""
        from csi_edge.errors import InputError

        for sink in self.sinks:
            take = getattr(sink, "take_commands", None)
            if take is None:
                continue
            try:
                commands = take()
            except Exception as exc:  # noqa: BLE001 - like a failing publish: counted
                self.skipped.skip(f"sink-error:{type(sink).__name__}", repr(exc))
                continue
            for key, what, value in commands:
                try:
                    if what == "recalibrate":
                        self.recalibrate(key)
                    elif what == "motion_ratio":
                        self.set_motion_ratio(key, value)
                    else:
                        log.warning("node %s: unknown command %r from %s", key, what,
                                    type(sink).__name__)  # fmt: skip
                except InputError as e:
                    log.warning("%s (from %s): ignored", e, type(sink).__name__)

    def _estimate(self, snap: _Snapshot) -> dict[str, tuple[Any, dict | None]]:
        """Off the loop (worker thread, which may hand it to the estimator process): push the
        queued frames, estimate every node -> ``{key: (VitalsEstimate, model vitals)}``."""
        t0 = time.perf_counter()
        estimates, skipped, calibration = self.estimators.estimate(
            (snap.now, list(snap.links), snap.frames, snap.forget, snap.commands)
        )
        self._log_calibration(calibration)
        self.calibration = calibration
        self.compute_s.append(time.perf_counter() - t0)  # deque.append: safe across threads
        if skipped:
            self._worker_skips.append(skipped)  # counted on the loop, in _build
        return estimates

    async def _estimate_off_loop(self, snap: _Snapshot, timeout: float | None = None) -> dict:
        """The estimates from the worker. A failure, or no answer within ``timeout``, costs the
        vitals of this report (counted under ``vitals-error`` / ``vitals-late``), never the
        report: link statistics still go out. While an estimate is still running, the
        snapshot's frames go back to the queue (the estimators must see every frame, in order)
        and the report goes out without vitals (``vitals-busy``)."""
        loop = asyncio.get_running_loop()
        busy = self._inflight is not None and not self._inflight.done()
        if busy:
            for key, chunks in snap.frames.items():
                self._queued[key] = chunks + self._queued.get(key, [])
            self._to_forget[:0] = snap.forget
            with self._commands_lock:
                self._commands[:0] = snap.commands
            self.skipped.skip("vitals-busy", "the last estimate is still running")
            self._estimates_t = -math.inf
            return {}
        self._estimates_t = snap.now  # the data time of the estimates this call returns
        fut = self._inflight = loop.run_in_executor(self._executor(), self._estimate, snap)
        fut.add_done_callback(lambda f, t=snap.now: self._keep_estimates(f, t))
        done, _ = await asyncio.wait({fut}, timeout=timeout)
        if not done:
            # on time beats fresh: the previous estimates (at most STALE_INTERVALS old) go out
            # with this report, and this one's are kept for the next when they arrive
            self.skipped.skip("vitals-late", f"no estimate within {timeout:.2f} s")
            t, last = self._last_estimates
            if snap.now - t > STALE_INTERVALS * self.config.report_interval_s:
                self._estimates_t = -math.inf
                return {}
            self._estimates_t = t
            return last
        try:
            return fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. the estimator process died
            self.skipped.skip("vitals-error", repr(exc))
            return {}

    def _keep_estimates(self, fut: asyncio.Future, t: float) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._last_estimates = (t, fut.result())

    def _build(self, snap: _Snapshot, estimates: dict) -> list[NodeReport]:
        """On the loop: one NodeReport per known node from the snapshot and the estimates."""
        while self._worker_skips:
            for reason, n in self._worker_skips.pop().items():
                self.skipped.skip(reason, "in the vitals estimators", n)
        now, out = snap.now, []
        nodes = self.ingest.nodes
        for key, link in snap.links.items():
            if key not in nodes:
                continue  # forgotten since the snapshot: sinks were told to remove it
            rep = NodeReport(t=now, node=key, link=_link(link))
            ident = self.identities.get(key)
            if ident is not None and ident.configured:  # "": sinks show an automatic name
                rep.name, rep.area = ident.name, ident.area
            got = estimates.get(key)
            if got is not None:
                v, mv = got
                # None (undecided) stays None: sinks show it as unknown, never as "clear"
                rep.presence, rep.motion = _tristate(v.presence), _tristate(v.motion)
                rep.breathing_bpm, rep.breathing_conf = v.breathing_bpm, float(v.breathing_conf)
                rep.heart_bpm, rep.heart_conf = v.heart_bpm, float(v.heart_conf)
                rep.reason = v.reason
                if self.vitals_model is not None:
                    rep.model_vitals = mv
            # A skeleton is shown only while someone is there: the bundled pose model's
            # confidence does not separate an empty room (see edge/models/README.md).
            if rep.presence:  # not while unknown either
                rep.pose = self._pose_report(key, now)
            rep.node_vitals = self.node_vitals.get(key)
            rep.calibration = self.calibration.get(key)
            rep.motion_ratio = self.motion_ratio(key)
            out.append(rep)
        return out

    def reports(self, now: float | None = None) -> list[NodeReport]:
        """One NodeReport per known node, estimated on the calling thread (for tools and
        tests; the running gateway estimates on its worker: see :meth:`_report_loop`)."""
        snap = self._snapshot(time.time() if now is None else now)
        return self._build(snap, self._estimate(snap))

    async def reports_async(
        self, now: float | None = None, timeout: float | None = None
    ) -> list[NodeReport]:
        """:meth:`reports` with the estimates made on the worker thread (the loop goes on)."""
        snap = self._snapshot(time.time() if now is None else now)
        return self._build(snap, await self._estimate_off_loop(snap, timeout))

    def _executor(self) -> ThreadPoolExecutor:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="csi-edge-vitals")
        return self._worker

    def _warm_up(self) -> float:
        """On the worker at start-up: the estimators' imports and first estimate."""
        took = self.estimators.warm_up()
        log.info("vitals estimators ready (warm-up %.2f s, off the ingest loop)", took)
        return took

    def publish(self, now: float | None = None) -> list[NodeReport]:
        """Build reports on this thread and hand them to every sink (tools, tests, shutdown)."""
        return self._hand_out(self.reports(now))

    def _hand_out(self, reports: list[NodeReport]) -> list[NodeReport]:
        for sink in self.sinks:
            try:
                sink.publish(reports)
            except Exception as exc:  # noqa: BLE001 - one broken sink must not stop the others
                self.skipped.skip(f"sink-error:{type(sink).__name__}", repr(exc))
        done = time.time()
        if reports:
            self.lags.append(done - reports[0].t)
        if self._last_publish is not None:
            self.periods.append(done - self._last_publish)
        self._last_publish = done
        self.reports_sent += len(reports)
        self.last_reports = reports
        return reports

    def _lead_s(self, interval: float) -> float:
        """How long before a tick to take the snapshot so its estimates are back by the tick:
        a high quantile of the recent estimate durations plus a margin, at most 0.8 of an
        interval (one slow outlier must not age every later report's data)."""
        recent = list(self.compute_s)[-20:]
        if not recent:
            return 0.0
        return min(1.2 * float(np.quantile(recent, 0.95)) + 0.02, 0.8 * interval)

    async def _report_loop(self) -> None:
        """A report every ``report_interval_s`` on a fixed grid. The estimates run on the worker,
        started ``lead`` seconds before each tick (their measured duration), so the reports are
        handed to the sinks at the tick instead of one estimate-pass later; how old the data is
        at the tick is kept in ``report_timing.data_age_s``."""
        interval = self.config.report_interval_s
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while True:
            k += 1
            late = loop.time() - (start + k * interval)
            if late >= 0:  # the last report ran past this tick: skip the missed ticks
                missed = int(late // interval) + 1
                self.report_overruns += missed
                k += missed
            lead = self._lead_s(interval)
            await asyncio.sleep(max(start + k * interval - lead - loop.time(), 0.0))
            try:
                c0 = time.perf_counter()
                snap = self._snapshot(time.time())
                on_loop = time.perf_counter() - c0
                # due at the tick (+2 %): a late estimate must not make the report late
                estimates = await self._estimate_off_loop(snap, lead + 0.02 * interval)
                tick = start + k * interval
                if loop.time() < tick:
                    await asyncio.sleep(tick - loop.time())
                c0 = time.perf_counter()
                reports = self._build(snap, estimates)
                now = time.time()
                if math.isfinite(self._estimates_t):  # a report without vitals has no age
                    self.data_age.append(now - self._estimates_t)
                for r in reports:
                    r.t = now  # the report's time; its data reach up to snap.now (data_age)
                self._hand_out(reports)
                self.loop_s.append(on_loop + time.perf_counter() - c0)
            except Exception as exc:  # noqa: BLE001 - one bad report must not end all reports
                self.skipped.skip("report-error", repr(exc))
                log.warning("building reports failed: %r", exc)

    async def run(self, duration: float | None = None) -> None:
        """Run until ``duration`` passes or :meth:`stop`; sinks get a last report and are closed."""
        loop = asyncio.get_running_loop()
        # Everything built so far (modules, models, sockets) lives as long as the process: out of
        # the cyclic collector's sight, a full collection on the loop no longer walks it.
        gc.freeze()
        # the first reports wait for this like for a running estimate (frames stay queued)
        self._warm = self._inflight = loop.run_in_executor(self._executor(), self._warm_up)
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self.ingest.run(duration)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            try:
                self._hand_out(await self.reports_async(timeout=FINAL_ESTIMATE_S))
            except Exception as exc:  # noqa: BLE001 - the sinks are closed regardless
                self.skipped.skip("report-error", repr(exc))
            hung = self._inflight is not None and not self._inflight.done()
            close = getattr(self.estimators, "close", None)
            if close is not None:
                close()  # a hung estimator process is killed: the worker thread then returns
            self._worker.shutdown(wait=not hung)
            self._worker = None
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("closing %s failed: %s", type(sink).__name__, exc)

    def totals_line(self) -> str:
        """One line of ingest totals (frames, nodes, packets, skips) for console views."""
        from csi_edge.ingest import totals_line

        return totals_line(self.ingest.summary())

    def stop(self) -> None:
        self.ingest.stop()

    def summary(self) -> dict[str, Any]:
        out = self.ingest.summary()
        out["reports"] = self.reports_sent
        out["report_timing"] = {
            "interval_s": self.config.report_interval_s,
            "period_s": _percentiles(self.periods),
            "lag_s": _percentiles(self.lags),
            "data_age_s": _percentiles(self.data_age),
            "estimate_s": _percentiles(self.compute_s),
            "on_loop_s": _percentiles(self.loop_s),
            "overruns": self.report_overruns,
        }
        out["forgotten"] = self.forgotten[-64:]
        out["pose_frames"] = self.pose_frames
        if self.skipped:
            out["gateway_skipped"] = self.skipped.as_dict()
        out["latest"] = {r.node: r.to_json() for r in self.last_reports}
        return out


def _vitals_config(config: Any):
    """The estimators' VitalsConfig from a GatewayConfig's [vitals] section (None: defaults)."""
    section = getattr(config, "vitals", None)
    return section.to_vitals_config() if hasattr(section, "to_vitals_config") else None


def _tristate(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _link(s: dict) -> dict:
    keep = ("frames", "rate_hz", "lost", "duplicates", "reboots", "rssi", "online", "last_seen")
    d = {k: s[k] for k in keep if k in s}
    rate = d.get("rate_hz")
    if isinstance(rate, float) and math.isnan(rate):
        d["rate_hz"] = None
    return d


def _percentiles(xs) -> dict[str, float | None]:
    """p50 / p95 / max of recent timings (None while there are none)."""
    if not xs:
        return {"p50": None, "p95": None, "max": None}
    a = np.asarray(xs)
    return {
        "p50": round(float(np.percentile(a, 50)), 4),
        "p95": round(float(np.percentile(a, 95)), 4),
        "max": round(float(a.max()), 4),
    }


def _grown(a: np.ndarray, rows: np.ndarray, fill: float) -> np.ndarray:
    """``a`` with room for index ``rows.max()`` (new rows = ``fill``)."""
    need = int(rows.max()) + 1
    if need <= len(a):
        return a
    b = np.full((max(need, 2 * len(a)),) + a.shape[1:], fill, a.dtype)
    b[: len(a)] = a
    return b
