#!/usr/bin/env python3
"""Time flashing a 1 MB app and provisioning, against the emulated ESP32-S3 (csi-edge board emulate).

Baseline, measured in the same run: the esptool command line writing the same 1 MB app
(``esptool write-flash``, stub, compressed: what people run by hand). Every csi-edge figure is
reported as a ratio to it. Each case is run ``--repeat`` times; the median is reported.

    python scripts/bench_flash.py [--repeat 3] [--baud 921600] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csi_edge.firmware import testkit  # noqa: E402


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0,):
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baud", type=int, default=921600)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-flash-"))
    src = testkit.write_release(tmp / "fw", app_size=1 << 20)
    app = src / "esp32-csi-node.bin"
    emu = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csi_edge",
            "board",
            "emulate",
            "--flash-file",
            str(tmp / "flash.bin"),
            "--control",
            str(tmp / "ctl.sock"),
            "--wifi",
            "HomeNet:s3cretpass1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = emu.stdout.readline().strip()
    conn = testkit.emulator_link(port, args.baud)
    py = [sys.executable, "-m"]
    cases = {
        "baseline: esptool write-flash 1 MB app (stub, compressed)": py
        + ["esptool", *conn, "write-flash", "0x20000", str(app)],
        "esptool write-flash 1 MB app (ROM, compressed)": py
        + ["esptool", *conn, "--no-stub", "write-flash", "0x20000", str(app)],
        "csi-edge flash full release, 1 MB app (stub, compressed)": py
        + ["csi_edge", "flash", *conn, "-f", str(src)],
        "csi-edge flash full release, 1 MB app (stub, uncompressed)": py
        + ["csi_edge", "flash", *conn, "-f", str(src), "--no-compress"],
        "csi-edge flash full release, 1 MB app (ROM, compressed)": py
        + ["csi_edge", "flash", *conn, "-f", str(src), "--no-stub"],
        "csi-edge flash full release, 1 MB app (ROM, uncompressed)": py
        + ["csi_edge", "flash", *conn, "-f", str(src), "--no-stub", "--no-compress"],
        "csi-edge provision (stub)": py
        + [
            "csi_edge",
            "provision",
            *conn,
            "--ssid",
            "HomeNet",
            "--password",
            "s3cretpass1",
            "--target-ip",
            "127.0.0.1",
            "--node-id",
            "{n}",
        ],
        "csi-edge provision (ROM)": py
        + [
            "csi_edge",
            "provision",
            *conn,
            "--no-stub",
            "--ssid",
            "HomeNet",
            "--password",
            "s3cretpass1",
            "--target-ip",
            "127.0.0.1",
            "--node-id",
            "{n}",
        ],
        "csi-edge provision --wait (stub, until first UDP frame)": py
        + [
            "csi_edge",
            "provision",
            *conn,
            "--ssid",
            "HomeNet",
            "--password",
            "s3cretpass1",
            "--target-ip",
            "127.0.0.1",
            "--target-port",
            "5917",
            "--node-id",
            "{n}",
            "--wait",
        ],
    }
    results = {}
    try:
        for name, cmd in cases.items():
            times = []
            for i in range(args.repeat):
                # after --wait the node runs its app; the next SYNC puts it back in download mode
                times.append(timed([c.replace("{n}", str(10 + i)) for c in cmd]))
            results[name] = statistics.median(times)
    finally:
        emu.terminate()
        emu.wait(10)
    base = results[next(iter(results))]
    rows = [
        {"case": k, "seconds": round(v, 3), "ratio_to_baseline": round(v / base, 2)}
        for k, v in results.items()
    ]
    if args.json:
        print(json.dumps({"baud": args.baud, "repeat": args.repeat, "rows": rows}, indent=2))
    else:
        print(f"emulated ESP32-S3 over a pty, {args.baud} baud, median of {args.repeat}")
        for r in rows:
            print(f"  {r['seconds']:7.2f} s  x{r['ratio_to_baseline']:<5}  {r['case']}")


if __name__ == "__main__":
    main()
