"""The start-up banner: what a running gateway listens on, loaded, writes to, and found.

The first thing `journalctl -u csi-edge` shows, and the answer to "is it even listening?"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from csi_edge import __version__
from csi_edge.paths import baselines_dir, state_dir


def banner_lines(gateway: Any) -> list[str]:
    cfg = gateway.config
    lines = [f"csi-edge {__version__} gateway (pid {os.getpid()})"]
    listen = []
    for src in gateway.ingest.sources:
        addr = getattr(src, "address", None)
        if addr is not None and getattr(src, "name", "").startswith("udp"):
            rcv = (src.stats() or {}).get("rcvbuf") if hasattr(src, "stats") else None
            extra = f" (receive buffer {rcv // 1024} KiB)" if rcv else ""
            listen.append(f"udp {addr[0]}:{addr[1]}{extra}")
        else:
            listen.append(getattr(src, "name", type(src).__name__))
    lines.append("  listening: " + (", ".join(listen) or "nothing"))
    models = []
    for task, runtime, name in (
        ("pose", gateway.pose, cfg.models.pose),
        ("vitals", gateway.vitals_model, cfg.models.vitals),
    ):
        if runtime is None:
            models.append(f"{task} off" + (f" ({name} not loaded)" if name else ""))
        else:
            models.append(f"{task} {name} ({cfg.models.precision}, {cfg.models.threads} thread(s))")
    lines.append("  models: " + "; ".join(models))
    vs = getattr(cfg, "vitals", None)
    if vs is not None and not vs.heart_enabled:
        lines.append(
            "  heart rate: off (right only from >= 40 Hz nodes at high SNR; no entity is "
            "published; [vitals] heart_enabled = true switches it on, see docs/vitals.md)"
        )
    sinks = []
    for key, sink in getattr(gateway, "sink_map", {}).items():
        if key == "http":
            auth = "token required" if sink.token else "loopback only, no token"
            sinks.append(f"http {sink.url} (/health, /metrics; {auth})")
        elif key == "jsonl":
            p = sink.file.policy
            sinks.append(
                f"jsonl {sink.path} (rotated at {p.max_bytes / 2**20:.0f} MB or "
                f"{p.max_age_s / 3600:g} h, {p.keep} kept{', gzipped' if p.compress else ''})"
            )
        elif key == "mqtt":
            m = sink.config
            sinks.append(
                f"mqtt {m.host}:{m.port} ({'TLS' if m.transport.tls else 'plaintext'}, "
                f"topics {sink.topics.base}/, client id {m.client_id}, "
                f"discovery {m.discovery_prefix})"
            )
        else:
            sinks.append(key)
    capture = getattr(gateway, "capture", None)
    if capture is not None:
        sinks.append(f"capture ring {capture.path.parent}")
    lines.append("  sinks: " + (", ".join(sinks) or "none"))
    bdir = cfg.baselines_dir or str(baselines_dir())
    try:
        found = sorted(p.stem for p in Path(bdir).glob("*.json"))
    except OSError:
        found = []
    lines.append(
        f"  baselines: {len(found)} in {bdir}"
        + ("" if found else " (none: presence uses the built-in thresholds; see `csi-edge baseline`)")
    )
    lines.append(f"  state: {state_dir()}")
    return lines
