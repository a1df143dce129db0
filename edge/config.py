"""The gateway's configuration file (TOML) with clear errors for every mistake.

A config file beats a long flag list for a daemon that runs every day; every key has a default,
so an empty file (or none) is a working gateway on UDP port 5005. ``csi-edge run --print-config``
prints the effective configuration in this format.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib




@dataclass
class SerialSource:
    port: str
    baud: int = 921600


@dataclass
class IngestConfig:
    udp: list[str] = field(default_factory=lambda: ["0.0.0.0:5005"])
    serial: list[SerialSource] = field(default_factory=list)
    iq_order: str = "imag-first"
    offline_after_s: float = 10.0
    #: who may send UDP: addresses/networks (["192.168.10.0/24"]); [] = anyone (docs/security.md)
    allow: list[str] = field(default_factory=list)
    #: most nodes at once, and most new nodes per minute (a flood of forged node ids is capped)
    max_nodes: int = 256
    max_new_nodes_per_min: int = 64
    #: a node silent this long is forgotten (removed from reports and Home Assistant)
    forget_after_s: float = 3600.0
    #: UDP socket receive buffer asked for, bytes (Linux grants at most 2 x net.core.rmem_max)
    rcvbuf: int = 8 << 20


@dataclass
class ModelsConfig:
    #: a bundled model name (``csi-edge-pose``), a bundle folder, or "" for no pose model
    pose: str = "csi-edge-pose"
    #: the vital-sign model reported beside the DSP estimate: bundled name, folder, or ""
    vitals: str = "csi-edge-vitals"
    #: fp32 | int8 | int8-tflite (for both models)
    precision: str = "int8"
    threads: int = 1


@dataclass
class MqttSection:
    host: str = ""
    #: 0 = 1883, or 8883 with tls (a port in host wins)
    port: int = 0
    #: "" = $CSI_EDGE_MQTT_USERNAME
    username: str = ""
    #: the password is read from this environment variable, never from the file
    password_env: str = "CSI_EDGE_MQTT_PASSWORD"
    #: or from this file (wins over the environment); a bare name is looked up in systemd's
    #: $CREDENTIALS_DIRECTORY (LoadCredential=)
    password_file: str = ""
    #: TLS to the broker: ca_file "" = the system's CAs; cert_file/key_file: a client certificate
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    #: skip verifying the broker's certificate and host name (self-signed); logs a warning
    insecure: bool = False
    #: most messages held while the broker is away (latest state per node); oldest dropped first
    queue_max: int = 1000
    prefix: str = "csi-edge"
    discovery_prefix: str = "homeassistant"
    #: Home Assistant marks a node's entities unavailable when no state came for this long
    #: (a gateway that hangs without dying); 0 = off
    expire_after_s: int = 30
    #: pose keypoints on <prefix>/<gateway_id>/nodes/<node>/pose (not retained); off: not sent
    pose: bool = False


@dataclass
class RotateSection:
    """When an output file is rotated: past ``max_mb`` or ``max_age_h``; ``keep`` old files."""

    max_mb: float = 50.0
    max_age_h: float = 24.0
    keep: int = 7
    compress: bool = True


@dataclass
class SinksConfig:
    console: bool = True
    jsonl: str = ""
    jsonl_rotate: RotateSection = field(default_factory=RotateSection)
    #: the live view, /health and /metrics: "127.0.0.1:8080"; any other address needs the token
    http: str = ""
    #: a folder for the raw capture ring (rotating pcap of every datagram received), "" = off
    capture: str = ""
    capture_rotate: RotateSection = field(
        default_factory=lambda: RotateSection(max_mb=20.0, max_age_h=1.0, keep=24)
    )
    mqtt: MqttSection = field(default_factory=MqttSection)


@dataclass
class VitalsSection:
    """The [vitals] knobs a user may turn; everything else keeps the tested defaults of
    csi_edge.vitals.config.VitalsConfig (see docs/vitals.md for what each figure rests on)."""

    #: heart rate: off by default (its median error stays <= 3 BPM only from >= 40 Hz nodes at
    #: high SNR in simulation); off, no heart-rate entity is published at all
    heart_enabled: bool = False
    #: an occupied room stays occupied this long after the last evidence of someone
    presence_hold_s: float = 30.0
    #: "nobody" needs a still window this long without breathing evidence
    presence_decide_s: float = 20.0
    #: motion threshold of the change ratio (noise gives ~1; lower = more sensitive)
    motion_ratio: float = 2.0

    def to_vitals_config(self):
        from csi_edge.vitals.config import VitalsConfig

        return VitalsConfig(**dataclasses.asdict(self))


@dataclass
class NodeEntry:
    """One ``[nodes.<id>]`` table: a board's name and area, matched by ``mac`` (through a
    provision results file, which gives its node id), ``node_id`` and/or ``address``
    (csi_edge.inventory has the matching rules)."""

    name: str = ""
    area: str = ""
    mac: str = ""
    #: -1 = not set (the node id comes from the results file by MAC, or the address decides)
    node_id: int = -1
    address: str = ""

    def table(self) -> dict:
        """The keys that are set, as the inventory takes them."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in ("", -1)}


