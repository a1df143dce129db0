#!/usr/bin/env python3
"""Benchmark: the whole gateway under load -- loss, loop pauses, report period and MQTT lag.

For each node count, three processes on this machine: the gateway (``build_gateway`` as
``csi-edge run`` builds it, vitals on, pose off, MQTT to a real mosquitto this script starts),
a sender (``SimFleet``: N nodes x ``--rate`` Hz of real ADR-018 datagrams over loopback) and
this script, subscribed to the gateway's MQTT state topics. Measured:

* frames lost: sent - counted by the gateway, and the kernel's drop counter for its socket;
* the longest pause of the gateway's event loop (a 20 ms sleep in the gateway process that
  wakes late: the same probe for any tree, injected by this script);
* report period (time between a node's successive MQTT state messages as they arrive here)
  and report->MQTT lag (arrival here minus the report's ``t``), p50/p95.

``--tree PATH`` runs another checkout's ``edge/`` (e.g. a baseline worktree of main), so both
are measured in the same run against the same sender:

    git worktree add /tmp/net-base a832f57
    python scripts/bench_gateway_load.py --nodes 16,64 --tree /tmp/net-base --tree .
    python scripts/bench_gateway_load.py --nodes 64,96,128,192 --rcvbuf 8388608   # loss onset
    python scripts/bench_gateway_load.py --quick --json

``--rcvbuf 212992`` (the default) is what a non-root service gets on Raspberry Pi OS
(``net.core.rmem_max``; the kernel doubles it to 425,984 B).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_tree(tree: str) -> None:
    """Import ``csi_edge`` from ``tree``/edge (a shim folder first on sys.path)."""
    shim = Path(tempfile.mkdtemp(prefix="csi-edge-tree-"))
    (shim / "csi_edge").symlink_to(Path(tree).resolve() / "edge")
    sys.path.insert(0, str(shim))
    os.environ["PYTHONPATH"] = str(shim) + os.pathsep + os.environ.get("PYTHONPATH", "")


# -------------------------------------------------------------------------------------------
def serve(args) -> None:
    """The gateway process: run for ``--duration`` s, print one JSON line of results."""
    _use_tree(args.tree)
    import asyncio

    from csi_edge.config import GatewayConfig
    from csi_edge.service import build_gateway, run_until_signal
    from csi_edge.sources.udp import UdpSource

    cfg = GatewayConfig()
    cfg.ingest.udp = []
    cfg.models.pose = ""
    cfg.sinks.console = False
    cfg.sinks.mqtt.host, cfg.sinks.mqtt.port = "127.0.0.1", args.mqtt_port
    for key, value in (("max_nodes", 4096), ("max_new_nodes_per_min", 4096)):
        if hasattr(cfg.ingest, key):  # caps exist only on newer trees
            setattr(cfg.ingest, key, value)
    src = UdpSource("127.0.0.1", args.port, rcvbuf=args.rcvbuf)
    gw = build_gateway(cfg, extra_sources=[src])
    pauses: list[float] = []

    async def probe():
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.02)
            pauses.append(time.monotonic() - t0 - 0.02)

    async def main():
        await gw.ingest.start()
        print(json.dumps({"ready": True, "rcvbuf": src.rcvbuf}), flush=True)
        task = asyncio.create_task(probe())
        await run_until_signal(gw)  # SIGTERM from the bench once the sender is done
        task.cancel()

    asyncio.run(main())
    s = gw.ingest.summary()
    settled = sorted(pauses[25:]) or [0.0]  # the first half second is start-up
    print(
        json.dumps(
            {
                "frames": s["frames"],
                "lost_by_sequence": sum(n["lost"] for n in s["nodes"].values()),
                "nodes": len(s["nodes"]),
                "kernel_drops": src.kernel_drops(),
                "rcvbuf": src.rcvbuf,
                "max_pause_ms": round(1000 * settled[-1], 1),
                "pauses_over_50ms": sum(p > 0.05 for p in settled),
                "gateway_timing": gw.summary().get("report_timing"),
                "skipped": s["skipped"],
                "gateway_skipped": gw.summary().get("gateway_skipped"),
            }
        ),
        flush=True,
    )


def send(args) -> None:
    """The sender process: N nodes at --rate Hz for --duration s (one connected socket per node,
    prebuilt datagrams re-stamped with each sequence: a Python SimFleet tops out at ~4,000
    frames/s here, too slow to find where the gateway starts to lose); prints frames sent."""
    import struct

    from csi_edge.codecs.ruview import encode_raw_frame
    from csi_edge.sources.simnode import synthetic_csi

    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    n = args.nodes
    socks, templates = [], []
    for i in range(n):
        sk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sk.connect(("127.0.0.1", args.port))
        socks.append(sk)
        csi = synthetic_csi(64, seed=i)
        templates.append(
            [bytearray(encode_raw_frame(1 + i % 255, 0, csi(0.05 * k, k))) for k in range(8)]
        )
    pack_seq = struct.Struct("<I").pack_into
    seqs = [0] * n
    sent = errors = 0
    start = time.perf_counter()
    end = start + args.duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - start) * args.rate) + 1
        for i in range(n):
            k = seqs[i]
            stop = min(due, k + 16)
            sk, tpl = socks[i], templates[i]
            while k < stop:
                buf = tpl[k % 8]
                pack_seq(buf, 12, k)
                try:
                    sk.send(buf)
                    sent += 1
                except OSError:
                    errors += 1
                k += 1
            seqs[i] = k
        delay = start + (min(seqs) + 1) / args.rate - time.perf_counter()
        if delay > 0.0005:
            time.sleep(min(delay, 0.002))
    for sk in socks:
        sk.close()
    print(json.dumps({"sent": sent, "send_errors": errors}), flush=True)


# -------------------------------------------------------------------------------------------
def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def _pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 4)


def run_one(tree: str, nodes: int, args, mqtt_port: int) -> dict:
    import paho.mqtt.client as mqtt

    arrivals: dict[str, list[tuple[float, float]]] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        now = time.time()
        try:
            t = json.loads(msg.payload)["t"]
        except (ValueError, KeyError, TypeError):
            return
        with lock:
            arrivals.setdefault(msg.topic, []).append((now, t))

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
    sub.on_message = on_message
    sub.connect("127.0.0.1", mqtt_port)
    sub.subscribe("csi-edge/+/nodes/+/state", qos=0)  # <prefix>/<gateway>/nodes/<node>/state
    sub.loop_start()
    port = _free_port(socket.SOCK_DGRAM)
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--port", str(port), "--duration", str(args.duration)]
    gw = subprocess.Popen(
        me + ["--serve", "--tree", tree, "--mqtt-port", str(mqtt_port), "--rcvbuf",
              str(args.rcvbuf), *common[:2], "--duration", str(args.duration + 4)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        json.loads(gw.stdout.readline())  # ready: bound
        sender = subprocess.run(
            me + ["--send", "--nodes", str(nodes), "--rate", str(args.rate), *common],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        sent = json.loads(sender.stdout.strip().splitlines()[-1])
        time.sleep(1.0)  # datagrams in flight
        gw.send_signal(signal.SIGTERM)
        out, _ = gw.communicate(timeout=120)
    finally:
        if gw.poll() is None:
            gw.kill()
        sub.loop_stop()
        sub.disconnect()
    res = json.loads(out.strip().splitlines()[-1])
    periods, lags = [], []
    with lock:
        for series in arrivals.values():
            series = series[2:]  # the first reports come while nodes are appearing
            lags += [a - t for a, t in series]
            periods += [b[0] - a[0] for a, b in zip(series, series[1:], strict=False)]
    res.update(
        tree=tree,
        nodes_sent=nodes,
        rate_hz=args.rate,
        sent=sent["sent"],
        offered_fps=round(sent["sent"] / args.duration),
        send_errors=sent["send_errors"],
        lost=sent["sent"] - res["frames"],
        loss_pct=round(100 * (sent["sent"] - res["frames"]) / max(sent["sent"], 1), 3),
        period_p50=_pct(periods, 0.5),
        period_p95=_pct(periods, 0.95),
        period_max=_pct(periods, 1.0),
        mqtt_lag_p50=_pct(lags, 0.5),
        mqtt_lag_p95=_pct(lags, 0.95),
    )
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nodes", default="16,64", help="node counts, comma-separated")
    ap.add_argument("--rate", type=float, default=50.0, help="frames/s per node")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of sending per run")
    ap.add_argument("--rcvbuf", type=int, default=212_992, help="SO_RCVBUF asked for, bytes")
    ap.add_argument("--tree", action="append", help="checkout(s) to measure (default: this one)")
    ap.add_argument("--quick", action="store_true", help="16 nodes, 10 s")
    ap.add_argument(
        "--broker-nodelay",
        action="store_true",
        help="mosquitto's set_tcp_nodelay true (its default, false, holds a burst of small "
        "messages to a subscriber for the subscriber's delayed ACK)",
    )
    ap.add_argument("--json", action="store_true", help="one JSON list on stdout")
    # internal: the child processes
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mqtt-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        args.tree = args.tree[0]
        serve(args)
        return 0
    if args.send:
        args.nodes = int(args.nodes)
        send(args)
        return 0
    if args.quick:
        args.nodes, args.duration = "16", 10.0
    trees = args.tree or [str(HERE.parent)]
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        print("mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 2
    mport = _free_port()
    conf = Path(tempfile.mkdtemp()) / "mosquitto.conf"
    extra = "set_tcp_nodelay true\n" if args.broker_nodelay else ""
    conf.write_text(
        f"listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}"
    )
    broker = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    results = []
    try:
        for n in [int(x) for x in args.nodes.split(",")]:
            for tree in trees:
                r = run_one(tree, n, args, mport)
                results.append(r)
                if not args.json:
                    print(
                        f"{Path(tree).resolve().name:>10} {n:4d} nodes x {args.rate:g} Hz "
                        f"({r['offered_fps']} frames/s sent): "
                        f"lost {r['lost']} ({r['loss_pct']} %), kernel drops {r['kernel_drops']}, "
                        f"max loop pause {r['max_pause_ms']} ms "
                        f"({r['pauses_over_50ms']} > 50 ms), report period p50/p95 "
                        f"{r['period_p50']}/{r['period_p95']} s, MQTT lag p50/p95 "
                        f"{r['mqtt_lag_p50']}/{r['mqtt_lag_p95']} s [rcvbuf {r['rcvbuf']} B]",
                        flush=True,
                    )
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
