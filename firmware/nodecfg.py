"""The RuView CSI node's NVS configuration: keys, exact types, defaults and the firmware's limits.

Source: ``docs/provisioning.md`` §3 (from nvs_config.c of ruvnet/RuView). The firmware reads keys
type-strictly (a key stored with another type is ignored), so every value is written with the type
listed here, and every value is checked against the limits the firmware applies *before* anything
is written to a board.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from csi_edge.errors import ConfigError
from csi_edge.firmware.nvs import NvsValue

CFG_NS = "csi_cfg"
SEC_NS = "security"
MASK = "********"


@dataclass(frozen=True)
class Key:
    """One NVS key: namespace, name, NVS type, default and a validator returning an error or None."""

    ns: str
    name: str
    type: str  # u8/u16/u32/string/blob
    default: object
    check: Callable[[object], str | None]
    secret: bool = False
    help: str = ""

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def _rng(lo: int, hi: int) -> Callable[[object], str | None]:
    return lambda v: None if lo <= int(v) <= hi else f"must be {lo}–{hi}, got {v}"


def _strlen(maxlen: int, *, nonempty: bool = False) -> Callable[[object], str | None]:
    def check(v: object) -> str | None:
        n = len(str(v).encode("utf-8"))
        if nonempty and n == 0:
            return "must not be empty"
        return None if n <= maxlen else f"must be at most {maxlen} bytes, got {n}"

    return check


def _password(v: object) -> str | None:
    s = str(v)
    n = len(s.encode("utf-8"))
    if n == 0 or 8 <= n <= 63:
        return None
    if n == 64 and re.fullmatch(r"[0-9a-fA-F]{64}", s):
        return None  # a raw 256-bit PSK in hex
    return f"WPA2 needs 8–63 characters (or empty for an open network), got {n}"


def _ipv4(v: object) -> str | None:
    s = str(v)
    try:
        ipaddress.IPv4Address(s)
    except ValueError:
        return f"must be a dotted IPv4 address like 192.168.1.20 (no DNS names, no IPv6), got {s!r}"
    return None if len(s) <= 15 else "must be at most 15 characters"


def _channel_ok(c: int) -> bool:
    return 1 <= c <= 14 or 36 <= c <= 177


def _csi_channel(v: object) -> str | None:
    c = int(v)
    return None if c == 0 or _channel_ok(c) else f"must be 0 (auto), 1–14 or 36–177, got {c}"


def _chan_list(v: object) -> str | None:
    b = bytes(v)  # type: ignore[arg-type]
    if not 1 <= len(b) <= 6:
        return f"must list 1–6 channels, got {len(b)}"
    bad = [c for c in b if not _channel_ok(c)]
    return f"channels must be 1–14 or 36–177, got {bad}" if bad else None


def _blob_len(n: int, what: str) -> Callable[[object], str | None]:
    return lambda v: (
        None if len(bytes(v)) == n else f"must be exactly {n} bytes ({what}), got {len(bytes(v))}"
    )  # type: ignore[arg-type]


def _at_least(lo: int, hi: int) -> Callable[[object], str | None]:
    return lambda v: None if lo <= int(v) <= hi else f"must be >= {lo}, got {v}"


KEYS: list[Key] = [
    Key(
        CFG_NS,
        "ssid",
        "string",
        "wifi-densepose",
        _strlen(32, nonempty=True),
        help="Wi-Fi network name (≤ 32 bytes)",
    ),
    Key(
        CFG_NS,
        "password",
        "string",
        "",
        _password,
        secret=True,
        help="Wi-Fi password (WPA2: 8–63 chars; empty = open)",
    ),
    Key(
        CFG_NS,
        "target_ip",
        "string",
        "192.168.1.100",
        _ipv4,
        help="gateway IPv4 the node streams to",
    ),
    Key(CFG_NS, "target_port", "u16", 5005, _rng(0, 65535), help="gateway UDP port"),
    Key(CFG_NS, "node_id", "u8", 1, _rng(0, 255), help="node id 0–255 carried in every frame"),
    Key(CFG_NS, "hop_count", "u8", 1, _rng(1, 6), help="channel-hop count 1–6"),
    Key(
        CFG_NS, "chan_list", "blob", bytes([6]), _chan_list, help="hop channels, e.g. 1,6,11 (≤ 6)"
    ),
    Key(
        CFG_NS,
        "dwell_ms",
        "u32",
        50,
        _at_least(10, 0xFFFFFFFF),
        help="dwell per channel, ms (≥ 10)",
    ),
    Key(CFG_NS, "tdm_slot", "u8", 0, _rng(0, 255), help="TDM slot (< tdm-nodes)"),
    Key(CFG_NS, "tdm_nodes", "u8", 1, _rng(1, 255), help="TDM node count"),
    Key(CFG_NS, "edge_tier", "u8", 2, _rng(0, 2), help="0 raw, 1 +DSP, 2 +compressed"),
    Key(
        CFG_NS, "pres_thresh", "u16", 0, _rng(0, 65535), help="presence threshold ×1000 (0 = auto)"
    ),
    Key(CFG_NS, "fall_thresh", "u16", 15000, _rng(0, 65535), help="fall threshold ×1000"),
    Key(CFG_NS, "vital_win", "u16", 256, _rng(32, 256), help="vitals window 32–256"),
    Key(
        CFG_NS,
        "vital_int",
        "u16",
        1000,
        _at_least(100, 65535),
        help="ms between vitals packets (≥ 100)",
    ),
    Key(CFG_NS, "subk_count", "u8", 8, _rng(1, 32), help="subcarrier count 1–32"),
    Key(CFG_NS, "power_duty", "u8", 100, _rng(10, 100), help="power duty % 10–100"),
    Key(CFG_NS, "wasm_max", "u8", 4, _rng(1, 8), help="max WASM modules 1–8"),
    Key(CFG_NS, "wasm_verify", "u8", 1, _rng(0, 1), help="verify WASM signatures 0/1"),
    Key(
        CFG_NS,
        "wasm_pubkey",
        "blob",
        None,
        _blob_len(32, "an Ed25519 public key, 64 hex digits"),
        help="WASM signing key (64 hex digits)",
    ),
    Key(CFG_NS, "csi_channel", "u8", 0, _csi_channel, help="CSI channel 1–14/36–177 (0 auto)"),
    Key(
        CFG_NS,
        "filter_mac",
        "blob",
        None,
        _blob_len(6, "a MAC like aa:bb:cc:dd:ee:ff"),
        help="only CSI from this transmitter MAC",
    ),
    Key(CFG_NS, "seed_url", "string", "", _strlen(63), help="seed URL (≤ 63 chars)"),
    Key(
        CFG_NS,
        "seed_token",
        "string",
        "",
        _strlen(63),
        secret=True,
        help="seed bearer token (≤ 63 chars)",
    ),
    Key(CFG_NS, "zone_name", "string", "default", _strlen(15), help="zone name (≤ 15 chars)"),
    Key(CFG_NS, "swarm_hb", "u16", 30, _rng(0, 65535), help="swarm heartbeat s (0 = default)"),
    Key(CFG_NS, "swarm_ingest", "u16", 5, _rng(0, 65535), help="swarm ingest s (0 = default)"),
    Key(
        SEC_NS,
        "ota_psk",
        "string",
        None,
        _strlen(64),
        secret=True,
        help="OTA bearer token (≤ 64 chars)",
    ),
]
BY_NAME = {k.name: k for k in KEYS}
SECRET_KEYS = {k.name for k in KEYS if k.secret}


def parse_option(name: str, text: str) -> object:
    """Turn a command-line string into the typed value for key ``name`` (ConfigError if malformed)."""
    key = BY_NAME[name]
    text = text.strip() if key.type != "string" else text
    try:
        if key.type == "string":
            return text
        if key.name == "filter_mac":
            parts = re.fullmatch(
                r"([0-9a-fA-F]{2})([:-]?)" + r"([0-9a-fA-F]{2})\2" * 4 + r"([0-9a-fA-F]{2})", text
            )
            if not parts:
                raise ValueError("expected a MAC like aa:bb:cc:dd:ee:ff")
            return bytes.fromhex(re.sub(r"[:-]", "", text))
        if key.name == "chan_list":
            return bytes(int(c) for c in re.split(r"[,\s]+", text) if c)
        if key.type == "blob":
            return bytes.fromhex(text)
        return int(text, 0)
    except ValueError as e:
        raise ConfigError(f"{key.option}: cannot parse {text!r} as {key.type} ({e})") from None


def validate(cfg: dict[str, object]) -> None:
    """Check every value against the firmware's limits; raise ConfigError listing all problems."""
    errors = []
    for name, value in cfg.items():
        key = BY_NAME.get(name)
        if key is None or value is None:
            continue
        try:
            problem = key.check(value)
        except (TypeError, ValueError) as e:
            problem = f"has the wrong type ({e})"
        if problem:
            errors.append(f"{key.option} ({key.ns}/{name}): {problem}")
    slot, nodes = cfg.get("tdm_slot"), cfg.get("tdm_nodes")
    if slot is not None and nodes is not None and int(slot) >= int(nodes):  # type: ignore[arg-type]
        errors.append(f"--tdm-slot ({slot}) must be less than --tdm-nodes ({nodes})")
    if errors:
        raise ConfigError("; ".join(errors))


