"""The gateway's health, judged from its last status: one rule set for ``/health``, ``csi-edge
status``, the systemd ``STATUS=`` line and the live page.

The status dict is built on the gateway's loop at every report (``csi_edge.app.status``); this module
only judges it, adding how old it is. A status that stopped coming is itself the strongest sign: a
frozen loop (SIGSTOP, a blocking call) keeps no value fresh, so ``/health`` turns 503 within a
few report intervals instead of showing the last values as current.
"""

from __future__ import annotations

from typing import Any

STARTUP_GRACE_S = 10.0  #: no frames this long after start: the likely-causes warning and unhealthy


def stall_after_s(report_interval_s: float) -> float:
    """Reports older than this mean the gateway loop is stuck."""
    return max(3.0 * report_interval_s, 3.0)


def evaluate(status: dict, status_t: float | None, now: float, report_interval_s: float) -> dict:
    """``status`` plus ``"status"`` (ok | degraded | unhealthy | starting), ``"problems"`` (why)
    and ``"status_age_s"``. Unhealthy (HTTP 503): no report yet, reports stalled, no source, or
    no node online; degraded (200): some nodes offline, the MQTT broker not connected."""
    out: dict[str, Any] = dict(status)
    problems: list[str] = []
    bad = False
    if status_t is None:
        out.update(status="starting", problems=["no report yet"], status_age_s=None)
        return out
    age = now - status_t
    out["status_age_s"] = round(age, 3)
    if age > stall_after_s(report_interval_s):
        problems.append(f"no report for {age:.1f} s: the gateway loop is stalled")
        bad = True
    if not status.get("sources"):
        problems.append("no source is running")
        bad = True
    nodes = status.get("nodes") or {}
    online = [k for k, n in nodes.items() if n.get("online")]
    offline = [k for k, n in nodes.items() if not n.get("online")]
    if not nodes:
        if (status.get("uptime_s") or 0.0) >= STARTUP_GRACE_S:
            problems.append("no frames received yet (see the gateway's log for likely causes)")
            bad = True
        else:
            problems.append("waiting for the first frames")
    elif not online:
        problems.append(f"no node online ({len(offline)} known, all silent)")
        bad = True
    elif offline:
        problems.append("offline: " + ", ".join(sorted(offline)))
    mqtt = status.get("mqtt")
    if mqtt and mqtt.get("connected") is False:
        problems.append(f"MQTT broker {mqtt.get('broker', '')} not connected".replace("  ", " "))
    out["problems"] = problems
    out["status"] = "unhealthy" if bad else "degraded" if problems else "ok"
    out["nodes_online"] = len(online)
    return out


def status_line(health: dict) -> str:
    """One line for ``systemctl status`` / the console: "4/4 nodes online, mqtt up, 812 frames/s"."""
    nodes = health.get("nodes") or {}
    online = sum(1 for n in nodes.values() if n.get("online"))
    parts = [f"{online}/{len(nodes)} nodes online"]
    mqtt = health.get("mqtt")
    if mqtt:
        parts.append("mqtt up" if mqtt.get("connected") else "mqtt down")
    rate = sum((n.get("rate_hz") or 0.0) for n in nodes.values() if n.get("online"))
    parts.append(f"{rate:.0f} frames/s")
    if health.get("status") not in (None, "ok"):
        parts.append(f"{health['status']}: " + "; ".join(health.get("problems") or []))
    return ", ".join(parts)
