"""After provisioning: watch the node boot (serial log) and the first UDP frames, then say in one
line whether it streams, or why not.

The serial log lines are the RuView node's (``docs/provisioning.md`` §5); frames are ADR-018 raw CSI (0xC5110001),
decoded with the gateway's own decoder.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RX_BANNER = re.compile(r"CSI Node \(ADR-018\).*?v(\S+).*?Node ID:\s*(\d+)")
RX_GOT_IP = re.compile(r"Got IP:\s*([\d.]+)")
RX_WIFI_FAIL = re.compile(r"Failed to connect to WiFi after (\d+) retries")
RX_STREAMING = re.compile(r"CSI streaming active\s*\S*\s*([\d.]+):(\d+)")
RX_CRASH = re.compile(
    r"Guru Meditation Error|LoadProhibited|stack overflow in task|abort\(\) was called"
)
RX_NO_BOOT = re.compile(r"invalid header: 0x|No bootable app partitions|load partition table error")
RX_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class WatchResult:
    streaming: bool
    line: str  # the one clear closing line
    node_id: int | None = None
    version: str | None = None
    ip: str | None = None
    frames: int = 0
    first_frame_s: float | None = None
    log: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d.pop("log")
        return d


def bind_udp(host: str, port: int) -> socket.socket | None:
    """Bind the gateway's UDP port before the reset so no first frame is missed (None if taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def _frame_node_ids(datagram: bytes) -> list[int]:
    """Node ids of the raw CSI frames in one datagram (the gateway's own decoder)."""
    from csi_edge.codecs.ruview import RuViewDecoder

    res = RuViewDecoder().decode([datagram], time.time(), "udp")
    return [int(n) for n in res.frames.meta["node_id"]]


def watch(
    read_line: Callable[[float], str | None],
    sock: socket.socket | None,
    *,
    node_id: int,
    target: tuple[str, int],
    timeout: float = 60.0,
    frame_timeout: float = 10.0,
    on_line: Callable[[str], None] | None = None,
) -> WatchResult:
    """Follow the boot log (``read_line(timeout)`` returns a line or None) and the UDP socket."""
    t0 = time.monotonic()
    res = WatchResult(False, "")
    streaming_at: float | None = None
    other_ids: set[int] = set()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if streaming_at is None:
            line = read_line(0.1)
            outcome = None if line is None else _log_line(res, line, target, on_line)
            if outcome == "failed":
                return res
            if outcome == "streaming":
                streaming_at = time.monotonic()
                deadline = min(deadline, streaming_at + frame_timeout) if sock else streaming_at
        if sock is not None:
            _drain(sock, res, node_id, other_ids, t0)
            if res.frames:
                if streaming_at is None:
                    # the serial log lags behind UDP: take in what the node printed before
                    # streaming (its banner with version and node id may be among it)
                    for _ in range(200):
                        line = read_line(0.05)
                        if line is None or _log_line(res, line, target, on_line) == "streaming":
                            break
                res.streaming = True
                res.line = (
                    f"streaming: node {node_id} → {target[0]}:{target[1]}, first frame "
                    f"{res.first_frame_s:.1f} s after reset"
                )
                return res
            if streaming_at is not None:
                time.sleep(0.02)
    if streaming_at is not None and sock is None:
        res.streaming = True
        res.line = (
            f"streaming (per the node's log): node {node_id} → {target[0]}:{target[1]}; "
            "UDP port busy here, frames not checked"
        )
    elif streaming_at is not None:
        if other_ids:
            res.line = (
                f"not streaming as node {node_id}: frames arrive from node id(s) "
                f"{sorted(other_ids)}: check --node-id"
            )
        else:
            res.line = (
                f"not streaming: the node reports streaming to {target[0]}:{target[1]} but "
                f"nothing arrived in {frame_timeout:g} s: check the firewall and target IP"
            )
    elif not res.log:
        res.line = (
            "not streaming: no boot output on the serial port: press reset on the board, "
            "or check the cable/port"
        )
    elif res.ip is None and any("connecting to SSID" in line for line in res.log):
        res.line = "not streaming: no IP address from the access point (DHCP): check the network"
    else:
        res.line = "not streaming: the node did not report 'CSI streaming active' in time"
    return res


def _log_line(
    res: WatchResult, line: str, target: tuple[str, int], on_line: Callable[[str], None] | None
) -> str | None:
    """Take one boot-log line into ``res`` (log, version, node id, IP). Returns ``"failed"``
    (``res.line`` says why), ``"streaming"`` (the node streams to ``target``) or None."""
    line = RX_ANSI.sub("", line).strip()
    if not line:
        return None
    res.log.append(line)
    if on_line:
        on_line(line)
    if m := RX_BANNER.search(line):
        res.version, res.node_id = m.group(1), int(m.group(2))
    elif m := RX_GOT_IP.search(line):
        res.ip = m.group(1)
    elif RX_WIFI_FAIL.search(line):
        res.line = "not streaming: Wi-Fi failed after 10 retries: check --ssid/--password"
        return "failed"
    elif RX_CRASH.search(line):
        res.line = f"not streaming: the node crashed ({line[:80]})"
        return "failed"
    elif RX_NO_BOOT.search(line):
        res.line = (
            "not streaming: the board has no bootable firmware "
            f"({line[:60]}): run csi-edge flash first"
        )
        return "failed"
    elif m := RX_STREAMING.search(line):
        if (m.group(1), int(m.group(2))) != target:
            res.line = (
                f"not streaming to this gateway: the node streams to "
                f"{m.group(1)}:{m.group(2)}, expected {target[0]}:{target[1]}"
            )
            return "failed"
        return "streaming"
    return None


def _drain(sock: socket.socket, res: WatchResult, node_id: int, other: set[int], t0: float) -> None:
    while True:
        try:
            data, _addr = sock.recvfrom(65536)
        except (BlockingIOError, InterruptedError):
            return
        for nid in _frame_node_ids(data):
            if nid == node_id:
                res.frames += 1
                if res.first_frame_s is None:
                    res.first_frame_s = time.monotonic() - t0
            else:
                other.add(nid)
