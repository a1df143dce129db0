#!/usr/bin/env python3
"""Soak benchmark: N simulated nodes x 50 Hz through the full gateway (UDP ingest, DSP vitals,
the vitals model, MQTT to a real mosquitto, HTTP with a live-stream client), for minutes.

Reports, from one run:

* frames sent vs counted by the gateway (and kernel drops), i.e. unexplained loss;
* age of the newest frame at each published report, p50 / p99 (the gateway's own clock);
* report period p50 / p99 and the report -> MQTT subscriber lag p50 / p99;
* gateway CPU (% of one core) in total and per node; RSS at start and end, of the gateway and
  of its estimator process, and their private (USS) and proportional (PSS) memory;
* with ``--sweep``: the highest node count sustained at 50 Hz with every frame processed
  (sent == counted, no kernel drops; the report period at each count is printed beside it).

The gateway runs in a child process (this script with ``--child``: build_gateway + the daemon,
plus a sink that logs each report's timing), so its CPU and memory are measured alone; the
simulated nodes, the MQTT subscriber and the HTTP client run here.

    python scripts/bench_soak.py                      # 16 nodes x 50 Hz, 10 minutes
    python scripts/bench_soak.py --minutes 1 --sweep  # shorter, then the node-count sweep
    python scripts/bench_soak.py --json
"""

from __future__ import annotations

import argparse
import asyncio
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

import numpy as np


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# the child: the gateway
def child(config: str, timing_log: str) -> None:
    from csi_edge.app.daemon import Daemon
    from csi_edge.config import load_config
    from csi_edge.service import build_gateway

    cfg = load_config(config)
    gw = build_gateway(cfg)
    out = open(timing_log, "w", buffering=1)  # noqa: SIM115

    class TimingSink:
        """Per publish: the reports' time t, the newest frame's receive time over all nodes (no
        frame is ingested while reports are built: one thread), the reports, the time now."""

        def publish(self, reports):
            now = time.time()
            newest = max(
                (n.last_seen for n in gw.ingest.nodes.nodes.values()), default=float("nan")
            )
            t = reports[0].t if reports else now
            out.write(f"{t:.6f} {newest:.6f} {len(reports)} {now:.6f}\n")

        def close(self):
            out.flush()

    gw.sinks.append(TimingSink())
    if os.environ.get("CSI_EDGE_SOAK_TRACE"):
        start_trace(gw, os.environ["CSI_EDGE_SOAK_TRACE"])
    if os.environ.get("CSI_EDGE_SOAK_TRIMTEST"):
        start_trimtest(os.environ["CSI_EDGE_SOAK_TRIMTEST"])
    asyncio.run(Daemon(gw, status=gw.status, out=open(os.devnull, "w")).run())  # noqa: SIM115
    s = gw.summary()
    print(
        json.dumps({"frames": s["frames"], "sources": s["sources"], "reports": s["reports"]}),
        flush=True,
    )


def start_trace(gw, path: str, every_s: float = 30.0) -> None:
    """``--trace``: every 30 s, the gateway process's allocation growth by line since the first
    snapshot (tracemalloc) and its most numerous object types, to find what grows."""
    import collections
    import gc
    import tracemalloc

    tracemalloc.start(4)

    def run():
        time.sleep(20.0)  # past start-up: nodes known, first reports out
        first = tracemalloc.take_snapshot()
        types0 = collections.Counter(type(o).__name__ for o in gc.get_objects())
        with open(path, "w", buffering=1) as f:
            while True:
                time.sleep(every_s)
                snap = tracemalloc.take_snapshot()
                types = collections.Counter(type(o).__name__ for o in gc.get_objects())
                f.write(f"=== {time.time():.0f} traced {tracemalloc.get_traced_memory()}\n")
                for st in snap.compare_to(first, "traceback")[:8]:
                    f.write(f"{st.size_diff / 1024:.0f} KiB {st.count_diff:+d}\n")
                    f.write("\n".join("    " + ln for ln in st.traceback.format()) + "\n")
                grown = {k: v - types0.get(k, 0) for k, v in types.items()}
                top = sorted(grown.items(), key=lambda kv: -kv[1])[:10]
                f.write(f"types grown: {top}\n")

    threading.Thread(target=run, daemon=True).start()