def from_nvs(namespaces: dict[str, dict[str, NvsValue]]) -> tuple[dict[str, object], list[str]]:
    """Known keys as the firmware would read them (type-strict), plus notes on ignored entries."""
    cfg: dict[str, object] = {}
    notes = []
    for key in KEYS:
        val = namespaces.get(key.ns, {}).get(key.name)
        if val is None:
            continue
        if val.type != key.type:
            notes.append(
                f"{key.ns}/{key.name} is stored as {val.type}, the firmware reads {key.type}: ignored"
            )
            continue
        cfg[key.name] = val.value
    return cfg, notes


def owned_namespaces(cfg: dict[str, object]) -> dict[str, dict[str, NvsValue]]:
    """The entries csi-edge owns, typed exactly: only the keys present in ``cfg`` (what the user
    set plus what the board already had). Everything else on the board is copied as it is by
    ``nvs.rewrite_image``; defaults are never written, so the firmware's build settings apply."""
    out: dict[str, dict[str, NvsValue]] = {}
    for key in KEYS:
        value = cfg.get(key.name)
        if value is None:
            continue
        out.setdefault(key.ns, {})[key.name] = NvsValue(key.type, value)  # type: ignore[arg-type]
    return out


def reconcile_radio(changes: dict[str, object], board: dict[str, object]) -> dict[str, object]:
    """Hop count and channel list validated together; returns ``changes`` completed.

    The firmware hops over ``hop_count`` entries of ``chan_list``: a count larger than the list
    hops to channel 0 at every dwell, and a list without a count never hops. So the count follows
    the list (``--chan-list 1,6,11`` also writes hop_count 3) unless both are given and agree;
    anything else is one error naming both options."""
    out = dict(changes)
    hop, chans = changes.get("hop_count"), changes.get("chan_list")
    if chans is not None and hop is None:
        out["hop_count"] = len(bytes(chans))  # type: ignore[arg-type]
        return out
    if hop is None:
        have_hop = board.get("hop_count", BY_NAME["hop_count"].default)
        have_list = bytes(board.get("chan_list") or BY_NAME["chan_list"].default)  # type: ignore[arg-type]
        if int(have_hop) != len(have_list):  # type: ignore[arg-type]
            raise ConfigError(
                f"the board has hop_count {have_hop} but chan_list {list(have_list)} "
                f"({len(have_list)} channels): the firmware would hop to channel 0; fix it with "
                "--chan-list (the count follows) or --hop-count matching the list"
            )
        return out
    if chans is None:
        source = "the board's" if "chan_list" in board else "the default"
        chans = bytes(board.get("chan_list") or BY_NAME["chan_list"].default)  # type: ignore[arg-type]
        given = f"{source} --chan-list {','.join(map(str, chans))}"
    else:
        given = f"--chan-list {','.join(map(str, bytes(chans)))}"  # type: ignore[arg-type]
    n = len(bytes(chans))  # type: ignore[arg-type]
    if int(hop) != n:  # type: ignore[arg-type]
        raise ConfigError(
            f"--hop-count {hop} does not match {given} ({n} channel{'s' if n != 1 else ''}): "
            f"the firmware would hop to channel 0; give --chan-list with {hop} channels "
            "(the hop count follows the list when --hop-count is left out)"
        )
    return out


def defaults() -> dict[str, object]:
    return {k.name: k.default for k in KEYS if k.default is not None}


def display(cfg: dict[str, object], *, reveal: bool = False) -> dict[str, object]:
    """JSON-friendly view with secrets masked unless ``reveal``."""
    out: dict[str, object] = {}
    for name, value in cfg.items():
        if name in SECRET_KEYS and not reveal and value:
            out[name] = MASK
        elif name == "filter_mac" and isinstance(value, bytes | bytearray):
            out[name] = ":".join(f"{b:02x}" for b in value)
        elif name == "chan_list" and isinstance(value, bytes | bytearray):
            out[name] = list(value)
        elif isinstance(value, bytes | bytearray):
            out[name] = value.hex()
        else:
            out[name] = value
    return out
