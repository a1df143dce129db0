"""``/metrics`` in the Prometheus text format (prometheus-client), from the gateway's last status.

Names follow the Prometheus conventions: the ``csi_edge_`` prefix, base units in the name
(``_seconds``, ``_hertz``, ``_ratio``, dBm kept as ``_dbm``), counters ending in ``_total``,
``csi_edge_build_info{version=...} 1``; labels stay low-cardinality (node, reason, model).
A value the gateway does not know yet is left out, never exported as 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from csi_edge import __version__

#: process-wide: inference latency, observed by the app's model wrapper (csi_edge.app.timing)
INFERENCE_REGISTRY = CollectorRegistry()
INFERENCE_SECONDS = Histogram(
    "csi_edge_inference_seconds",
    "Wall time of one model call (a batch of frames for the pose model, one window for vitals).",
    ["model"],
    registry=INFERENCE_REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)


class StatusCollector:
    """A prometheus-client collector over an :class:`~csi_edge.sinks.http.HttpSink`'s status."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator:  # noqa: C901 - one flat list of series
        s = self.sink.health()
        info = InfoMetricFamily("csi_edge_build", "csi-edge build information.")
        info.add_metric([], {"version": __version__})
        yield info
        up = GaugeMetricFamily("csi_edge_healthy", "1 when /health says ok or degraded, else 0.")
        up.add_metric([], 0.0 if s.get("status") in ("unhealthy", "starting") else 1.0)
        yield up
        if "frames" in s:
            c = CounterMetricFamily("csi_edge_frames_received", "CSI frames decoded from all sources.")
            c.add_metric([], s["frames"])
            yield c
        skipped = CounterMetricFamily(
            "csi_edge_skipped", "Inputs not used, by reason (datagrams, lines, frames).", labels=["reason"]
        )
        for reason, n in sorted((s.get("skipped") or {}).items()):
            skipped.add_metric([reason], n)
        yield skipped
        if s.get("kernel_drops") is not None:
            kd = CounterMetricFamily("csi_edge_kernel_drops", "Datagrams the kernel dropped (socket buffer full).")
            kd.add_metric([], s["kernel_drops"])
            yield kd
        yield from _node_series(s.get("nodes") or {})
        rep = s.get("report") or {}
        for key, name, doc in (
            ("lag_s", "csi_edge_report_lag_seconds", "How late the last report came after its interval."),
            ("period_s", "csi_edge_report_period_seconds", "Time between the last two reports."),
            ("frame_age_s", "csi_edge_report_frame_age_seconds", "Age of the newest frame in the last report."),
            ("last_t", "csi_edge_last_report_timestamp_seconds", "Unix time of the last report."),
        ):
            if rep.get(key) is not None:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], rep[key])
                yield g
        mqtt = s.get("mqtt")
        if mqtt:
            g = GaugeMetricFamily("csi_edge_mqtt_connected", "1 while connected to the MQTT broker.")
            g.add_metric([], 1.0 if mqtt.get("connected") else 0.0)
            yield g
            if mqtt.get("reconnects") is not None:
                c = CounterMetricFamily("csi_edge_mqtt_reconnects", "Connections to the broker after the first.")
                c.add_metric([], mqtt["reconnects"])
                yield c
            if mqtt.get("dropped") is not None:
                c = CounterMetricFamily(
                    "csi_edge_mqtt_dropped_messages",
                    "Messages dropped while the broker was away (the queue was full; oldest first).",
                )
                c.add_metric([], mqtt["dropped"])
                yield c
            if mqtt.get("queued") is not None:
                g = GaugeMetricFamily("csi_edge_mqtt_queued_messages", "Messages waiting to be sent.")
                g.add_metric([], mqtt["queued"])
                yield g
        guard = getattr(self.sink, "guard", None)
        if guard is not None:
            g = GaugeMetricFamily("csi_edge_http_connections", "Open HTTP connections.")
            g.add_metric([], len(guard.server.connections))
            yield g
            c = CounterMetricFamily(
                "csi_edge_http_connections_closed", "HTTP connections closed by the gateway.", labels=["why"]
            )
            c.add_metric(["idle"], guard.closed_idle)
            c.add_metric(["over-limit"], guard.closed_over_limit)
            yield c


def _node_series(nodes: dict) -> Iterator:
    fams = {
        "up": GaugeMetricFamily("csi_edge_node_up", "1 while the node sends frames.", labels=["node"]),
        "frames": CounterMetricFamily("csi_edge_node_frames", "Frames from the node.", labels=["node"]),
        "lost": CounterMetricFamily("csi_edge_node_lost_frames", "Sequence gaps (frames lost on the way).", labels=["node"]),
        "reboots": CounterMetricFamily("csi_edge_node_reboots", "Sequence restarts seen.", labels=["node"]),
        "rate_hz": GaugeMetricFamily("csi_edge_node_frame_rate_hertz", "Recent frame rate.", labels=["node"]),
        "loss_ratio": GaugeMetricFamily("csi_edge_node_loss_ratio", "lost / (frames + lost), 0..1.", labels=["node"]),
        "last_seen": GaugeMetricFamily(
            "csi_edge_node_last_frame_timestamp_seconds", "Unix time of the node's last frame.", labels=["node"]
        ),
        "rssi": GaugeMetricFamily("csi_edge_node_rssi_dbm", "Last RSSI reported by the node.", labels=["node"]),
    }
    for key, n in sorted(nodes.items()):
        if n.get("online") is not None:
            fams["up"].add_metric([key], 1.0 if n["online"] else 0.0)
        for field in ("frames", "lost", "reboots", "rate_hz", "loss_ratio", "last_seen", "rssi"):
            v = n.get(field)
            if v is not None:
                fams[field].add_metric([key], v)
    yield from fams.values()
