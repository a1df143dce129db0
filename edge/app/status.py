"""The gateway's status, built on its loop at every report: what ``/health``, ``/metrics``,
``csi-edge status`` and the systemd ``STATUS=`` line show (judged by :mod:`csi_edge.sinks.health`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from csi_edge import __version__


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


class StatusBuilder:
    """Call once per report (it measures the report period from the calls)."""

    def __init__(self, gateway: Any, started: float | None = None) -> None:
        self.gateway = gateway
        self.started = time.time() if started is None else started
        self._prev: float | None = None
        #: node key -> display name; the node inventory (edge/inventory.py) fills this when it lands
        self.names: dict[str, str] = {}

    def __call__(self) -> dict:
        g = self.gateway
        now = time.time()
        summary = g.ingest.summary()
        interval = g.config.report_interval_s
        period = None if self._prev is None else now - self._prev
        self._prev = now
        nodes = {}
        newest = None
        for key, n in summary["nodes"].items():
            last = _num(n.get("last_seen"))
            if last is not None:
                newest = last if newest is None else max(newest, last)
            frames, lost = n.get("frames", 0), n.get("lost", 0)
            nodes[key] = {
                "name": self.names.get(key) or None,
                "online": n.get("online"),
                "rate_hz": _num(n.get("rate_hz")),
                "frames": frames,
                "lost": lost,
                "loss_ratio": round(lost / (frames + lost), 4) if frames + lost else None,
                "reboots": n.get("reboots"),
                "rssi": n.get("rssi"),
                "last_seen": last,
                "last_frame_age_s": None if last is None else round(now - last, 3),
            }
        skipped = dict(summary.get("skipped") or {})
        for reason, count in (g.skipped.as_dict() if g.skipped else {}).items():
            skipped[reason] = skipped.get(reason, 0) + count
        drops = [
            s.get("kernel_drops")
            for s in summary["sources"].values()
            if s.get("kernel_drops") is not None
        ]
        return {
            "version": __version__,
            "t": now,
            "started_at": self.started,
            "uptime_s": round(now - self.started, 3),
            "report_interval_s": interval,
            "sources": summary["sources"],
            "frames": summary["frames"],
            "nodes": nodes,
            "skipped": skipped,
            "kernel_drops": sum(drops) if drops else None,
            "mqtt": mqtt_status(g.sinks),
            "report": {
                "last_t": now,
                "period_s": None if period is None else round(period, 4),
                "lag_s": None if period is None else round(period - interval, 4),
                "frame_age_s": None if newest is None else round(now - newest, 4),
            },
        }


def mqtt_status(sinks: list) -> dict | None:
    """The MQTT sink's state, read through a small duck-typed interface: ``sink.stats()`` when the
    sink has it (reconnects, queued), else ``sink.client.is_connected()``; None without MQTT."""
    for sink in sinks:
        if type(sink).__name__ != "MqttSink":
            continue
        stats = getattr(sink, "stats", None)
        out: dict[str, Any] = dict(stats()) if callable(stats) else {}
        client = getattr(sink, "client", None)
        if "connected" not in out and client is not None:
            out["connected"] = bool(client.is_connected())
        cfg = getattr(sink, "config", None)
        if cfg is not None and "broker" not in out:
            out["broker"] = f"{cfg.host}:{cfg.port}"
        return out
    return None
