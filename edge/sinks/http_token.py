"""The live view's access token: generated once, kept in the state directory (mode 0600).

A gateway bound to a non-loopback address answers only requests that carry it
(``Authorization: Bearer <token>``, or ``?token=<token>`` once in a browser, which then keeps it in
a cookie). ``csi-edge status --token`` prints it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from csi_edge.errors import ConfigError
from csi_edge.paths import state_dir

TOKEN_FILE = "http-token"


def token_path() -> Path:
    return state_dir() / TOKEN_FILE


def load_or_create_token() -> str:
    """The token in the state directory, created (random, 0600) on first use."""
    path = token_path()
    try:
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the HTTP token: {e}") from None
    token = secrets.token_urlsafe(24)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the HTTP token: {e.strerror or e}") from None
    return token


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a wildcard (0.0.0.0, ::) is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())
