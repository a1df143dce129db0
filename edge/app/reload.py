"""SIGHUP: apply a re-read config to a running gateway without dropping sources or node state.

What changes live: sinks (only those whose section changed are rebuilt: the new one is built
before the old one is closed, so a bad new address keeps the old sink), models (loaded on a worker
thread, then swapped in; the pose model's streaming window starts over), ``offline_after_s``,
node names and areas (``[nodes.<id>]``, ``[inventory]``: from the next report on). A node the new
inventory would key differently (newly matched, or no longer) keeps its key until a restart.
What needs a restart, and is said so in the log: sources (``ingest.*``), the capture ring,
``report_interval_s``, ``gateway_id``. An invalid config raises (the daemon logs one line naming file and key)
and the running configuration stays.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from csi_edge.config import GatewayConfig

log = logging.getLogger("csi_edge.service")



def _sink_fields() -> dict[str, tuple[str, ...]]:
    """Sink name (:data:`csi_edge.sinks.SINKS`) -> the ``[sinks]`` fields that make it: the
    field of its name and any ``<name>_*`` (``jsonl`` and ``jsonl_rotate``), so a new sink
    needs no entry here."""
    from csi_edge.config import SinksConfig
    from csi_edge.sinks import SINKS

    names = [f.name for f in dataclasses.fields(SinksConfig)]
    return {
        key: tuple(n for n in names if n == key or n.startswith(key + "_")) for key in SINKS
    }


class Reloader:
    def __init__(self, gateway: Any, load: Callable[[], GatewayConfig]) -> None:
        self.gateway = gateway
        self.load = load

    async def __call__(self) -> str:
        from csi_edge.app.timing import TimedModel
        from csi_edge.service import build_sink_map, load_pose_runtime, load_vitals_model

        g = self.gateway
        new = self.load()  # ConfigError: nothing changed yet
        old = g.config
        done: list[str] = []
        restart: list[str] = []
        applied = copy.deepcopy(new)
        if new.ingest.udp != old.ingest.udp or new.ingest.serial != old.ingest.serial or (
            new.ingest.iq_order != old.ingest.iq_order
        ):
            restart.append("ingest sources")
            applied.ingest.udp, applied.ingest.serial = old.ingest.udp, old.ingest.serial
            applied.ingest.iq_order = old.ingest.iq_order
        if (new.sinks.capture, new.sinks.capture_rotate) != (old.sinks.capture, old.sinks.capture_rotate):
            restart.append("sinks.capture")
            applied.sinks.capture = old.sinks.capture
            applied.sinks.capture_rotate = old.sinks.capture_rotate
        if new.report_interval_s != old.report_interval_s:
            restart.append("report_interval_s")
            applied.report_interval_s = old.report_interval_s
        if new.gateway_id != old.gateway_id:  # the MQTT identity: topics, client and device ids
            restart.append("gateway_id")
            applied.gateway_id = old.gateway_id

        if new.models.vitals != old.models.vitals and hasattr(g.estimators, "model_loader"):
            # the vitals model runs inside the estimator process with every node's state
            restart.append("models.vitals (it runs in the estimator process)")
            applied.models.vitals = old.models.vitals

        inventory = None
        if (new.nodes, new.inventory) != (old.nodes, old.inventory):
            from csi_edge.service import build_inventory

            inventory = build_inventory(applied)  # ConfigError: nothing changed yet
        pose = vitals = None
        models_changed = applied.models != old.models
        # the estimator process runs the vitals model: this process never opens it (it would
        # import onnxruntime here: ~31 MB RSS), so a reload keeps what it has
        in_child = hasattr(g.estimators, "model_loader")
        if models_changed:
            loop = asyncio.get_running_loop()
            pose, vitals = await loop.run_in_executor(
                None,
                lambda: (
                    load_pose_runtime(applied),
                    g.vitals_model if in_child else load_vitals_model(applied),
                ),
            )
        changed = {
            key
            for key, fields in _sink_fields().items()
            if any(getattr(new.sinks, f) != getattr(old.sinks, f) for f in fields)
        }
        sink_map: dict = getattr(g, "sink_map", {})
        fresh = build_sink_map(
            applied,
            getattr(g, "console_stream", None),
            g.totals_line,
            getattr(g, "status", None),
            only=changed,
        ) if changed else {}
        # everything built: swap in (nothing below can fail half-way)
        for key in sorted(changed):
            old_sink = sink_map.pop(key, None)
            if old_sink is not None:
                _close(old_sink)
            if key in fresh:
                sink_map[key] = fresh[key]
            done.append(f"sink {key} {'rebuilt' if key in fresh else 'removed'}"
                        if old_sink is not None else f"sink {key} added")
        heartbeat = [s for s in g.sinks if type(s).__name__ == "Heartbeat"]
        g.sink_map = sink_map
        g.sinks = heartbeat + list(sink_map.values())
        if models_changed:
            g.pose = None if pose is None else TimedModel(pose, "pose")
            if not in_child:
                g.vitals_model = None if vitals is None else TimedModel(vitals, "vitals")
            if hasattr(g.estimators, "vitals_model"):  # in-process estimators (a worker thread)
                g.estimators.vitals_model = g.vitals_model
            g.reset_pose_tracks()  # the new model's streams start empty; so do the tracks
            done.append("models reloaded")
        if inventory is not None:
            stuck = g.rename(inventory)
            g.ingest.admission.inventory = inventory if new.inventory.known_only else None
            done.append("node names")
            if stuck:
                restart.append(f"the identity of node(s) {', '.join(stuck)}")
        if new.ingest.offline_after_s != old.ingest.offline_after_s:
            g.ingest.nodes.offline_after_s = new.ingest.offline_after_s
            done.append(f"offline_after_s {new.ingest.offline_after_s:g}")
        if new.baselines_dir != old.baselines_dir:
            done.append("baselines_dir (for nodes seen from now on)")
        g.config = applied
        text = ", ".join(done) or "no change"
        if restart:
            text += "; needs a restart to change: " + ", ".join(restart)
        return text


def _close(sink: Any) -> None:
    try:
        sink.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("closing %s failed: %s", type(sink).__name__, exc)