@dataclass
class InventorySection:
    """Where boards are named besides ``[nodes.<id>]``."""

    #: ``csi-edge provision --inventory`` results files (MAC, node id, zone); a relative path is
    #: relative to the config file
    results: list[str] = field(default_factory=list)
    #: true: frames of a node the inventory does not know are refused (``unknown-node``);
    #: false: it still works, with an automatic name
    known_only: bool = False


@dataclass
class GatewayConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    vitals: VitalsSection = field(default_factory=VitalsSection)
    # room baselines; "" = <state dir>/baselines (csi_edge.paths), which `csi-edge baseline`,
    # `run` and the service all find whatever the current folder
    baselines_dir: str = ""
    report_interval_s: float = 1.0
    #: this gateway on a shared MQTT broker (client id, topic tree, device ids); "" = derived
    #: from the host name once and kept in <state dir>/gateway_id (csi_edge.gatewayid)
    gateway_id: str = ""
    inventory: InventorySection = field(default_factory=InventorySection)
    #: ``[nodes.<id>]`` tables: names and areas of boards (csi_edge.inventory)
    nodes: dict[str, NodeEntry] = field(default_factory=dict)


_CHOICES = {
    ("ingest", "iq_order"): ("imag-first", "real-first"),
    ("models", "precision"): ("fp32", "int8", "int8-tflite"),
}
#: numbers that must be > 0 (a report interval of 0 would spin the gateway loop)
_POSITIVE = {
    ("report_interval_s",),
    ("ingest", "offline_after_s"),
    ("models", "threads"),
    ("ingest", "max_nodes"),
    ("ingest", "forget_after_s"),
    ("ingest", "rcvbuf"),
    ("vitals", "presence_hold_s"),
    ("vitals", "presence_decide_s"),
    ("vitals", "motion_ratio"),
    ("sinks", "mqtt", "queue_max"),
} | {
    ("sinks", f, k) for f in ("jsonl_rotate", "capture_rotate") for k in ("max_mb", "max_age_h", "keep")
}


def _build(cls: type, data: dict[str, Any], where: str, path: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, naming the file and key on every mistake."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{where}] must be a table, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"{path}: unknown key '{prefix}{unknown[0]}'; expected one of {', '.join(sorted(fields))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        key = f"{where}.{name}" if where else name
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, key, path)
        elif cls is GatewayConfig and name == "nodes":
            kwargs[name] = _nodes(value, path)
        elif name == "serial":
            if not isinstance(value, list):
                raise ConfigError(
                    f'{path}: {key} must be a list of tables like [[ingest.serial]] port = "/dev/ttyUSB0"'
                )
            kwargs[name] = [
                _build(SerialSource, v, f"{key}[{i}]", path) for i, v in enumerate(value)
            ]
        else:
            expected = type(default) if default is not dataclasses.MISSING else str
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(default, list):
                if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise ConfigError(f"{path}: {key} must be a list of strings, got {value!r}")
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
            if tuple(key.split(".")) in _POSITIVE and not value > 0:
                raise ConfigError(f"{path}: {key} must be > 0, got {value!r}")
            choices = _CHOICES.get(tuple(key.split(".")))
            if choices and value not in choices:
                raise ConfigError(
                    f"{path}: {key} must be one of {', '.join(choices)}, got {value!r}"
                )
            kwargs[name] = value
    return cls(**kwargs)


def _nodes(data: Any, path: str) -> dict[str, NodeEntry]:
    """``[nodes.<id>]`` tables -> NodeEntry per id (types here; matching rules in the
    inventory, checked by :func:`load_config`)."""
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: nodes must be tables like [nodes.bedroom] name = "Bedroom"')
    out = {}
    for eid, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f'{path}: nodes.{eid} must be a table like [nodes.{eid}] name = "...", '
                f"got {table!r}"
            )
        entry = _build(NodeEntry, table, f"nodes.{eid}", path)
        if "node_id" in table and not 0 <= entry.node_id <= 255:
            raise ConfigError(
                f"{path}: nodes.{eid}.node_id must be an integer 0-255, got {entry.node_id!r}"
            )
        out[str(eid)] = entry
    return out


