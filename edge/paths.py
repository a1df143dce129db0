"""Where csi-edge keeps state that must outlive a run: room baselines, gateway id, tokens, PSKs.

One directory that ``baseline``, ``run`` and the systemd service all find, whatever the current
folder: ``$CSI_EDGE_STATE_DIR`` if set, else ``$XDG_STATE_HOME/csi-edge``, else
``~/.local/state/csi-edge``. The systemd unit sets ``StateDirectory=csi-edge``, which systemd
exports as ``$STATE_DIRECTORY`` (``/var/lib/csi-edge``); that is honoured too.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_STATE_DIR = "CSI_EDGE_STATE_DIR"


def state_dir() -> Path:
    """The state directory (not created here: writers create what they write)."""
    explicit = os.environ.get(ENV_STATE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    systemd = os.environ.get("STATE_DIRECTORY")  # systemd StateDirectory=; first entry is ours
    if systemd:
        return Path(systemd.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "csi-edge"


def baselines_dir() -> Path:
    """Per-node empty-room baselines, one JSON file per node."""
    return state_dir() / "baselines"
