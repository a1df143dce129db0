"""``csi-edge provision``: write the node's NVS configuration without erasing anything by accident.

Order of work (nothing is written until every check passed):
1. parse and validate the values given (firmware limits, ``nodecfg``);
2. connect, read the board's partition table (NVS offset; 0x9000 with a warning if unreadable);
3. read the NVS partition and decode it; unreadable -> stop, board unchanged (``--force-defaults``
   replaces it);
4. merge: compiled defaults <- what the board has <- what was given; validate again;
5. build the complete image (esp-idf-nvs-partition-gen), write it at the NVS offset, read it back
   and compare byte for byte;
6. optionally reset and watch the node come up (``bootwatch``).

Secrets (Wi-Fi password, tokens, OTA PSK) are never logged or written to results files.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from csi_edge.errors import ConfigError, DeviceError
from csi_edge.firmware import bootwatch, espimage, nodecfg, nvs
from csi_edge.firmware.esp import EspError, Session

log = logging.getLogger("csi_edge.provision")
DEFAULT_NVS = (0x9000, 0x6000)


class ProvisionError(DeviceError):
    """Provisioning stopped; the board was left unchanged unless the message says otherwise."""


def lan_address() -> str | None:
    """This gateway's LAN address: the source address of the default route (a UDP connect only
    looks the route up, it sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1; never contacted
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


@dataclass
class BoardState:
    mac: str
    nvs_offset: int
    nvs_size: int
    nvs_raw: bytes
    namespaces: dict[str, dict[str, nvs.NvsValue]]
    config: dict[str, object]
    version: str | None
    notes: list[str] = field(default_factory=list)
    nvs_error: str | None = None


@dataclass
class ProvisionResult:
    port: str
    mac: str
    node_id: int | None
    firmware_version: str | None
    nvs_offset: str
    changed: list[str]
    written: bool
    verified: bool
    config: dict[str, object]
    notes: list[str]
    seconds: float
    watch: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def read_board(s: Session) -> BoardState:
    """Partition table -> NVS location; NVS -> typed config; otadata + app header -> version."""
    notes: list[str] = []
    table = None
    try:
        table = espimage.parse_partition_table(
            s.read(espimage.PARTITION_TABLE_OFFSET, espimage.PARTITION_TABLE_MAX, "partition table")
        )
    except espimage.ImageError as e:
        notes.append(f"partition table unreadable ({e}): assuming NVS at 0x9000, 0x6000 bytes")
    part = table.nvs if table else None
    if table is not None and part is None:
        notes.append("partition table has no nvs partition: assuming 0x9000, 0x6000 bytes")
    offset, size = (part.offset, part.size) if part else DEFAULT_NVS
    raw = s.read(offset, size, "read NVS")
    state = BoardState(s.mac(), offset, size, raw, {}, {}, _app_version(s, table), notes)
    try:
        result = nvs.read_image(raw)
    except nvs.NvsError as e:
        state.nvs_error = str(e)
        return state
    state.namespaces = result.namespaces
    state.config, type_notes = nodecfg.from_nvs(result.namespaces)
    state.notes += type_notes + [f"NVS: {p}" for p in result.problems[:5]]
    return state


def _app_version(s: Session, table: espimage.PartitionTable | None) -> str | None:
    if table is None:
        return None
    otas = sorted(
        (p for p in table.apps if p.subtype_name.startswith("ota_")), key=lambda p: p.subtype
    )
    slot = otas[0] if otas else table.app_slot("factory")
    if otas and table.otadata is not None:
        od = s.read(table.otadata.offset, espimage.OTADATA_SIZE, "read otadata")
        slot = otas[espimage.ota_boot_slot(od, len(otas))]
    if slot is None:
        return None
    head = s.read(slot.offset, 0x200, "read app header")
    desc = espimage.app_description_from_head(head)
    return desc.version if desc else None