def start_trimtest(path: str, every_s: float = 30.0) -> None:
    """Diagnosis: RSS before/after glibc's malloc_trim(0) and the anonymous mappings, every 30 s
    (freed-but-kept heap vs live memory)."""
    import ctypes

    import psutil

    libc = ctypes.CDLL("libc.so.6")
    me = psutil.Process()

    def run():
        with open(path, "w", buffering=1) as f:
            while True:
                time.sleep(every_s)
                before = me.memory_info().rss
                libc.malloc_trim(0)
                after = me.memory_info().rss
                maps = [m for m in me.memory_maps(grouped=False) if not m.path or m.path[0] == "["]
                big = sorted((m.rss for m in maps), reverse=True)[:6]
                f.write(
                    f"{time.time():.0f} rss {before / 2**20:.1f} -> trimmed {after / 2**20:.1f} MB;"
                    f" anon maps {len(maps)}, largest rss MB {[round(b / 2**20, 1) for b in big]}\n"
                )

    threading.Thread(target=run, daemon=True).start()


# ---------------------------------------------------------------------------------------------
def start_broker(tmp: Path) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def pct(a, q) -> float | None:
    return None if len(a) == 0 else float(np.percentile(np.asarray(a, float), q))


def run_once(nodes: int, rate: float, seconds: float, tmp: Path, broker_port: int) -> dict:
    import paho.mqtt.client as mqtt
    import psutil

    from csi_edge.sources.simnode import SimFleet

    udp, http_port = free_port(socket.SOCK_DGRAM), free_port()
    cfg = tmp / f"gateway-{nodes}.toml"
    cfg.write_text(
        f'[ingest]\nudp = ["127.0.0.1:{udp}"]\n[models]\npose = ""\n'
        f'[sinks]\nconsole = false\nhttp = "127.0.0.1:{http_port}"\n'
        f'[sinks.mqtt]\nhost = "127.0.0.1:{broker_port}"\nprefix = "soak{nodes}"\n'
    )
    timing = tmp / f"timing-{nodes}.log"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(cfg), str(timing)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ps = psutil.Process(proc.pid)
    import urllib.request

    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/state", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(proc.stderr.read()) from None
            time.sleep(0.1)

    lags: list[float] = []
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        if msg.topic.endswith("/state"):
            try:
                t = json.loads(msg.payload)["t"]
            except (ValueError, KeyError, TypeError):
                return
            with lock:
                lags.append(time.time() - t)

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-sub-{nodes}")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker_port)
    sub.subscribe(f"soak{nodes}/#")
    sub.loop_start()

    stream_events = [0]
    stop_stream = threading.Event()

    def stream():  # a browser's live page: one SSE client for the whole run
        import http.client

        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        c.request("GET", "/api/stream")
        r = c.getresponse()
        while not stop_stream.is_set():
            line = r.fp.readline()
            if not line:
                break
            if line.startswith(b"event: report"):
                stream_events[0] += 1
        c.close()

    st = threading.Thread(target=stream, daemon=True)
    st.start()
    time.sleep(1.0)
    rss_start = ps.memory_info().rss
    kids = ps.children(recursive=True)  # the estimator process
    kid_start = sum(k.memory_info().rss for k in kids)
    smaps_start = smaps(ps), smaps(*kids)
    unique_start = unique_mb(ps, *kids)
    cpu0 = ps.cpu_times()
    t0 = time.monotonic()
    rss_samples: list[int] = []
    kid_samples: list[int] = []

    async def send():
        fleet = SimFleet.uniform(nodes, rate_hz=rate, target=("127.0.0.1", udp), jitter=0.2)
        task = asyncio.ensure_future(fleet.run(seconds))
        while not task.done():
            await asyncio.sleep(5.0)
            rss_samples.append(ps.memory_info().rss)
            kid_samples.append(sum(k.memory_info().rss for k in kids if k.is_running()))
        await task
        return fleet.sent

    sent = asyncio.run(send())
    t_send_end = time.time()  # reports after this see no new frames: their age is the pause
    time.sleep(1.0)  # datagrams in flight, a last report
    cpu1 = ps.cpu_times()
    elapsed = time.monotonic() - t0
    rss_end = ps.memory_info().rss
    kid_end = sum(k.memory_info().rss for k in kids if k.is_running())
    smaps_end = smaps(ps), smaps(*[k for k in kids if k.is_running()])
    unique_end = unique_mb(ps, *[k for k in kids if k.is_running()])
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    stop_stream.set()
    sub.loop_stop()
    sub.disconnect()
    summary = json.loads(out.strip().splitlines()[-1])
    drops = sum(int(s.get("kernel_drops") or 0) for s in summary["sources"].values())
    rows = [tuple(map(float, ln.split())) for ln in timing.read_text().splitlines() if ln.strip()]
    # reports once every node is known, while the nodes were sending (the last tick before
    # SIGTERM and the shutdown report come after the fleet stopped: ages up to ~1 s)
    rows = [r for r in rows if r[2] >= nodes and r[0] <= t_send_end]
    t_pub = np.array([r[0] for r in rows])
    ages = [r[0] - r[1] for r in rows if np.isfinite(r[1])]
    build = [r[3] - r[0] for r in rows]
    periods = np.diff(t_pub) if len(t_pub) > 1 else np.array([])
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100.0
    return {
        "nodes": nodes,
        "rate_hz": rate,
        "seconds": round(elapsed, 1),
        "frames_sent": sent,
        "frames_counted": summary["frames"],
        "unexplained_loss": sent - summary["frames"] - drops,
        "kernel_drops": drops,
        "reports": len(rows),
        "frame_age_ms_p50": round(pct(ages, 50) * 1000, 2) if ages else None,
        "frame_age_ms_p99": round(pct(ages, 99) * 1000, 2) if ages else None,
        "frame_age_ms_top5": [round(a * 1000, 1) for a in sorted(ages)[-5:]],
        "report_build_ms_p50": round(pct(build, 50) * 1000, 2) if build else None,
        "report_build_ms_p99": round(pct(build, 99) * 1000, 2) if build else None,
        "report_period_s_p50": round(pct(periods, 50), 4) if len(periods) else None,
        "report_period_s_p99": round(pct(periods, 99), 4) if len(periods) else None,
        "mqtt_lag_ms_p50": round(pct(lags, 50) * 1000, 2) if lags else None,
        "mqtt_lag_ms_p99": round(pct(lags, 99) * 1000, 2) if lags else None,
        "mqtt_messages": len(lags),
        "stream_events": stream_events[0],
        "cpu_pct_of_one_core": round(cpu, 1),
        "cpu_pct_per_node": round(cpu / nodes, 2),
        "rss_mb_start": round(rss_start / 2**20, 1),
        "rss_mb_end": round(rss_end / 2**20, 1),
        "rss_mb_max": round(max(rss_samples + [rss_end]) / 2**20, 1),
        "rss_mb_samples": [round(r / 2**20, 1) for r in rss_samples[::6]],  # every 30 s
        "estimator_rss_mb_start": round(kid_start / 2**20, 1),
        "estimator_rss_mb_end": round(kid_end / 2**20, 1),
        "estimator_rss_mb_samples": [round(r / 2**20, 1) for r in kid_samples[::6]],
        # what a Pi pays: private (USS) and proportional (PSS: shared library pages split
        # between the processes that map them; RSS counts them in full in each process)
        "gateway_uss_pss_mb_start_end": [smaps_start[0], smaps_end[0]],
        "estimator_uss_pss_mb_start_end": [smaps_start[1], smaps_end[1]],
        "total_pss_mb_start_end": [
            round(smaps_start[0][1] + smaps_start[1][1], 1),
            round(smaps_end[0][1] + smaps_end[1][1], 1),
        ],
        "total_rss_mb_start_end": [
            round((rss_start + kid_start) / 2**20, 1),
            round((rss_end + kid_end) / 2**20, 1),
        ],
        # the two processes' distinct resident pages (shared ones once): the goal's figure
        "total_unique_mb_start_end": [unique_start, unique_end],
        "tracebacks": err.count("Traceback"),
    }


