"""Reading a running gateway's ``/health`` from the shell (``csi-edge status``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from csi_edge.errors import DeviceError
from csi_edge.paths import state_dir

RUNNING_FILE = "http.json"  #: written by the HTTP sink while it serves: {"url", "pid"}


def find_url(url: str | None, config_path: str | None) -> str:
    if url:
        return url if url.endswith("/") else url + "/"
    try:
        return json.loads((state_dir() / RUNNING_FILE).read_text())["url"]
    except (OSError, ValueError, KeyError):
        pass
    if config_path:
        from csi_edge.config import load_config, parse_hostport

        cfg = load_config(config_path)
        if cfg.sinks.http:
            host, port = parse_hostport(cfg.sinks.http, default_host="127.0.0.1", what="sinks.http")
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            return f"http://{host}:{port}/"
    return "http://127.0.0.1:8080/"


def fetch_health(url: str, timeout: float = 5.0) -> dict:
    from csi_edge.sinks.http_token import TOKEN_FILE

    headers = {}
    token_file = Path(state_dir()) / TOKEN_FILE
    if token_file.exists():
        headers["Authorization"] = "Bearer " + token_file.read_text().strip()
    req = urllib.request.Request(url + "health", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 503:
            return json.loads(e.read())
        if e.code == 401:
            raise DeviceError(
                f"{url}: the gateway wants its token (it is in the gateway's state directory; "
                "run as the gateway's user or set CSI_EDGE_STATE_DIR)"
            ) from None
        raise DeviceError(f"{url}health: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DeviceError(
            f"no gateway answers at {url} ({reason}): is `csi-edge run --http ...` running? "
            "(--url picks another address)"
        ) from None


def format_health(h: dict, url: str) -> str:
    lines = [f"{url}: {h.get('status')}" + (f" ({'; '.join(h['problems'])})" if h.get("problems") else "")]
    if h.get("uptime_s") is not None:
        lines.append(f"  up {h['uptime_s']:.0f} s, {h.get('frames', 0)} frames, csi-edge {h.get('version')}")
    rep = h.get("report") or {}
    if rep.get("period_s") is not None:
        lines.append(
            f"  reports every {rep['period_s']:.2f} s (lag {rep['lag_s'] * 1000:.0f} ms), "
            f"newest frame {rep['frame_age_s'] * 1000 if rep.get('frame_age_s') is not None else float('nan'):.0f} ms old"
        )
    for name, s in (h.get("sources") or {}).items():
        extra = ", ".join(f"{k} {v}" for k, v in s.items() if v is not None)
        lines.append(f"  source {name}: {extra}")
    mqtt = h.get("mqtt")
    if mqtt:
        line = f"  mqtt {mqtt.get('broker', '')}: {'connected' if mqtt.get('connected') else 'not connected'}"
        if mqtt.get("queued") or mqtt.get("dropped"):  # the broker was away (mqtt_transport)
            line += f", {mqtt.get('queued', 0)} queued, {mqtt.get('dropped', 0)} dropped"
        lines.append(line)
    for key, n in sorted((h.get("nodes") or {}).items()):
        name = f"{n['name']} ({key})" if n.get("name") else key
        if n.get("online"):
            rate = f"{n['rate_hz']:.1f} Hz" if n.get("rate_hz") is not None else "rate unknown"
            loss = f"{100 * n['loss_ratio']:.1f} % lost" if n.get("loss_ratio") is not None else ""
            lines.append(f"  node {name}: online, {rate}, {loss}, RSSI {n.get('rssi')} dBm".replace(", ,", ","))
        else:
            age = n.get("last_frame_age_s")
            lines.append(f"  node {name}: OFFLINE" + (f", last frame {age:.0f} s ago" if age is not None else ""))
    if h.get("skipped"):
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in h["skipped"].items()))
    return "\n".join(lines)