def load_config(path: str | Path | None) -> GatewayConfig:
    """Read a gateway config file; ``None`` gives the defaults."""
    if path is None:
        return GatewayConfig()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: no such config file (csi-edge run --print-config > {p} writes one)"
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a text file ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    cfg = _build(GatewayConfig, data, "", str(p))
    check_ingest(cfg.ingest, str(p))
    if cfg.gateway_id:
        from csi_edge.gatewayid import check_gateway_id

        check_gateway_id(cfg.gateway_id, f"{p}: gateway_id")
    if cfg.sinks.mqtt.expire_after_s < 0:
        raise ConfigError(
            f"{p}: sinks.mqtt.expire_after_s must be >= 0 (0 = off), got {cfg.sinks.mqtt.expire_after_s}"
        )
    # results files are relative to the config file, wherever the gateway runs from
    cfg.inventory.results = [
        str(r if r.is_absolute() else p.parent / r)
        for r in (Path(x).expanduser() for x in cfg.inventory.results)
    ]
    if cfg.nodes or cfg.inventory.results:
        from csi_edge.inventory import inventory_from_config

        inventory_from_config(cfg, "gateway", str(p))  # every matching mistake, at load time
    return cfg


def check_ingest(ing: IngestConfig, where: str = "config") -> None:
    """Checks across [ingest] keys (also for values from the command line)."""
    from csi_edge.admission import parse_allow

    parse_allow(ing.allow, f"{where}: ingest.allow")
    if ing.max_new_nodes_per_min < 0:
        raise ConfigError(
            f"{where}: ingest.max_new_nodes_per_min must be >= 0, got {ing.max_new_nodes_per_min}"
        )
    if ing.forget_after_s <= ing.offline_after_s:
        raise ConfigError(
            f"{where}: ingest.forget_after_s ({ing.forget_after_s}) must be longer than "
            f"ingest.offline_after_s ({ing.offline_after_s}): a node is offline before it is "
            "forgotten"
        )


def parse_hostport(
    text: str, default_host: str = "0.0.0.0", what: str = "address"
) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"``, ``"PORT"`` or ``"[v6]:PORT"`` -> (host, port), with a clear
    error (a :class:`ConfigError`, which is a ValueError) naming ``what`` was being parsed."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{what} {text!r}: expected HOST:PORT with a numeric port") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{what} {text!r}: port must be 0..65535, got {number}")
    return host, number


def dump_config(cfg: GatewayConfig) -> str:
    """The effective configuration as TOML (hand-written: tomllib reads but does not write)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["# csi-edge gateway configuration (csi-edge run --config FILE)"]
    top = {k: v for k, v in dataclasses.asdict(cfg).items() if not isinstance(v, dict)}
    lines += [f"{k} = {value(v)}" for k, v in top.items()]

    def table(name: str, obj: Any) -> None:
        d = dataclasses.asdict(obj)
        lines.append(f"\n[{name}]")
        nested = []
        for k, v in d.items():
            if isinstance(v, dict):
                nested.append(k)
            elif k == "serial":
                continue
            else:
                lines.append(f"{k} = {value(v)}")
        for s in getattr(obj, "serial", []) or []:
            lines.append(f"\n[[{name}.serial]]\nport = {value(s.port)}\nbaud = {s.baud}")
        for k in nested:
            table(f"{name}.{k}", getattr(obj, k))

    for name in ("ingest", "models", "sinks", "vitals", "inventory"):
        table(name, getattr(cfg, name))
    for eid, entry in cfg.nodes.items():
        bare = eid.replace("_", "").replace("-", "").isalnum() and eid.isascii()
        lines.append(f"\n[nodes.{eid if bare else value(eid)}]")
        lines += [f"{k} = {value(v)}" for k, v in entry.table().items()]
    return "\n".join(lines) + "\n"
