#!/usr/bin/env python3
"""Benchmark: decoding ADR-018 captures, csi-edge's vectorised decoder vs a naive decoder.

Writes a pcap of N raw CSI frames (default 1,000,000; 16 nodes on 16 IPs; 64/128/192-pair
frames mixed as in a real RuView capture, 81/18/1 %, or ``--mix uniform``) to a temp dir, then
in the same run decodes it

* with :func:`csi_edge.codecs.pcap.iter_pcap` (memory-mapped file, numpy gathers -> FrameBatch);
* with a naive baseline: per record ``struct.unpack`` of the pcap/IP/UDP/ADR-018 headers and the
  CSI as a Python list, the way most hobby parsers do it;

and the live-ingest path (a list of datagram ``bytes`` -> FrameBatch, in batches as a UDP
receive loop hands them over) against the same naive per-datagram decoder.

Text captures: the ESP32-CSI-Tool file ``tests/data/esp32-csi-tool/example_100hz_pitraffic.csv``
(its 833 complete lines, repeated to ``--text-lines``) read from disk to frames, in lines/s, by
:func:`csi_edge.capture.read_capture`, by a naive per-line parser (``split`` + ``int()`` per
value, the usual hobby script), and by CSIKit's ESP32 reader (``CSVBeamformReader``) when
CSIKit is installed (``pip install csikit``: a comparison only, not a dependency). All three
must return the same number of frames.

    python scripts/bench_decode.py                 # 1M frames
    python scripts/bench_decode.py --json          # machine-readable
    python scripts/bench_decode.py --frames 200000 --mix uniform --text-lines 20000

Each figure is the best of ``--repeat`` runs (the machine is shared); ratios are against the
baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from csi_edge.codecs.pcap import PcapWriter, iter_pcap  # noqa: E402
from csi_edge.codecs.ruview import RuViewDecoder, encode_raw_frame  # noqa: E402

MIXES = {"real": [0.81, 0.18, 0.01], "uniform": [1 / 3, 1 / 3, 1 / 3]}


def make_datagrams(n: int, mix: str, nodes: int, seed: int = 0) -> tuple[list[bytes], list[str]]:
    rng = np.random.default_rng(seed)
    lengths = rng.choice([64, 128, 192], n, p=MIXES[mix])
    pool = {
        p: [rng.integers(-40, 40, 2 * p).astype(np.int8).tobytes() for _ in range(64)]
        for p in (64, 128, 192)
    }
    node = np.arange(n) % nodes
    seq = np.arange(n) // nodes
    dgs = [
        encode_raw_frame(1, s, pool[p][i & 63], freq_mhz=2437, rssi=-50 - k, noise=-92)
        for i, (p, k, s) in enumerate(
            zip(lengths.tolist(), node.tolist(), seq.tolist(), strict=True)
        )
    ]
    return dgs, [f"192.168.1.{100 + k}" for k in node.tolist()]


def write_capture(path: str, dgs: list[bytes], srcs: list[str]) -> None:
    with PcapWriter(path) as w:
        for i, (d, s) in enumerate(zip(dgs, srcs, strict=True)):
            w.write(d, 1_700_000_000 + i * 1e-3, s, 40000)


# --- the naive baseline -------------------------------------------------------------------------
def naive_datagram(d: bytes, t: float, src: str):
    """Per-frame struct.unpack + Python lists."""
    if len(d) < 20:
        return None
    magic, node, n_ant, n_sub, freq, seq, rssi, noise, _ = struct.unpack("<IBBHIIbbH", d[:20])
    if magic != 0xC5110001 or len(d) < 20 + 2 * n_ant * n_sub:
        return None
    csi = list(struct.unpack(f"<{2 * n_ant * n_sub}b", d[20 : 20 + 2 * n_ant * n_sub]))
    return {
        "t": t,
        "src": src,
        "node": node,
        "seq": seq,
        "rssi": rssi,
        "noise": noise,
        "freq": freq,
        "csi": csi,
    }


def naive_pcap(path: str) -> int:
    frames = []
    with open(path, "rb") as f:
        data = f.read()
    p = 24
    n = len(data)
    while p + 16 <= n:
        sec, usec, incl, _orig = struct.unpack("<IIII", data[p : p + 16])
        pkt = data[p + 16 : p + 16 + incl]
        p += 16 + incl
        ver_ihl, _tos, _tot, _id, _frag, _ttl, proto, _ck, src, _dst = struct.unpack(
            "!BBHHHBBH4s4s", pkt[:20]
        )
        if proto != 17:
            continue
        ihl = (ver_ihl & 15) * 4
        _sp, _dp, ulen, _uck = struct.unpack("!HHHH", pkt[ihl : ihl + 8])
        fr = naive_datagram(pkt[ihl + 8 : ihl + ulen], sec + usec * 1e-6, ".".join(map(str, src)))
        if fr is not None:
            frames.append(fr)
    return len(frames)


# --- text captures ------------------------------------------------------------------------------
TEXT_SAMPLE = (
    Path(__file__).resolve().parents[1] / "tests/data/esp32-csi-tool/example_100hz_pitraffic.csv"
)


def write_text_capture(path: str, n_lines: int) -> int:
    """The sample's header + its complete CSI lines, repeated to about ``n_lines``."""
    src = TEXT_SAMPLE.read_bytes().splitlines(keepends=True)
    good = [r for r in src[1:] if len(r.split(b"[")[1].split(b"]")[0].split()) == 128]
    reps = max(1, n_lines // len(good))
    with open(path, "wb") as f:
        f.write(src[0])
        f.write(b"".join(good) * reps)
    return reps * len(good)


def naive_text(path: str) -> int:
    """Per line: split, int() per field and per value, a dict per frame."""
    frames = []
    with open(path) as f:
        f.readline()
        for line in f:
            p = line.rstrip("\n").split(",")
            if len(p) != 26 or p[0] != "CSI_DATA":
                continue
            vals = [int(v) for v in p[25].strip("[] ").split()]
            frames.append({"mac": p[2], "rssi": int(p[3]), "noise": int(p[14]),
                           "channel": int(p[16]), "local_us": int(p[18]),
                           "t": float(p[23]), "len": int(p[24]), "csi": vals})  # fmt: skip
    return len(frames)


def csikit_text(path: str) -> int | None:
    try:
        from CSIKit.reader.readers.read_csv import CSVBeamformReader
    except ImportError:
        return None
    return len(CSVBeamformReader().read_file(path).frames)


def bench_text(n_lines: int, repeat: int, log) -> dict:
    from csi_edge.capture import read_capture

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tool.csv")
        n = write_text_capture(path, n_lines)
        t_ours, c_ours, res = best(lambda: read_capture(path), repeat)
        t_naive, _, n_naive = best(lambda: naive_text(path), max(1, repeat - 1))
        t_kit, _, n_kit = best(lambda: csikit_text(path), 1)
    assert len(res.frames) == n_naive == n, (len(res.frames), n_naive, n)
    out = {
        "lines": n,
        "csi_edge_lps": round(n / t_ours),
        "csi_edge_cpu_lps": round(n / c_ours),
        "naive_lps": round(n / t_naive),
        "ratio_vs_naive": round(t_naive / t_ours, 1),
        "csikit_lps": None,
        "ratio_vs_csikit": None,
    }
    if n_kit is not None:
        assert n_kit == n, (n_kit, n)
        out["csikit_lps"] = round(n / t_kit)
        out["ratio_vs_csikit"] = round(t_kit / t_ours, 1)
    log(
        f"text ({n:,} ESP32-CSI-Tool lines): csi-edge {out['csi_edge_lps']:,} lines/s, naive "
        f"{out['naive_lps']:,}, CSIKit {out['csikit_lps'] or 'not installed'}"
    )
    return out


# --- timing -------------------------------------------------------------------------------------
def best(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall time and best CPU time (process_time: what one core spends, whatever else
    runs on the machine) over ``repeat`` runs, and the last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--mix", choices=sorted(MIXES), default="real")
    ap.add_argument(
        "--batch", type=int, default=64, help="datagrams per decode call on the live path"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--text-lines", type=int, default=100_000, help="ESP32-CSI-Tool lines for the text bench"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    dgs, srcs = make_datagrams(args.frames, args.mix, args.nodes)
    out: dict = {
        "frames": args.frames,
        "nodes": args.nodes,
        "mix": args.mix,
        "batch": args.batch,
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.pcap")
        t0 = time.perf_counter()
        write_capture(path, dgs, srcs)
        out["capture_bytes"] = os.path.getsize(path)
        log(
            f"wrote {args.frames:,} frames ({out['capture_bytes'] / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s"
        )

        def ours():
            return sum(len(r.frames) for r in iter_pcap(path))

        t_ours, c_ours, n_ours = best(ours, args.repeat)
        log(f"csi-edge pcap decode: {args.frames / t_ours:,.0f} frames/s")
        t_naive, c_naive, n_naive = best(lambda: naive_pcap(path), max(1, args.repeat - 1))
        log(f"naive pcap decode:    {args.frames / t_naive:,.0f} frames/s")
        assert n_ours == n_naive == args.frames, (n_ours, n_naive)
    out["pcap"] = {
        "csi_edge_fps": round(args.frames / t_ours),
        "naive_fps": round(args.frames / t_naive),
        "ratio": round(t_naive / t_ours, 1),
        "csi_edge_cpu_fps": round(args.frames / c_ours),
        "naive_cpu_fps": round(args.frames / c_naive),
        "csi_edge_s": round(t_ours, 3),
        "naive_s": round(t_naive, 3),
    }

    # live path: list of datagrams -> FrameBatch, in receive-loop batches
    m = min(args.frames, 200_000)
    sub, sub_src = dgs[:m], srcs[:m]
    dec = RuViewDecoder()

    def ours_dgram():
        k = 0
        for i in range(0, m, args.batch):
            k += len(dec.decode(sub[i : i + args.batch], 1.0, sub_src[i : i + args.batch]).frames)
        return k

    def naive_dgram():
        return sum(naive_datagram(d, 1.0, s) is not None for d, s in zip(sub, sub_src, strict=True))

    t_od, c_od, _ = best(ours_dgram, args.repeat)
    t_nd, c_nd, _ = best(naive_dgram, max(1, args.repeat - 1))
    out["datagrams"] = {
        "frames": m,
        "csi_edge_fps": round(m / t_od),
        "naive_fps": round(m / t_nd),
        "ratio": round(t_nd / t_od, 1),
        "csi_edge_cpu_fps": round(m / c_od),
        "naive_cpu_fps": round(m / c_nd),
    }
    out["text"] = bench_text(args.text_lines, args.repeat, log)
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    out["cpus"] = os.cpu_count()
    log(
        f"datagram path (batch {args.batch}): csi-edge {m / t_od:,.0f} frames/s, naive {m / t_nd:,.0f} frames/s"
    )
    if args.json:
        print(json.dumps(out))
    else:
        p, d = out["pcap"], out["datagrams"]
        for name, r in (("pcap decode", p), (f"datagrams, batch {args.batch}", d)):
            print(
                f"{name:<20}: csi-edge {r['csi_edge_fps']:>10,} frames/s (CPU {r['csi_edge_cpu_fps']:,})"
                f"   naive {r['naive_fps']:>9,} frames/s (CPU {r['naive_cpu_fps']:,})   x{r['ratio']}"
            )
        t = out["text"]
        kit = (
            f"CSIKit {t['csikit_lps']:>7,} lines/s   x{t['ratio_vs_csikit']}"
            if t["csikit_lps"]
            else "CSIKit not installed (pip install csikit)"
        )
        print(
            f"{'text, ESP32-CSI-Tool':<20}: csi-edge {t['csi_edge_lps']:>10,} lines/s  "
            f"(CPU {t['csi_edge_cpu_lps']:,})   naive {t['naive_lps']:>9,} lines/s   "
            f"x{t['ratio_vs_naive']}   {kit}"
        )
        print(
            f"load average {out['load_avg_1min']} on {out['cpus']} CPUs (wall figures drop when busy)"
        )


if __name__ == "__main__":
    main()
