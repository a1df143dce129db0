"""Empty-room baselines from a capture or from live UDP (``csi-edge baseline``).

Frames are collected first (a capture file, or a plain blocking listen: the command does
nothing else meanwhile), then every node's baseline is loaded, extended with the new still
data and saved; a node whose data shows motion or a breathing-like signal is refused and keeps
what it had.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csi_edge.errors import DeviceError, InputError, NoDataError, file_error
from csi_edge.frames import FrameBatch


@dataclass
class BaselineOutcome:
    """One node's result: the calibration outcome, where its baseline is, whether complete."""

    result: object  #: csi_edge.vitals.room.NodeOutcome
    path: Path
    saved: bool
    complete: bool


def listen_frames(
    host: str, port: int, duration: float, say: Callable[[str], None] = lambda _l: None
) -> FrameBatch:
    """ADR-018 frames received on ``host:port`` for ``duration`` seconds, with a tqdm bar of
    seconds listened, datagrams and senders (on a terminal; silent in a pipe)."""
    from tqdm import tqdm

    from csi_edge.codecs.ruview import RuViewDecoder
    from csi_edge.sources.udp import RECV_SIZE, open_udp_socket

    where = f"{host}:{port}"
    try:
        sock = open_udp_socket(host, port)
    except OSError as e:
        raise DeviceError(f"--udp {where}: cannot listen: {e.strerror or e}") from None
    dec = RuViewDecoder()
    start = time.monotonic()
    batches, end = [], start + duration
    dgs, ts, srcs = [], [], []
    senders: set[str] = set()
    n = 0
    bar = tqdm(total=round(duration), desc="listening (keep the room empty and still)",
               unit="s", file=sys.stderr, disable=None, leave=False)  # fmt: skip
    with sock, bar:
        sock.settimeout(0.2)
        while (now := time.monotonic()) < end:
            bar.update(min(round(now - start), bar.total) - bar.n)
            try:
                d, addr = sock.recvfrom(RECV_SIZE)
            except TimeoutError:
                continue
            dgs.append(d)
            ts.append(time.time())
            srcs.append(addr[0])
            n += 1
            if addr[0] not in senders:
                senders.add(addr[0])
                bar.set_postfix_str(f"{n} datagrams from {len(senders)} sender(s)")
            if len(dgs) >= 256:
                batches.append(dec.decode(dgs, np.asarray(ts), srcs).frames)
                dgs, ts, srcs = [], [], []
                bar.set_postfix_str(f"{n} datagrams from {len(senders)} sender(s)")
    if dgs:
        batches.append(dec.decode(dgs, np.asarray(ts), srcs).frames)
    say(f"listened {duration:.0f} s on {where}: {n} datagram(s) from {len(senders)} sender(s)")
    return FrameBatch.concat(batches)


def calibrate_and_save(
    frames: FrameBatch,
    cal_dir: str | Path | None,
    what: str,
    node: str | None = None,
    key_of: Callable[[str, int], str] | None = None,
) -> list[BaselineOutcome]:
    """Extend and save each node's baseline from ``frames`` (``what`` names the input in
    errors; ``node`` keeps one node key; ``key_of(address, node_id)`` is the gateway's node
    identity, so a named node's baseline lands where the gateway looks); refused nodes keep
    what they had."""
    from csi_edge.vitals.baseline import baseline_path, load_baseline, save_baseline
    from csi_edge.vitals.room import calibrate_frames
    from csi_edge.vitals.run import frame_times

    if node:
        frames = frames[frames.node_keys(key_of) == node]
        if len(frames) == 0:
            raise NoDataError(f"--node {node}: no frames from that node")
    if len(frames) == 0:
        raise NoDataError(f"{what}: no CSI frames")
    times, src = frame_times(frames)
    if src == "none":
        raise InputError(f"{what}: frames carry no timestamps; cannot calibrate")
    baselines = {}
    keys = frames.node_keys(key_of)
    for key in sorted(set(keys.tolist())):
        try:
            baselines[key] = load_baseline(key, cal_dir)
        except ValueError as e:  # a corrupt baseline file, named in the message
            raise InputError(str(e)) from None
    out = []
    for r in calibrate_frames(frames, baselines, times, keys):
        path = baseline_path(r.node, cal_dir)
        if r.accepted:
            try:
                path = save_baseline(baselines[r.node], cal_dir)
            except OSError as e:
                raise file_error(path, e, "cannot save the baseline") from None
        out.append(
            BaselineOutcome(
                r, Path(path), r.accepted, bool(r.accepted and baselines[r.node].complete)
            )
        )
    return out
