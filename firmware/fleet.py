"""Provisioning many boards from an inventory (``csi-edge provision --inventory fleet.toml``).

Every board's settings are checked before any board is touched; each board then gets its own
OTA PSK (never shared), the gateway's LAN address as its default target, and one row in the
results file, which is rewritten after every board so an interrupted run still says which
boards are done. The results file is what the gateway's node inventory reads (MAC <-> node id
<-> zone).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from csi_edge.firmware import nodecfg, otapsk
from csi_edge.firmware import provision as prov
from csi_edge.firmware.esp import EspError


def auto_psk(changes: dict) -> None:
    """``ota_psk = auto``: a fresh random PSK for this board (never printed)."""
    if changes.get("ota_psk") == otapsk.AUTO:
        changes["ota_psk"] = otapsk.generate()


def keep_psk(res: prov.ProvisionResult, changes: dict) -> None:
    """After a verified write, store the board's PSK where ``csi-edge ota`` reads it."""
    psk = changes.get("ota_psk")
    if psk and res.verified:
        where = otapsk.remember(res.mac, res.node_id, str(psk))
        res.notes.append(f"OTA PSK stored in {where} (mode 0600) for csi-edge ota")


def default_target(changes: dict, note: Callable[[str], None] | None) -> str | None:
    """This gateway's LAN address, the default target_ip for boards that have none yet."""
    if "target_ip" in changes:
        return None
    lan = prov.lan_address()
    if lan is None and note is not None:
        note(
            "could not find this gateway's LAN address (no default route); boards "
            "without a target_ip keep the firmware default (pass --target-ip)"
        )
    return lan


def provision_fleet(
    inventory: str | Path,
    changes: dict,
    session: dict[str, Any],
    *,
    results: str | Path | None = None,
    wait: bool = False,
    wait_timeout: float = 30.0,
    frame_timeout: float = 10.0,
    force_defaults: bool = False,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
    on_board: Callable[[dict], None] | None = None,
) -> tuple[Path, list[dict], bool]:
    """Provision every ``[[boards]]`` entry; ``changes`` (the command line) override the
    board's own values, which override ``[defaults]``. Returns (results file, rows, all ok)."""
    defaults, boards = prov.load_inventory(inventory)
    per_board = [prov.board_changes(defaults, b) for b in boards]  # all checked before any board
    default_ip = None
    if "target_ip" not in changes and not any("target_ip" in c for c in per_board):
        default_ip = default_target(changes, note)
    plan = [{**c, **changes} for c in per_board]
    for c in plan:
        auto_psk(c)  # one PSK per board, never shared
    for i, c in enumerate(plan):
        try:
            nodecfg.validate(c)
        except nodecfg.ConfigError as e:
            raise nodecfg.ConfigError(
                f"{inventory}: boards[{i}]: {e}; no board was touched"
            ) from None
    out_path = Path(results) if results else Path(inventory).with_suffix(".results.json")
    rows: list[dict] = []
    all_ok = True
    for board, c in zip(boards, plan, strict=True):
        row = {
            "port": board.get("port"),
            "mac": board.get("mac"),
            "node_id": c["node_id"],
            "zone": c.get("zone_name"),
            "firmware_version": None,
            "status": "pending",
        }
        try:
            port = board.get("port") or prov.find_port_by_mac(str(board["mac"]))
            row["port"] = port
            res = prov.provision(
                port,
                c,
                force_defaults=force_defaults,
                wait=wait,
                wait_timeout=wait_timeout,
                frame_timeout=frame_timeout,
                expected_mac=board.get("mac"),
                progress=progress,
                default_target_ip=default_ip,
                **session,
            )
            keep_psk(res, c)
            row.update(mac=res.mac, firmware_version=res.firmware_version, status="ok")
            if res.watch:
                row["streaming"] = res.watch["streaming"]
                row["status"] = res.watch["line"]
                all_ok &= bool(res.watch["streaming"])
        except (prov.ProvisionError, EspError) as e:
            row["status"] = f"error: {e}"
            all_ok = False
        rows.append(row)
        prov.write_results(out_path, rows)
        if on_board is not None:
            on_board(row)
    return out_path, rows, all_ok
