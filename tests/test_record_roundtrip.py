"""``csi-edge record`` as users run it (a real process, SIGINT), then decode: nothing lost.

UDP: every datagram sent is in the pcap byte for byte (checked with dpkt, an independent pcap
reader, as Wireshark/tcpdump users would), with its receive time and sender address, and
``read_capture`` of the pcap gives exactly the frames that were sent. Serial: every line written
to a real pty is in the recording byte for byte, non-UTF-8 included.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tty

import dpkt
import numpy as np
import pytest

from csi_edge.capture import read_capture
from csi_edge.codecs.recording import iter_recording
from csi_edge.codecs.ruview import encode_edge_vitals, encode_raw_frame

CLI = [sys.executable, "-m", "csi_edge"]


def _start_record(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        CLI + ["record", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = proc.stderr.readline()  # "recording UDP 127.0.0.1:PORT -> FILE (Ctrl-C stops)"
    assert first.startswith("recording "), first + proc.stderr.read()
    return proc, first


def test_udp_record_is_lossless_and_sigint_flushes(tmp_path):
    out = tmp_path / "session.pcap"
    proc, first = _start_record(["--udp", "127.0.0.1:0", "-o", str(out), "--json"])
    port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))
    rng = np.random.default_rng(1)
    sent: list[tuple[bytes, int]] = []  # (datagram, source port)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    t0 = time.time()
    try:
        for k in range(40):
            for node, s in enumerate(socks, start=1):
                pairs = (64, 128, 192)[(k + node) % 3]
                d = encode_raw_frame(node, k, rng.integers(-128, 128, 2 * pairs).astype(np.int8))
                s.sendto(d, ("127.0.0.1", port))
                sent.append((d, s.getsockname()[1]))
            if k % 10 == 0:
                d = encode_edge_vitals(1, presence=True, breathing_bpm=14.5)
                socks[0].sendto(d, ("127.0.0.1", port))
                sent.append((d, socks[0].getsockname()[1]))
            time.sleep(0.002)
        garbage = b"\xde\xad\xbe\xef" * 5
        socks[1].sendto(garbage, ("127.0.0.1", port))
        sent.append((garbage, socks[1].getsockname()[1]))
        time.sleep(0.5)
    finally:
        for s in socks:
            s.close()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    t1 = time.time()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["recorded"]["records"] == len(sent)
    assert summary["frames"] == 120 and summary["skipped"] == {"bad-magic": 1}

    # an independent reader sees every datagram, in order, byte for byte, with its sender
    with open(out, "rb") as f:
        records = list(dpkt.pcap.Reader(f))
    assert len(records) == len(sent)
    times = []
    for (ts, pkt), (datagram, sport) in zip(records, sent, strict=True):
        ip = dpkt.ip.IP(pkt)
        assert socket.inet_ntoa(ip.src) == "127.0.0.1"
        assert ip.data.sport == sport and ip.data.dport == port
        assert bytes(ip.data.data) == datagram
        times.append(ts)
    assert t0 - 1 <= times[0] <= times[-1] <= t1 and times == sorted(times)

    # and csi-edge decodes exactly the frames that were sent
    res = read_capture(out)
    frames = [d for d, _ in sent if d[:4] == b"\x01\x00\x11\xc5"]
    assert len(res.frames) == len(frames)
    for i in (0, 1, 57, len(frames) - 1):
        assert res.frames.raw(i).tobytes() == frames[i][20:]
    assert dict(res.packet_counts) == {"edge_vitals": 4}
    assert res.skipped.as_dict() == {"bad-magic": 1}


def test_udp_record_with_a_host_name(tmp_path):
    """--udp localhost:PORT: the pcap's destination is the bound numeric address, and every
    datagram is recorded and decoded (a name in the pcap writer used to lose them all)."""
    out = tmp_path / "named.pcap"
    proc, first = _start_record(["--udp", "localhost:0", "-o", str(out), "--json"])
    port = int(re.search(r"UDP [^:]+:(\d+)", first).group(1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for k in range(5):
            s.sendto(encode_raw_frame(3, k, bytes(128)), ("127.0.0.1", port))
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    summary = json.loads(stdout)
    assert summary["recorded"]["records"] == 5 and summary["frames"] == 5
    with open(out, "rb") as f:
        dsts = {socket.inet_ntoa(dpkt.ip.IP(pkt).dst) for _, pkt in dpkt.pcap.Reader(f)}
    assert dsts == {"127.0.0.1"}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_udp_record_stops_with_a_clear_error_when_the_disk_is_full():
    """A write error (here ENOSPC from /dev/full) stops the recording with a message naming the
    file; it used to escape into the receive path, which closed the UDP listener and left the
    recording running with nothing recorded."""
    proc, first = _start_record(["--udp", "127.0.0.1:0", "-o", "/dev/full", "--duration", "20"])
    port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for k in range(20):  # more than the file's write buffer
            s.sendto(encode_raw_frame(1, k, bytes(2048)), ("127.0.0.1", port))
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    assert "/dev/full: cannot write: No space left on device" in stderr


def test_serial_record_keeps_every_line_byte_for_byte(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    out = tmp_path / "bench.rec"
    vals = ",".join(str(v) for v in range(-64, 64))
    good = [
        (
            f"CSI_DATA,{i},aa:bb:cc:dd:ee:ff,-50,11,1,7,0,1,1,1,0,0,0,-92,0,6,0,{i * 10_000},0,100,0,"
            f'128,0,"[{vals}]"'
        ).encode()
        for i in range(5)
    ]
    torn = good[3][:40] + good[3]  # the first copy lost its tail; the next line ran into it
    lines = [b"I (33) boot: ESP-IDF v5.2", *good[:3], torn, b"\xff\xfe garbage \x00", good[4]]
    proc, _ = _start_record(
        ["--serial", port, "--baud", "921600", "-o", str(out), "--duration", "1.5"]
    )
    try:
        time.sleep(0.3)
        os.write(master, b"\n".join(lines) + b"\n")
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, stderr
    assert "recorded 7 lines" in stdout
    recs = [r for batch in iter_recording(out) for r in batch]
    assert [r[2] for r in recs] == lines
    assert {r[1] for r in recs} == {port}
    res = read_capture(out)
    assert res.frames.meta["seq"].tolist() == [0, 1, 2, 3, 4]
    assert res.skipped["non-utf8"] == 1 and res.skipped["log-line"] == 1


def test_record_usage_errors_are_clear(tmp_path):
    for args in ([], ["--udp", ":0", "--serial", "/dev/null"]):
        r = subprocess.run(
            CLI + ["record", *args, "-o", str(tmp_path / "x.pcap")], capture_output=True, text=True
        )
        assert (
            r.returncode == 2 and "exactly one source" in r.stderr and "Traceback" not in r.stderr
        )
    r = subprocess.run(
        CLI + ["record", "--udp", "host:abc", "-o", str(tmp_path / "x.pcap")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "numeric port" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        CLI + ["record", "--udp", ":0", "-o", str(tmp_path / "no" / "dir" / "x.pcap")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr
