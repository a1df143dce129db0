#!/usr/bin/env python3
"""Watch ``csi-edge ota`` roll an image over three emulated RuView nodes on loopback.

Each node is an emulated ESP32-S3 (its flash holds a 0.8.0 app in ota_0 and an NVS with its node
id and OTA PSK) serving the OTA endpoint on 127.0.0.1 and streaming CSI to one UDP port. The
first node listed is the canary; ``--fault`` makes it fail (``silent``: installs the image but
never streams again, ``crash``: drops the upload, ``dark``: never comes back; ``none``: all
succeed). ``csi-edge ota`` runs as its own process, so this is exactly what a user sees.

    python scripts/demo_ota.py [--fault silent|crash|dark|none] [--json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csi_edge.firmware import testkit  # noqa: E402
from csi_edge.firmware.emulator import Board, NodeOptions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fault", choices=["silent", "crash", "dark", "none"], default="silent")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        csi_port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="csi-edge-ota-demo-"))
    image = tmp / "esp32-csi-node.bin"
    image.write_bytes(testkit.app(300 << 10, "0.9.1", seed=7))
    boards = []
    try:
        for nid in (1, 2, 3):
            fault = args.fault if nid == 1 and args.fault != "none" else None
            opts = NodeOptions(ota_port=0, ota_reboot_delay=1.0, ota_fault=fault)
            b = Board(flash_size=4 << 20, node=opts).start()
            testkit.install_node(b.flash, node_id=nid, target_port=csi_port, ota_psk="demo-psk")
            b.reset("run")
            boards.append(b)
        while any(b.status()["node_state"] != "streaming" for b in boards):
            time.sleep(0.05)
        nodes = [f"127.0.0.1:{b.ota.port}#{i}" for i, b in enumerate(boards, 1)]
        cmd = [sys.executable, "-m", "csi_edge", "ota", str(image), *nodes,
               "--csi-port", str(csi_port), "--boot-timeout", "15", "--frame-timeout", "5"]  # fmt: skip
        if args.json:
            cmd.append("--json")
        print("$ csi-edge ota", image.name, *nodes, "--csi-port", csi_port, "...", flush=True)
        env = {**os.environ, "CSI_EDGE_OTA_PSK": "demo-psk", "CSI_EDGE_STATE_DIR": str(tmp)}
        t0 = time.monotonic()
        code = subprocess.run(cmd, env=env).returncode
        print(f"exit {code} after {time.monotonic() - t0:.1f} s")
        return 0
    finally:
        for b in boards:
            b.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
