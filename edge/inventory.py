"""Node identity: which board a wire key (source address + node id) belongs to.

Identity is the board, never its IP: a MAC from the provision results file, or the provisioned
node id on this gateway. ``[nodes.<id>]`` tables (``name``, ``area``, matched by ``mac``,
``node_id`` or ``address``) name and place boards; ``csi-edge provision --inventory`` results
(``{"boards": [{"mac", "node_id", "zone", ...}]}``) are read directly. Unmatched nodes get an
automatic name and an injective slug of their wire key.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi_edge.errors import ConfigError
from csi_edge.report import auto_name

log = logging.getLogger("csi_edge.inventory")

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def address_slug(wire_key: str) -> str:
    """Injective slug of a wire key: ``[a-z0-9]`` kept, any other character as ``_XX`` (or
    ``__XXXX`` above 0xff), so ``::1:1`` and ``1::1`` never share a topic."""
    out = []
    for ch in wire_key:
        if ch.isascii() and (ch.isdigit() or ch.islower()):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"_{ord(ch):02x}")
        else:
            out.append(f"__{ord(ch):04x}")
    return "addr_" + "".join(out)


@dataclass(frozen=True)
class NodeIdentity:
    """A board as the gateway, its baselines and Home Assistant see it."""

    key: str  #: stable key for state, reports and baselines
    slug: str  #: topic / unique-id safe form of ``key`` (distinct keys give distinct slugs)
    name: str
    area: str = ""
    mac: str = ""
    node_id: int | None = None
    configured: bool = False  #: from [nodes] or a results file (False: automatic)


@dataclass
class _Entry:
    id: str
    name: str
    area: str
    mac: str
    node_id: int | None
    address: str


def _norm_mac(mac: Any, where: str) -> str:
    m = str(mac).strip().lower().replace("-", ":")
    if not _MAC.match(m):
        raise ConfigError(f"{where}: mac must look like aa:bb:cc:dd:ee:ff, got {mac!r}")
    return m


class Inventory:
    """Resolves wire keys to :class:`NodeIdentity` (see module docstring)."""

    def __init__(
        self,
        nodes: dict[str, dict] | None = None,
        results_files: list[str | Path] = (),  # type: ignore[assignment]
        gateway_id: str = "gateway",
    ) -> None:
        self.gateway_id = gateway_id
        self.entries: list[_Entry] = []
        mac_to_id: dict[str, tuple[int | None, str]] = {}
        for f in results_files:
            for mac, nid, zone in _read_results(Path(f)):
                mac_to_id[mac] = (nid, zone)
        for eid, t in (nodes or {}).items():
            where = f"nodes.{eid}"
            if not isinstance(t, dict):
                raise ConfigError(f"{where} must be a table")
            unknown = sorted(set(t) - {"name", "area", "mac", "node_id", "address"})
            if unknown:
                raise ConfigError(
                    f"{where}: unknown key {unknown[0]!r}; expected name, area, mac, node_id, address"
                )
            mac = _norm_mac(t["mac"], where) if "mac" in t else ""
            nid = t.get("node_id")
            if nid is None and mac in mac_to_id:
                nid = mac_to_id[mac][0]
            if nid is not None and (not isinstance(nid, int) or not 0 <= nid <= 255):
                raise ConfigError(f"{where}: node_id must be an integer 0-255, got {nid!r}")
            if nid is None and not t.get("address"):
                raise ConfigError(
                    f"{where}: needs node_id, address, or a mac found in a provision results file"
                )
            self.entries.append(
                _Entry(
                    eid,
                    str(t.get("name") or eid),
                    str(t.get("area", "")),
                    mac,
                    nid,
                    str(t.get("address", "")),
                )
            )
        named = {e.mac for e in self.entries if e.mac}
        for mac, (nid, zone) in mac_to_id.items():
            if mac not in named and nid is not None:
                self.entries.append(_Entry(mac, zone or f"Node {nid}", zone, mac, nid, ""))
        _check_unambiguous(self.entries)
        self._told: set[str] = set()

    def keys(self) -> list[str]:
        """The identity keys of every configured board (``mac_...`` / ``id_<gw>_<n>`` / an
        address): the nodes that exist even before they send (MQTT sets them offline)."""
        return sorted({self._identity(e).key for e in self.entries})

    @property
    def configured(self) -> bool:
        """True when any node is named: the gateway may then accept known nodes only."""
        return bool(self.entries)

    def _identity(self, e: _Entry) -> NodeIdentity:
        if e.mac:
            key = slug = "mac_" + e.mac.replace(":", "")
        elif e.node_id is not None:
            key = slug = f"id_{self.gateway_id}_{e.node_id}"
        else:
            key = e.address
            slug = address_slug(e.address)
        return NodeIdentity(key, slug, e.name, e.area, e.mac, e.node_id, True)

    def match(self, address: str, node_id: int) -> NodeIdentity | None:
        """The configured identity for frames from ``address`` with ``node_id``, or None."""
        best = None
        for e in self.entries:
            if e.address and e.address != address:
                continue
            if e.node_id is not None and e.node_id != node_id:
                continue
            # an entry pinned to both address and node id beats a looser one
            if best is None or (bool(e.address) + (e.node_id is not None)) > (
                bool(best.address) + (best.node_id is not None)
            ):
                best = e
        return None if best is None else self._identity(best)

    def resolve(self, address: str, node_id: int, tell: bool = True) -> NodeIdentity:
        """:meth:`match`, else an automatic identity (logged once, saying how to name it,
        unless ``tell`` is False)."""
        found = self.match(address, node_id)
        if found is not None:
            return found
        from csi_edge.frames import node_key

        wire = node_key(address, node_id)
        if tell and wire not in self._told:
            self._told.add(wire)
            log.warning(
                "node %s is not in the inventory; name it with a [nodes.<id>] table in "
                'gateway.toml (node_id = %d, name = "...", area = "...")',
                wire,
                node_id,
            )
        return NodeIdentity(wire, address_slug(wire), auto_name(wire), node_id=node_id)


def inventory_from_config(cfg: Any, gateway_id: str, where: str = "config") -> Inventory:
    """The inventory of a GatewayConfig (``[nodes.<id>]`` tables, ``[inventory] results``);
    every mistake is one ConfigError naming ``where`` (the config file) and the key."""
    for f in cfg.inventory.results:
        try:
            _read_results(Path(f))
        except ConfigError as e:
            raise ConfigError(f"{where}: inventory.results: {e}") from None
    try:
        return Inventory(
            {eid: entry.table() for eid, entry in cfg.nodes.items()},
            cfg.inventory.results,
            gateway_id,
        )
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _check_unambiguous(entries: list[_Entry]) -> None:
    """Two entries that would match the same frames (same node id and address, or the same
    MAC) are a mistake: which one a node is would depend on the order of the file."""
    seen: dict[tuple, _Entry] = {}
    for e in entries:
        for sig in (("mac", e.mac) if e.mac else None, ("at", e.node_id, e.address)):
            if sig is None:
                continue
            other = seen.get(sig)
            if other is not None:
                a, b = _label(other), _label(e)
                raise ConfigError(
                    f"{b} matches the same node as {a} ({_what(e)}); give one of them a "
                    "different node_id or an address, or remove one"
                )
            seen[sig] = e


def _label(e: _Entry) -> str:
    return f"nodes.{e.id}" if e.id != e.mac else f"board {e.mac} of a provision results file"


def _what(e: _Entry) -> str:
    parts = [f"mac {e.mac}"] if e.mac else []
    if e.node_id is not None:
        parts.append(f"node_id {e.node_id}")
    if e.address:
        parts.append(f"address {e.address}")
    return ", ".join(parts)


def _read_results(path: Path) -> list[tuple[str, int | None, str]]:
    """(mac, node_id, zone) rows of a ``csi-edge provision --inventory`` results file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: provision results file not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a provision results file (JSON): {e}") from None
    boards = doc.get("boards") if isinstance(doc, dict) else None
    if not isinstance(boards, list):
        raise ConfigError(f'{path}: expected {{"boards": [...]}} as written by csi-edge provision')
    out = []
    for i, b in enumerate(boards):
        if not isinstance(b, dict) or not b.get("mac"):
            continue  # a board that failed before its MAC was read names nothing
        nid = b.get("node_id")
        out.append(
            (
                _norm_mac(b["mac"], f"{path}: boards[{i}]"),
                nid if isinstance(nid, int) else None,
                str(b.get("zone") or ""),
            )
        )
    return out
