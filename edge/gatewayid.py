"""The gateway's id: what keeps two gateways on one MQTT broker (and their nodes) apart.

It is in the MQTT client id (a broker disconnects the older of two clients with one id, so a
shared id made two gateways knock each other off every second), the topic tree
``csi-edge/<gateway_id>/...``, the status topic (last will) and Home Assistant device ids.
Configured with ``gateway_id`` in gateway.toml; otherwise derived from the host name once and
kept in ``<state dir>/gateway_id``, so renaming the host later does not re-create every device.
"""

from __future__ import annotations

import logging
import re
import socket

from csi_edge.errors import ConfigError
from csi_edge.paths import state_dir

log = logging.getLogger("csi_edge.gateway")

FILE_NAME = "gateway_id"
_VALID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def check_gateway_id(value: str, where: str = "gateway_id") -> str:
    """``value`` if it is safe in topics and ids (no ``/``, ``+``, ``#``), else a ConfigError."""
    if not isinstance(value, str) or not _VALID.match(value):
        raise ConfigError(
            f"{where}: expected 1-32 characters a-z, 0-9, '-' or '_' (starting with a letter or "
            f"digit), got {value!r}"
        )
    return value


#: host names many machines share out of the box: the id gets a piece of the MAC appended
GENERIC_HOSTS = frozenset(
    {"raspberrypi", "localhost", "ubuntu", "debian", "dietpi", "orangepi", "armbian", "pi"}
)


def derive_gateway_id() -> str:
    """The host name made topic-safe (``Pi-Kitchen.local`` -> ``pi-kitchen``); a stock name
    (``raspberrypi``) gets the end of the MAC address (``raspberrypi-3fa2c1``), because two
    boards fresh from one image would otherwise share an id and knock each other off."""
    import uuid

    host = socket.gethostname().split(".")[0].lower()
    gid = re.sub(r"[^a-z0-9-]+", "-", host).strip("-")[:32] or "gateway"
    if gid in GENERIC_HOSTS or gid == "gateway":
        gid = f"{gid}-{uuid.getnode() & 0xFFFFFF:06x}"
    return gid


def resolve_gateway_id(configured: str = "") -> str:
    """The configured id, else the one kept in the state directory, else a new one derived from
    the host name (written there, so it stays the same from now on)."""
    if configured:
        return check_gateway_id(configured)
    path = state_dir() / FILE_NAME
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    except (OSError, UnicodeDecodeError) as e:
        log.warning("%s: cannot read the gateway id (%s); deriving it from the host name", path, e)
        return derive_gateway_id()
    if kept:
        return check_gateway_id(kept, str(path))
    gid = derive_gateway_id()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(gid + "\n", encoding="utf-8")
    except OSError as e:
        log.warning(
            "%s: cannot keep the gateway id %r (%s); set gateway_id in gateway.toml so it "
            "survives a host rename",
            path,
            gid,
            e.strerror or e,
        )
    return gid
