"""The gateway daemon: ingest -> per-node DSP/vitals and pose -> tracking -> sinks.

::

    Ingest (sources, codecs, NodeTable) --DecodeResult--> Gateway.on_result
        frames -> canonical LLTF [k, 53] per node -> NodeVitals.push      (edge/vitals)
                                                  -> PoseRuntime.push      (edge/inference, temporal)
                                                     -> decode, gate, NodeTracker (edge/pose)
        packets -> the node's own edge vitals, kept beside the gateway's estimate
    every report_interval_s: NodeReport per node -> every sink (console, JSONL, HTTP, MQTT)

Everything runs on the ingest loop's thread, so per-node state needs no locks. Work per frame is
vectorised over each batch a source hands over; the vitals spectra run once per report.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from csi_edge.codecs.result import DecodeResult
from csi_edge.config import GatewayConfig
from csi_edge.ingest import Ingest, Source
from csi_edge.layout import LLTF_RAW_BINS, lltf_canonical
from csi_edge.report import NodeReport, Sink
from csi_edge.skips import SkipCounter
from csi_edge.vitals.edge_packets import edge_vitals_report

log = logging.getLogger("csi_edge.gateway")


class Gateway:
    """Glue between ingest, the per-node estimators and the sinks (see module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        sources: Iterable[Source] = (),
        sinks: Iterable[Sink] = (),
        pose_runtime: Any | None = None,
        vitals_model: Any | None = None,
    ) -> None:
        from csi_edge.nodes import NodeTable
        from csi_edge.pose.tracking import NodeTracker

        self.config = config
        nodes = NodeTable(offline_after_s=config.ingest.offline_after_s, clock=time.time)
        self.ingest = Ingest(sources, nodes=nodes, consumers=[self.on_result])
        self.sinks: list[Sink] = list(sinks)
        self.pose = pose_runtime
        self.vitals_model = vitals_model
        self.tracker = NodeTracker()
        self.vitals: dict[str, Any] = {}
        self.node_vitals: dict[str, dict] = {}
        self._pose_t = np.zeros(0)  # tracker row -> grid time of its last pose output
        self._pose_conf = np.zeros((0, 17), np.float32)
        self.skipped = SkipCounter()
        self.reports_sent = 0
        self.pose_frames = 0
        self.last_reports: list[NodeReport] = []

    # -- per batch ----------------------------------------------------------------------------
    def _node_vitals(self, key: str):
        est = self.vitals.get(key)
        if est is None:
            from csi_edge.vitals.baseline import load_baseline
            from csi_edge.vitals.node import NodeVitals

            est = self.vitals[key] = NodeVitals(
                baseline=load_baseline(key, self.config.baselines_dir or None)
            )
        return est

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
            groups = list(frames.node_groups())
            for key, idx in groups:
                self._node_vitals(key).push(t[idx], csi[idx])
            if self.pose is not None and groups:
                order = np.concatenate([idx for _, idx in groups])
                node_idx = np.repeat(np.arange(len(groups)), [len(idx) for _, idx in groups])
                raw = np.zeros((len(order), 64), np.complex64)
                raw[:, LLTF_RAW_BINS] = csi[order]  # the pose runtime reads raw order
                self._run_pose([k for k, _ in groups], node_idx, t[order], raw)
        for packet in result.packets:
            rep = edge_vitals_report(packet)
            if rep is not None:
                self.node_vitals[rep[0]] = rep[1]

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

    # -- per report ---------------------------------------------------------------------------
    def reports(self, now: float | None = None) -> list[NodeReport]:
        """One NodeReport per known node, built from the latest estimates."""
        now = time.time() if now is None else now
        out = []
        summary = self.ingest.nodes.summary()
        for key, link in summary.items():
            est = self.vitals.get(key)
            rep = NodeReport(t=now, node=key, link=_link(link))
            if est is not None:
                v = est.estimate(now)
                rep.presence, rep.motion = bool(v.presence), bool(v.motion)
                rep.breathing_bpm, rep.breathing_conf = v.breathing_bpm, float(v.breathing_conf)
                rep.heart_bpm, rep.heart_conf = v.heart_bpm, float(v.heart_conf)
                rep.reason = v.reason
                if self.vitals_model is not None:
                    rep.model_vitals = self._model_vitals(est, now)
            # A skeleton is shown only while someone is there: the bundled pose model's
            # confidence does not separate an empty room (see edge/models/README.md).
            if rep.presence is not False:
                rep.pose = self._pose_report(key, now)
            rep.node_vitals = self.node_vitals.get(key)
            out.append(rep)
        return out

    def _model_vitals(self, est: Any, now: float) -> dict | None:
        """The bundled vitals model on the node's last 32 s (None until it has them)."""
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

    def publish(self, now: float | None = None) -> list[NodeReport]:
        reports = self.reports(now)
        for sink in self.sinks:
            try:
                sink.publish(reports)
            except Exception as exc:  # noqa: BLE001 - one broken sink must not stop the others
                self.skipped.skip(f"sink-error:{type(sink).__name__}", repr(exc))
        self.reports_sent += len(reports)
        self.last_reports = reports
        return reports

    async def _report_loop(self) -> None:
        interval = self.config.report_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - one bad report must not end all reports
                self.skipped.skip("report-error", repr(exc))
                log.warning("building reports failed: %r", exc)

    async def run(self, duration: float | None = None) -> None:
        """Run until ``duration`` passes or :meth:`stop`; sinks get a last report and are closed."""
        reporter = asyncio.create_task(self._report_loop())
        try:
            await self.ingest.run(duration)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            self.publish()
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
        out["pose_frames"] = self.pose_frames
        if self.skipped:
            out["gateway_skipped"] = self.skipped.as_dict()
        out["latest"] = {r.node: r.to_json() for r in self.last_reports}
        return out


def _link(s: dict) -> dict:
    keep = ("frames", "rate_hz", "lost", "duplicates", "reboots", "rssi", "online")
    d = {k: s[k] for k in keep if k in s}
    rate = d.get("rate_hz")
    if isinstance(rate, float) and math.isnan(rate):
        d["rate_hz"] = None
    return d


def _grown(a: np.ndarray, rows: np.ndarray, fill: float) -> np.ndarray:
    """``a`` with room for index ``rows.max()`` (new rows = ``fill``)."""
    need = int(rows.max()) + 1
    if need <= len(a):
        return a
    b = np.full((max(need, 2 * len(a)),) + a.shape[1:], fill, a.dtype)
    b[: len(a)] = a
    return b