def provision(
    port: str,
    changes: dict[str, object],
    *,
    baud: int = 460800,
    before: str = "default-reset",
    after: str = "hard-reset",
    no_stub: bool = False,
    connect_attempts: int = 7,
    force_defaults: bool = False,
    wait: bool = False,
    wait_timeout: float = 60.0,
    frame_timeout: float = 10.0,
    expected_mac: str | None = None,
    progress: bool = True,
    on_line=None,
    default_target_ip: str | None = None,
) -> ProvisionResult:
    """Provision one board. ``default_target_ip`` (this gateway's LAN address) is used when
    neither ``changes`` nor the board's NVS has a target_ip: a provisioned target is kept."""
    nodecfg.validate(changes)
    t0 = time.monotonic()
    with Session(
        port,
        baud=baud,
        before=before,
        no_stub=no_stub,
        connect_attempts=connect_attempts,
        progress=progress,
    ) as s:
        board = read_board(s)
        if expected_mac and board.mac != expected_mac.lower():
            raise ProvisionError(
                f"{port} is board {board.mac}, the inventory expects {expected_mac}: "
                "board left unchanged"
            )
        notes = list(board.notes)
        if board.nvs_error is not None:
            if not force_defaults:
                raise ProvisionError(
                    f"the NVS partition at 0x{board.nvs_offset:x} on {port} is unreadable "
                    f"({board.nvs_error}); board left unchanged. Re-run with --force-defaults to "
                    "replace it with the defaults plus the values you gave"
                )
            notes.append("unreadable NVS replaced (--force-defaults): earlier settings are lost")
        have = {} if board.nvs_error is not None else dict(board.config)
        changes = nodecfg.reconcile_radio({k: v for k, v in changes.items() if v is not None}, have)
        # Only what the board had plus what was given: defaults are never pinned into NVS.
        merged = {**have, **changes}
        if "target_ip" not in changes and default_target_ip:
            if "target_ip" in have:
                notes.append(
                    f"target_ip {have['target_ip']} kept from the board (--target-ip to change it)"
                )
            else:
                merged["target_ip"] = default_target_ip
                notes.append(
                    f"target_ip {default_target_ip}: this gateway's LAN address "
                    "(--target-ip to choose)"
                )
        effective = {**nodecfg.defaults(), **merged}
        nodecfg.validate(effective)
        old = board.nvs_raw if board.nvs_error is None else b"\xff" * board.nvs_size
        rewrite = nvs.rewrite_image(old, nodecfg.owned_namespaces(merged))
        image = rewrite.data
        if rewrite.dropped:
            notes.append(
                f"NVS: {len(rewrite.dropped)} stale duplicate entr"
                f"{'y' if len(rewrite.dropped) == 1 else 'ies'} removed "
                f"({', '.join(sorted(set(rewrite.dropped))[:6])}); the newest copy was kept"
            )
        before_cfg = {**nodecfg.defaults(), **have}
        changed = sorted(k for k in effective if before_cfg.get(k) != effective[k])
        written = verified = False
        if image != board.nvs_raw:
            s.write([(board.nvs_offset, image)], desc="write NVS")
            written = True
            back = s.read(board.nvs_offset, board.nvs_size, "verify NVS")
            if back != image:
                raise ProvisionError(
                    f"verification failed: the NVS read back from {port} differs "
                    "from what was written"
                )
            got, _ = nodecfg.from_nvs(nvs.read_image(back).namespaces)
            if any(got.get(k) != v for k, v in merged.items()):
                raise ProvisionError(
                    "verification failed: the NVS read back decodes to other values"
                )
        verified = True
        watch_result = None
        if wait:
            watch_result = _reset_and_watch(s, effective, wait_timeout, frame_timeout, on_line)
        else:
            s.reset(after)
        return ProvisionResult(
            port,
            board.mac,
            int(effective["node_id"]),  # type: ignore[arg-type]
            board.version,
            f"0x{board.nvs_offset:x}",  # type: ignore[arg-type]
            changed,
            written,
            verified,
            nodecfg.display(merged),
            notes,
            round(time.monotonic() - t0, 3),
            watch_result,
        )


def show(
    port: str,
    *,
    baud: int = 460800,
    before: str = "default-reset",
    after: str = "hard-reset",
    no_stub: bool = False,
    connect_attempts: int = 7,
    reveal: bool = False,
    progress: bool = True,
) -> dict[str, object]:
    """Read the board's configuration back (secrets masked unless ``reveal``)."""
    with Session(
        port,
        baud=baud,
        before=before,
        no_stub=no_stub,
        connect_attempts=connect_attempts,
        progress=progress,
    ) as s:
        board = read_board(s)
        s.reset(after)
    if board.nvs_error is not None:
        raise ProvisionError(
            f"the NVS partition at 0x{board.nvs_offset:x} on {port} is unreadable "
            f"({board.nvs_error})"
        )
    extra = {
        ns: sorted(keys)
        for ns, keys in board.namespaces.items()
        if ns not in (nodecfg.CFG_NS, nodecfg.SEC_NS)
    }
    return {
        "port": port,
        "mac": board.mac,
        "firmware_version": board.version,
        "nvs_offset": f"0x{board.nvs_offset:x}",
        "provisioned": nodecfg.CFG_NS in board.namespaces,
        "config": nodecfg.display(board.config, reveal=reveal),
        "effective": nodecfg.display({**nodecfg.defaults(), **board.config}, reveal=reveal),
        "other_namespaces": extra,
        "notes": board.notes,
    }


class _LineReader:
    """Lines from a pyserial port with a per-call timeout, keeping partial lines."""

    def __init__(self, ser) -> None:  # noqa: ANN001 - pyserial object
        self.ser, self.buf = ser, b""

    def __call__(self, timeout: float) -> str | None:
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.ser.timeout = min(left, 0.1)
            chunk = self.ser.read(max(1, self.ser.in_waiting or 1))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")