def smaps(*procs) -> list[float]:
    """[USS, PSS] in MB summed over ``procs`` (psutil reads /proc/<pid>/smaps)."""
    uss = pss = 0
    for p in procs:
        try:
            m = p.memory_full_info()
        except Exception:  # noqa: BLE001 - a process that ended counts nothing
            continue
        uss, pss = uss + m.uss, pss + m.pss
    return [round(uss / 2**20, 1), round(pss / 2**20, 1)]


def unique_mb(*procs) -> float | None:
    """MB of distinct physical pages resident in any of ``procs``: what the processes hold
    together, each shared page counted once (what a cgroup's MemoryMax is close to; RSS
    counts a page shared by the gateway and its estimator twice, PSS splits it with every
    other process on the machine mapping the same library). From /proc/<pid>/pagemap, whose
    page frame numbers only root sees (None otherwise)."""
    import struct

    seen: set[int] = set()
    try:
        for p in procs:
            with open(f"/proc/{p.pid}/maps") as maps, open(f"/proc/{p.pid}/pagemap", "rb") as pm:
                for line in maps:
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    if lo >= 1 << 47:  # [vsyscall]
                        continue
                    pm.seek(lo // 4096 * 8)
                    for (e,) in struct.iter_unpack("<Q", pm.read((hi - lo) // 4096 * 8)):
                        if e >> 63:  # present
                            seen.add(e & ((1 << 55) - 1))
    except OSError:  # a process that ended, or no permission
        return None
    if seen <= {0}:  # not root: every frame number reads as 0
        return None
    return round(len(seen) * 4096 / 2**20, 1)


def sustained(r: dict) -> bool:
    """Every frame processed: sent == counted, no kernel drops (report timing is reported
    beside it, not part of the verdict: it is the report loop's figure, not ingest capacity)."""
    return r["frames_counted"] == r["frames_sent"] and r["kernel_drops"] == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument(
        "--sweep", action="store_true", help="then find the highest sustained node count"
    )
    ap.add_argument("--sweep-seconds", type=float, default=30.0)
    ap.add_argument("--sweep-nodes", default="32,48,64,96,128")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--trace", metavar="FILE", help="write the gateway's allocation growth (tracemalloc) here"
    )
    ap.add_argument("--child", nargs=2, metavar=("CONFIG", "TIMING_LOG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trace:
        os.environ["CSI_EDGE_SOAK_TRACE"] = str(Path(args.trace).resolve())
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("CSI_EDGE_STATE_DIR", str(tmp / "state"))
        broker, port = start_broker(tmp)
        try:
            results = {"soak": run_once(args.nodes, args.rate, args.minutes * 60, tmp, port)}
            if not args.json:
                print(json.dumps(results["soak"], indent=1), flush=True)
            if args.sweep:
                sweep = []
                best = args.nodes if sustained(results["soak"]) else 0
                for n in (int(x) for x in args.sweep_nodes.split(",")):
                    r = run_once(n, args.rate, args.sweep_seconds, tmp, port)
                    sweep.append(r)
                    if not args.json:
                        print(
                            json.dumps(
                                {
                                    k: r[k]
                                    for k in (
                                        "nodes",
                                        "frames_sent",
                                        "frames_counted",
                                        "kernel_drops",
                                        "report_period_s_p99",
                                        "cpu_pct_of_one_core",
                                        "frame_age_ms_p99",
                                        "mqtt_lag_ms_p99",
                                    )
                                }
                            ),
                            flush=True,
                        )
                    if not sustained(r):
                        break
                    best = n
                results["sweep"] = sweep
                results["highest_sustained_nodes"] = best
            if args.json:
                print(json.dumps(results))
            elif args.sweep:
                print(
                    f"highest node count sustained at {args.rate:g} Hz: {results['highest_sustained_nodes']}"
                )
        finally:
            broker.terminate()
            broker.wait(5)


if __name__ == "__main__":
    main()
