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
        self.latest_pose: dict[str, tuple[float, dict]] = {}
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
            pose_in: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for key, idx in frames.node_groups():
                self._node_vitals(key).push(t[idx], csi[idx])
                if self.pose is not None:
                    raw = np.zeros((len(idx), 64), np.complex64)
                    raw[:, LLTF_RAW_BINS] = csi[idx]  # the pose runtime reads raw order
                    pose_in[key] = (t[idx], raw)
            if pose_in:
                self._run_pose(pose_in)
        for packet in result.packets:
            rep = edge_vitals_report(packet)
            if rep is not None:
                self.node_vitals[rep[0]] = rep[1]

    def _run_pose(self, pose_in: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        from csi_edge.pose.keypoints import decode, gate

        try:
            outputs = self.pose.push(pose_in)
        except Exception as exc:  # noqa: BLE001 - a model/input mismatch must not stop vitals
            self.skipped.skip("pose-error", repr(exc), sum(len(t) for t, _ in pose_in.values()))
            return
        last: dict[str, Any] = {}
        for out in outputs:
            last[out.node] = out
        self.pose_frames += len(outputs)
        for node, out in last.items():
            pose = gate(decode(out.keypoints.reshape(-1), out.confidence))
            state = self.tracker.update(node, pose)
            if state.status == "confirmed":
                self.latest_pose[node] = (
                    out.t,
                    {
                        "keypoints": np.round(state.xy, 4).tolist(),
                        "confidence": np.round(pose.confidence, 3).tolist(),
                        "track": state.track_id,
                    },
                )
            else:
                self.latest_pose.pop(node, None)

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
                # None (unknown) passes through: never a guessed "Clear" (see docs/vitals.md)
                rep.presence, rep.motion = v.presence, v.motion
                rep.breathing_bpm, rep.breathing_conf = v.breathing_bpm, float(v.breathing_conf)
                rep.heart_bpm, rep.heart_conf = v.heart_bpm, float(v.heart_conf)
                rep.reason = v.reason
                if self.vitals_model is not None:
                    rep.model_vitals = self._model_vitals(est, now)
            pose = self.latest_pose.get(key)
            # A skeleton is shown only while someone is there: the bundled pose model's
            # confidence does not separate an empty room (see edge/models/README.md).
            if pose is not None and now - pose[0] < 2.0 and rep.presence is not False:
                rep.pose = pose[1]
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