def _reset_and_watch(
    s: Session, cfg: dict[str, object], timeout: float, frame_timeout: float, on_line
) -> dict[str, object]:
    target = (str(cfg["target_ip"]), int(cfg["target_port"]))  # type: ignore[arg-type]
    host = "127.0.0.1" if target[0].startswith("127.") else "0.0.0.0"
    sock = bootwatch.bind_udp(host, target[1])
    try:
        ser = s.serial
        ser.reset_input_buffer()
        s.reset("hard-reset")
        ser.baudrate = 115200  # the node's console speed
        res = bootwatch.watch(
            _LineReader(ser),
            sock,
            node_id=int(cfg["node_id"]),
            target=target,  # type: ignore[arg-type]
            timeout=timeout,
            frame_timeout=frame_timeout,
            on_line=on_line,
        )
    finally:
        if sock is not None:
            sock.close()
    return res.as_dict()


# ---------------------------------------------------------------- fleet
def load_inventory(path: str | os.PathLike) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Read fleet.toml: optional ``[defaults]`` and ``[[boards]]`` with port or mac, node_id, zone.
    Refuses duplicate node ids (before any board is touched)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: inventory file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
    boards = doc.get("boards", doc.get("board", []))
    if not isinstance(boards, list) or not boards:
        raise ConfigError(f"{p}: no [[boards]] entries (each needs port or mac, and node_id)")
    problems = []
    unknown = sorted(set(doc) - {"defaults", "boards", "board"})
    if unknown:
        problems.append(
            f"{p}: unknown table(s) {', '.join(map(repr, unknown))} (expected [defaults] and "
            "[[boards]])"
        )
    defaults = dict(doc.get("defaults", {}))
    seen: dict[int, int] = {}
    seen_port: dict[str, int] = {}
    seen_mac: dict[str, int] = {}
    seen_slot: dict[int, int] = {}
    for i, b in enumerate(boards):
        where = f"{p}: boards[{i}]"
        if not isinstance(b, dict):
            problems.append(f"{where}: expected a table")
            continue
        if not b.get("port") and not b.get("mac"):
            problems.append(f"{where}: needs 'port' or 'mac'")
        nid = b.get("node_id")
        if not isinstance(nid, int) or not 0 <= nid <= 255:
            problems.append(f"{where}: node_id must be an integer 0–255, got {nid!r}")
            continue
        if nid in seen:
            problems.append(f"{where}: duplicate node_id {nid} (also boards[{seen[nid]}])")
        seen[nid] = i
        for field_name, value, table in (
            ("port", b.get("port"), seen_port),
            ("mac", str(b.get("mac") or "").lower() or None, seen_mac),
            (
                "tdm_slot",
                b.get("tdm_slot", defaults.get("tdm_slot")) if "tdm_slot" in b else None,
                seen_slot,
            ),
        ):
            if value is None:
                continue
            if value in table:
                problems.append(
                    f"{where}: duplicate {field_name} {value!r} (also boards[{table[value]}])"
                )
            table[value] = i
    if problems:
        raise ConfigError("; ".join(problems) + "; no board was touched")
    return defaults, boards


def board_changes(defaults: dict[str, object], board: dict[str, object]) -> dict[str, object]:
    """Typed config changes for one inventory board (``zone`` is the node's zone_name)."""
    skip = ("port", "mac", "host", "ota_port")  # host/ota_port: for csi-edge ota
    merged = {**defaults, **{k: v for k, v in board.items() if k not in skip}}
    if "zone" in merged:
        merged["zone_name"] = merged.pop("zone")
    out: dict[str, object] = {}
    for key, value in merged.items():
        if key not in nodecfg.BY_NAME:
            raise ConfigError(
                f"inventory key {key!r} is not a node setting "
                f"(known: {', '.join(sorted(nodecfg.BY_NAME))}, zone, port, mac, host, ota_port)"
            )
        k = nodecfg.BY_NAME[key]
        if (
            k.type == "blob"
            or not isinstance(value, (int, str))
            or (k.type != "string" and isinstance(value, str))
        ):
            value = nodecfg.parse_option(
                key, value if isinstance(value, str) else ",".join(map(str, value))
            )  # type: ignore[arg-type]
        out[key] = value
    return out


def find_port_by_mac(
    mac: str, ports: list[str] | None = None, after: str = "hard-reset", **session_kw
) -> str:
    """The serial port whose board has ``mac``; every board probed on the way is reset back
    into its firmware (``after``), so a search leaves no board sitting in the flasher stub.
    ``ports``: the candidates (default: every serial port of this machine)."""
    if ports is None:
        from serial.tools import list_ports

        ports = [info.device for info in list_ports.comports()]
    found = None
    for port in ports:
        try:
            with Session(port, progress=False, connect_attempts=1, **session_kw) as s:
                if s.mac() == mac.lower():
                    found = port
                s.reset(after)
        except EspError:
            continue
        if found:
            return found
    raise ProvisionError(f"no connected board has MAC {mac} (probed {len(ports)} port(s))")


def write_results(path: str | os.PathLike, rows: list[dict[str, object]]) -> None:
    """Results without secrets: port, MAC, node id, zone, firmware version, outcome."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps({"boards": rows}, indent=2) + "\n")
    tmp.replace(path)
