"""Talking to one RuView node's OTA endpoint: which nodes (``HOST[:PORT][#NODE_ID]`` or a
fleet.toml), their PSKs, ``GET /ota/status`` and a streamed ``POST /ota``.

Standard-library HTTP on purpose: one blocking request at a time is all a one-node-at-a-time
rollout needs, and a dropped connection must surface as an error, never be retried silently.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from csi_edge.errors import DeviceError, InputError
from csi_edge.firmware import otapsk

DEFAULT_PORT = 8032
PROJECT = "esp32-csi-node"
UPLOAD_TIMEOUT = 120.0  #: seconds per socket operation; ~911 KB took 58-73 s on real nodes
CHUNK = 16 * 1024


class OtaError(DeviceError):
    """A node refused, dropped or failed an update step (the message names the node);
    ``refused`` when the node answered but said no (PSK, size), else it was unreachable."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass
class Target:
    """One node to update; ``psk`` never appears in reprs, reports or logs."""

    host: str
    port: int = DEFAULT_PORT
    node_id: int | None = None
    mac: str | None = None
    psk: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        base = f"{self.host}:{self.port}"
        return base if self.node_id is None else f"{base} (node {self.node_id})"


# ---------------------------------------------------------------- targets
_NODE = re.compile(r"^(?P<host>\[[^\]]+\]|[^:#\s]+)(?::(?P<port>\d+))?(?:#(?P<id>\d+))?$")


def parse_node(text: str) -> Target:
    """``HOST[:PORT][#NODE_ID]`` (the port defaults to 8032; the node id is checked in the CSI)."""
    m = _NODE.match(text.strip())
    if not m:
        raise InputError(f"node {text!r}: expected HOST[:PORT][#NODE_ID], e.g. 192.168.1.21:8032#3")
    port = int(m["port"] or DEFAULT_PORT)
    nid = int(m["id"]) if m["id"] else None
    if not 0 < port < 65536 or (nid is not None and nid > 255):
        raise InputError(f"node {text!r}: port must be 1-65535 and node id 0-255")
    return Target(m["host"].strip("[]"), port, nid)


def load_targets(inventory: str | Path) -> list[Target]:
    """The ``[[boards]]`` of a fleet.toml (as for ``provision --inventory``) with ``host``
    (the node's IP), optional ``ota_port``, ``node_id`` and ``mac``."""
    import tomllib

    p = Path(inventory)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: inventory file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{p}: not a readable TOML inventory ({e})") from None
    boards = doc.get("boards")
    if not isinstance(boards, list) or not boards:
        raise InputError(f"{p}: no [[boards]] entries")
    out, problems = [], []
    for i, b in enumerate(boards):
        where = f"{p}: boards[{i}]"
        if not isinstance(b, dict) or not isinstance(b.get("host"), str) or not b["host"]:
            problems.append(f'{where}: needs host = "<the node\'s IP address>" for ota')
            continue
        port, nid = b.get("ota_port", DEFAULT_PORT), b.get("node_id")
        if not isinstance(port, int) or not 0 < port < 65536:
            problems.append(f"{where}: ota_port must be an integer 1-65535, got {port!r}")
            continue
        if nid is not None and (not isinstance(nid, int) or not 0 <= nid <= 255):
            problems.append(f"{where}: node_id must be an integer 0-255, got {nid!r}")
            continue
        mac = str(b["mac"]).lower() if b.get("mac") else None
        out.append(Target(b["host"], port, nid, mac))
    seen: set[tuple[str, int]] = set()
    for t in out:
        if (t.host, t.port) in seen:
            problems.append(f"{p}: node {t.host}:{t.port} is listed twice")
        seen.add((t.host, t.port))
    if problems:
        raise InputError("; ".join(problems))
    return out


def attach_psks(targets: list[Target], override: str | None) -> None:
    """Every target gets its PSK (``override`` for all, else the store) or one error for all."""
    missing = []
    for t in targets:
        t.psk = override or otapsk.find(t.mac, t.node_id)
        if not t.psk:
            missing.append(t.name)
    if missing:
        raise InputError(
            f"no OTA PSK known for {', '.join(missing)}: provision one with `csi-edge provision "
            f"--ota-psk auto` (stored in {otapsk.path()}), give node ids/MACs that match it, or "
            "set CSI_EDGE_OTA_PSK"
        )


# ---------------------------------------------------------------- HTTP client
STATUS_FIELDS = ("version", "running_partition", "next_partition", "max_size")


def _auth(t: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.psk}"}


def _refusal(t: Target, code: int, body: str, what: str) -> OtaError:
    if code == 401:
        return OtaError(
            f"{t.name}: {what}: the node refused the PSK (HTTP 401); expected the PSK "
            "provisioned with `csi-edge provision --ota-psk`",
            refused=True,
        )
    if code == 403:
        return OtaError(
            f"{t.name}: {what}: the node has no OTA PSK (HTTP 403); provision one "
            "with `csi-edge provision --ota-psk auto`",
            refused=True,
        )
    why = body.strip()[:120] or "no reason given"
    return OtaError(f"{t.name}: {what}: HTTP {code} ({why})", refused=True)


def get_status(t: Target, timeout: float = 5.0) -> dict:
    """``GET /ota/status``; OtaError on anything but a complete answer."""
    conn = http.client.HTTPConnection(t.host, t.port, timeout=timeout)
    try:
        conn.request("GET", "/ota/status", headers=_auth(t))
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        raise OtaError(f"{t.name}: /ota/status unreachable ({e or type(e).__name__})") from None
    finally:
        conn.close()
    if r.status != 200:
        raise _refusal(t, r.status, body, "/ota/status")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    missing = [f for f in STATUS_FIELDS if not isinstance(doc, dict) or f not in doc]
    if missing:
        raise OtaError(f"{t.name}: /ota/status lacks {', '.join(missing)}: is this a RuView node?")
    return doc


def upload(
    t: Target,
    data: bytes,
    progress: Callable[[int], None] | None = None,
    timeout: float = UPLOAD_TIMEOUT,
) -> str:
    """``POST /ota`` with the body streamed in chunks; a dropped connection is a failure."""
    conn = http.client.HTTPConnection(t.host, t.port, timeout=timeout)
    sent = 0
    try:
        try:
            conn.putrequest("POST", "/ota", skip_accept_encoding=True)
            for k, v in {
                **_auth(t),
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
            }.items():
                conn.putheader(k, v)
            conn.endheaders()
            view = memoryview(data)
            while sent < len(data):
                conn.send(view[sent : sent + CHUNK])
                sent += len(view[sent : sent + CHUNK])
                if progress:
                    progress(sent)
        except ConnectionRefusedError:
            raise OtaError(f"{t.name}: refused the connection for the upload (is it up?)") from None
        except OSError as e:
            send_error: OSError | None = e  # the node may have answered (401, 400) and closed
        else:
            send_error = None
        try:
            r = conn.getresponse()
            body = r.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            why = send_error or e
            raise OtaError(
                f"{t.name}: upload failed after sending {sent} of {len(data)} bytes: the connection "
                f"dropped ({why or type(why).__name__}); the node may have crashed (RuView "
                "#1893). Not counted as success"
            ) from None
    finally:
        conn.close()
    if r.status != 200:
        raise _refusal(t, r.status, body, "POST /ota")
    return body.strip()
