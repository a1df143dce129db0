"""RuView "ADR-018" UDP packet family: encoders and a vectorised, stateful decoder.

Wire format: ``docs/wire-formats.md`` §2 (all little-endian). Classify a
datagram by the u32 magic at offset 0:

==============  ======================================  =====================================
magic           packet                                  decoded to
==============  ======================================  =====================================
``0xC5110001``  raw CSI frame (20-byte header + CSI)    a row of :class:`~csi_edge.frames.FrameBatch`
``0xC5110002``  edge vitals (32)                        ``Packet("edge_vitals")``
``0xC5110003``  feature vector (48)                     ``Packet("feature_vector")``
``0xC5110004``  fused vitals (48) / WASM events (8+5n)  ``Packet("fused_vitals" | "wasm_events")``
``0xC5110005``  delta-compressed CSI                    ``Packet("compressed_csi")``
``0xC5110006``  feature state, CRC-32 (60)              ``Packet("feature_state")``
``0xC5118100``  mesh envelope, CRC-32                   ``Packet("mesh_health" | "mesh_anomaly_alert")``
==============  ======================================  =====================================

Raw frames are decoded with numpy over the whole batch (header fields gathered at fixed offsets,
CSI bytes copied per frame-length group with strided row views): live UDP ingest and 1M-frame
captures both go through :meth:`RuViewDecoder.decode_block`. Sibling packets are rare (about
1 per second per node) and are decoded one by one with :mod:`struct`.

Bad input never raises: each unusable datagram is counted under one skip reason:
``truncated``, ``oversized``, ``bad-header``, ``bad-magic``, ``unsupported-packet``,
``crc-mismatch``, ``no-previous-frame``, ``bad-rle``, ``unsupported-mesh-type``.

Usage::

    dec = RuViewDecoder()
    res = dec.decode([datagram, ...], t_rx=time.time(), sources="192.168.1.20")
    res.frames        # FrameBatch of raw CSI frames
    res.packets       # list[Packet] of sibling packets
    res.skipped       # SkipCounter
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from csi_edge.codecs.result import DecodeResult
from csi_edge.frames import IQ_ORDERS, FrameBatch, FrameFormat, Packet, empty_meta
from csi_edge.radio import mhz_to_channel

MAGIC_RAW = 0xC5110001
MAGIC_VITALS = 0xC5110002
MAGIC_FEATURE = 0xC5110003
MAGIC_FUSED = 0xC5110004  # fused vitals (48 bytes) or WASM events (8 + 5n): told apart by length
MAGIC_COMPRESSED = 0xC5110005
MAGIC_FEATURE_STATE = 0xC5110006
MAGIC_MESH = 0xC5118100
#: Magics RuView host code knows but the firmware does not emit (or we do not decode).
KNOWN_UNSUPPORTED = {0xC5110007, 0xC5110008, 0xC5110084, 0xC511A110}

HEADER_LEN = 20
MAX_CSI_BYTES = 2048
MAX_FRAME_LEN = HEADER_LEN + MAX_CSI_BYTES  # 2068: receive buffers must hold this
MAX_COMPRESSED = 1024

#: The 20-byte raw-frame header (struct ``<IBBHIIbbH``) as a numpy dtype.
HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u4"),
        ("node_id", "u1"),
        ("n_antennas", "u1"),
        ("n_subcarriers", "<u2"),
        ("freq_mhz", "<u4"),
        ("seq", "<u4"),
        ("rssi", "i1"),
        ("noise", "i1"),
        ("reserved", "<u2"),
    ]
)
assert HEADER_DTYPE.itemsize == HEADER_LEN

_RAW_HDR = struct.Struct("<IBBHIIbbH")
_VITALS = struct.Struct("<IBBHIbB2xffII")
_FEATURE = struct.Struct("<IBBHq8f")
_FUSED = struct.Struct("<IBBHIbBBBffIfffBBHI")
_WASM_HDR = struct.Struct("<IBBH")
_WASM_EVENT = struct.Struct("<Bf")
_COMPRESSED_HDR = struct.Struct("<IBBHH")
_FEATURE_STATE = struct.Struct("<IBBHQ9fHHI")
_MESH_HDR = struct.Struct("<IBBBBIHH")
_MESH_HEALTH = struct.Struct("<8sQBBBbHHHH")
_MESH_ANOMALY = struct.Struct("<8sQBBHff")
_U32 = struct.Struct("<I")
MESH_HEALTH, MESH_ANOMALY_ALERT = 0x06, 0x07

for _s, _n in ((_VITALS, 32), (_FEATURE, 48), (_FUSED, 48), (_FEATURE_STATE, 60), (_MESH_HDR, 16)):
    assert _s.size == _n, (_s.format, _s.size)


# ---------------------------------------------------------------------------------------------
# encoders (simulated nodes, the emulated board, tests, benchmarks)
def encode_raw_frame(
    node_id: int,
    seq: int,
    csi: np.ndarray | bytes,
    freq_mhz: int = 2437,
    rssi: int = -50,
    noise: int = -92,
    n_antennas: int = 1,
) -> bytes:
    """A raw CSI frame ``0xC5110001``: 20-byte header + the int8 CSI buffer verbatim.

    ``csi`` is the raw ESP-IDF buffer (int8, imaginary first in each pair), flat or ``[n, 2]``.
    """
    raw = (
        np.asarray(csi, np.int8).tobytes() if not isinstance(csi, bytes | bytearray) else bytes(csi)
    )
    if len(raw) % (2 * max(n_antennas, 1)):
        raise ValueError(f"CSI length {len(raw)} is not a multiple of 2*n_antennas")
    n_sub = len(raw) // (2 * max(n_antennas, 1))
    return (
        _RAW_HDR.pack(
            MAGIC_RAW, node_id, n_antennas, n_sub, freq_mhz, seq & 0xFFFFFFFF, rssi, noise, 0
        )
        + raw
    )


def encode_edge_vitals(
    node_id: int,
    *,
    presence: bool = False,
    fall: bool = False,
    motion: bool = False,
    breathing_bpm: float = 0.0,
    heart_bpm: float = 0.0,
    rssi: int = -50,
    n_persons: int = 0,
    motion_energy: float = 0.0,
    presence_score: float = 0.0,
    timestamp_ms: int = 0,
) -> bytes:
    """Edge vitals ``0xC5110002`` (32 bytes). BPM 0 means unknown."""
    flags = int(presence) | int(fall) << 1 | int(motion) << 2
    return _VITALS.pack(
        MAGIC_VITALS, node_id, flags, round(breathing_bpm * 100), round(heart_bpm * 10000), rssi,
        n_persons, motion_energy, presence_score, timestamp_ms & 0xFFFFFFFF, 0,
    )  # fmt: skip


def encode_feature_vector(
    node_id: int, seq: int, timestamp_us: int, features: Sequence[float]
) -> bytes:
    """Feature vector ``0xC5110003`` (48 bytes, 8 floats)."""
    if len(features) != 8:
        raise ValueError("a feature vector has 8 floats")
    return _FEATURE.pack(MAGIC_FEATURE, node_id, 0, seq & 0xFFFF, timestamp_us, *features)


def encode_fused_vitals(
    node_id: int,
    *,
    flags: int = 0,
    breathing_bpm: float = 0.0,
    heart_bpm: float = 0.0,
    rssi: int = -50,
    n_persons: int = 0,
    mmwave_type: int = 0,
    fusion_confidence: int = 0,
    motion_energy: float = 0.0,
    presence_score: float = 0.0,
    timestamp_ms: int = 0,
    mmwave_hr: float = 0.0,
    mmwave_br: float = 0.0,
    distance_cm: float = 0.0,
    targets: int = 0,
    mmwave_confidence: int = 0,
) -> bytes:
    """Fused vitals ``0xC5110004`` (48 bytes; flags bit3 = mmWave presence)."""
    return _FUSED.pack(
        MAGIC_FUSED, node_id, flags, round(breathing_bpm * 100), round(heart_bpm * 10000), rssi,
        n_persons, mmwave_type, fusion_confidence, motion_energy, presence_score,
        timestamp_ms & 0xFFFFFFFF, mmwave_hr, mmwave_br, distance_cm, targets, mmwave_confidence, 0, 0,
    )  # fmt: skip


def encode_wasm_events(node_id: int, slot: int, events: Sequence[tuple[int, float]]) -> bytes:
    """WASM events ``0xC5110004``: 8-byte header then ``event_count`` 5-byte ``<Bf`` events."""
    body = b"".join(_WASM_EVENT.pack(t, v) for t, v in events)
    return _WASM_HDR.pack(MAGIC_FUSED, node_id, slot, len(events)) + body


def rle_xor(current: bytes, previous: bytes) -> bytes:
    """RLE (value, run 1..255) pairs over ``current XOR previous`` (the firmware's codec)."""
    x = (np.frombuffer(current, np.uint8) ^ np.frombuffer(previous, np.uint8)).tolist()
    out = bytearray()
    i, n = 0, len(x)
    while i < n:
        v, run = x[i], 1
        while i + run < n and x[i + run] == v and run < 255:
            run += 1
        out += bytes((v, run))
        i += run
    return bytes(out)


def encode_compressed(
    node_id: int, channel: int, current: bytes, previous: bytes, *, only_if_smaller: bool = True
) -> bytes | None:
    """Delta-compressed CSI ``0xC5110005`` of ``current`` against the node's ``previous`` buffer.

    Like the firmware, returns ``None`` (nothing sent) when the lengths differ or when the
    compressed form is not smaller than the original (unless ``only_if_smaller=False``).
    """
    current, previous = bytes(current), bytes(previous)
    if len(current) != len(previous) or not current:
        return None
    comp = rle_xor(current, previous)
    if (only_if_smaller and len(comp) >= len(current)) or len(comp) > MAX_COMPRESSED:
        return None
    return _COMPRESSED_HDR.pack(MAGIC_COMPRESSED, node_id, channel, len(current), len(comp)) + comp


def encode_feature_state(
    node_id: int,
    seq: int,
    timestamp_us: int,
    *,
    mode: int = 0,
    motion: float = 0.0,
    presence: float = 0.0,
    respiration_bpm: float = 0.0,
    respiration_conf: float = 0.0,
    heartbeat_bpm: float = 0.0,
    heartbeat_conf: float = 0.0,
    anomaly: float = 0.0,
    env_shift: float = 0.0,
    node_coherence: float = 0.0,
    quality_flags: int = 0,
) -> bytes:
    """Feature state ``0xC5110006`` (60 bytes) with its CRC-32 over bytes 0-55."""
    body = _FEATURE_STATE.pack(
        MAGIC_FEATURE_STATE, node_id, mode, seq & 0xFFFF, timestamp_us, motion, presence,
        respiration_bpm, respiration_conf, heartbeat_bpm, heartbeat_conf, anomaly, env_shift,
        node_coherence, quality_flags, 0, 0,
    )[:56]  # fmt: skip
    return body + _U32.pack(zlib.crc32(body))


def encode_mesh(
    msg_type: int,
    payload: bytes,
    *,
    version: int = 1,
    sender_role: int = 0,
    auth_class: int = 0,
    epoch: int = 0,
) -> bytes:
    """Mesh envelope ``0xC5118100``: 16-byte header, payload, CRC-32 over header+payload."""
    if len(payload) > 256:
        raise ValueError("mesh payload is at most 256 bytes")
    body = (
        _MESH_HDR.pack(
            MAGIC_MESH, version, msg_type, sender_role, auth_class, epoch, len(payload), 0
        )
        + payload
    )
    return body + _U32.pack(zlib.crc32(body))


def encode_mesh_health(
    node: bytes = b"node0001",
    local_us: int = 0,
    *,
    role: int = 0,
    channel: int = 6,
    bw: int = 0,
    noise: int = -92,
    pkt_yield: int = 0,
    sync_error: int = 0,
    flags: int = 0,
    **envelope,
) -> bytes:
    """Mesh HEALTH (type 0x06) in its envelope (48 bytes)."""
    payload = _MESH_HEALTH.pack(
        node, local_us, role, channel, bw, noise, pkt_yield, sync_error, flags, 0
    )
    return encode_mesh(MESH_HEALTH, payload, **envelope)


def encode_mesh_anomaly(
    node: bytes = b"node0001",
    local_us: int = 0,
    *,
    severity: int = 1,
    reason: int = 3,
    anomaly: float = 0.0,
    motion: float = 0.0,
    **envelope,
) -> bytes:
    """Mesh ANOMALY_ALERT (type 0x07) in its envelope (48 bytes)."""
    payload = _MESH_ANOMALY.pack(node, local_us, severity, reason, 0, anomaly, motion)
    return encode_mesh(MESH_ANOMALY_ALERT, payload, **envelope)


# ---------------------------------------------------------------------------------------------
# sibling decoders: (data) -> (kind, node_id, fields) or a skip reason string
def _decode_vitals(d: bytes):
    (_, node, flags, br, hr, rssi, npers, motion, presence, ts, _r) = _VITALS.unpack(d)
    return "edge_vitals", node, {
        "presence": bool(flags & 1), "fall": bool(flags & 2), "motion": bool(flags & 4),
        "breathing_bpm": br / 100 if br else None, "heart_bpm": hr / 10000 if hr else None,
        "rssi": rssi, "n_persons": npers, "motion_energy": motion, "presence_score": presence,
        "timestamp_ms": ts,
    }  # fmt: skip


def _decode_feature(d: bytes):
    _, node, _r, seq, ts_us, *feats = _FEATURE.unpack(d)
    return "feature_vector", node, {"seq": seq, "timestamp_us": ts_us, "features": feats}


def _decode_fused(d: bytes):
    (_, node, flags, br, hr, rssi, npers, mtype, fconf, motion, presence, ts,
     mhr, mbr, dist, targets, mconf, _r1, _r2) = _FUSED.unpack(d)  # fmt: skip
    return "fused_vitals", node, {
        "presence": bool(flags & 1), "fall": bool(flags & 2), "motion": bool(flags & 4),
        "mmwave_presence": bool(flags & 8),
        "breathing_bpm": br / 100 if br else None, "heart_bpm": hr / 10000 if hr else None,
        "rssi": rssi, "n_persons": npers, "mmwave_type": mtype, "fusion_confidence": fconf,
        "motion_energy": motion, "presence_score": presence, "timestamp_ms": ts,
        "mmwave_hr": mhr, "mmwave_br": mbr, "distance_cm": dist, "targets": targets,
        "mmwave_confidence": mconf,
    }  # fmt: skip


def _decode_wasm(d: bytes):
    _, node, slot, count = _WASM_HDR.unpack_from(d)
    events = [list(_WASM_EVENT.unpack_from(d, 8 + 5 * i)) for i in range(count)]
    return "wasm_events", node, {"slot": slot, "events": events}


def _decode_feature_state(d: bytes):
    if zlib.crc32(d[:56]) != _U32.unpack_from(d, 56)[0]:
        return "crc-mismatch"
    (_, node, mode, seq, ts_us, motion, presence, rbpm, rconf, hbpm, hconf, anomaly, env,
     coh, qflags, _r, _crc) = _FEATURE_STATE.unpack(d)  # fmt: skip
    return "feature_state", node, {
        "mode": mode, "seq": seq, "timestamp_us": ts_us, "motion": motion, "presence": presence,
        "respiration_bpm": rbpm, "respiration_conf": rconf, "heartbeat_bpm": hbpm,
        "heartbeat_conf": hconf, "anomaly": anomaly, "env_shift": env, "node_coherence": coh,
        "quality_flags": qflags,
    }  # fmt: skip


def _node_name(raw: bytes) -> str:
    """The 8-byte mesh node id: text when printable, else hex."""
    name = raw.rstrip(b"\0")
    return name.decode("ascii") if name and all(32 <= b < 127 for b in name) else raw.hex()


def _decode_mesh(d: bytes):
    _, version, mtype, role, auth, epoch, plen, _r = _MESH_HDR.unpack_from(d)
    if plen > 256:
        return "bad-header"
    need = 16 + plen + 4
    if len(d) < need:
        return "truncated"
    if len(d) > need:
        return "oversized"
    if zlib.crc32(d[: 16 + plen]) != _U32.unpack_from(d, 16 + plen)[0]:
        return "crc-mismatch"
    env = {"version": version, "sender_role": role, "auth_class": auth, "epoch": epoch}
    payload = d[16 : 16 + plen]
    if mtype == MESH_HEALTH and plen >= _MESH_HEALTH.size:
        node, us, nrole, ch, bw, noise, pyield, serr, flags, _ = _MESH_HEALTH.unpack_from(payload)
        return "mesh_health", -1, {
            **env, "node": _node_name(node), "local_us": us, "role": nrole, "channel": ch,
            "bw": bw, "noise": noise, "pkt_yield": pyield, "sync_error": serr, "flags": flags,
        }  # fmt: skip
    if mtype == MESH_ANOMALY_ALERT and plen >= _MESH_ANOMALY.size:
        node, us, sev, reason, _, anomaly, motion = _MESH_ANOMALY.unpack_from(payload)
        return "mesh_anomaly_alert", -1, {
            **env, "node": _node_name(node), "local_us": us, "severity": sev,
            "reason": reason, "anomaly": anomaly, "motion": motion,
        }  # fmt: skip
    if mtype in (MESH_HEALTH, MESH_ANOMALY_ALERT):
        return "truncated"
    return "unsupported-mesh-type"


_FIXED = {
    MAGIC_VITALS: (32, _decode_vitals),
    MAGIC_FEATURE: (48, _decode_feature),
    MAGIC_FEATURE_STATE: (60, _decode_feature_state),
}


def decode_sibling(d: bytes):
    """Decode one non-raw datagram: ``(kind, node_id, fields)`` or a skip-reason string.

    Compressed CSI needs per-node state and is handled by :class:`RuViewDecoder`.
    """
    if len(d) < 4:
        return "truncated"
    magic = _U32.unpack_from(d)[0]
    fixed = _FIXED.get(magic)
    if fixed is not None:
        size, fn = fixed
        if len(d) < size:
            return "truncated"
        if len(d) > size:
            return "oversized"
        return fn(d)
    if magic == MAGIC_FUSED:
        if len(d) >= 8 and len(d) == 8 + 5 * struct.unpack_from("<H", d, 6)[0]:
            return _decode_wasm(d)
        if len(d) == 48:
            return _decode_fused(d)
        return "truncated" if len(d) < 48 else "oversized"
    if magic == MAGIC_MESH:
        return "truncated" if len(d) < 20 else _decode_mesh(d)
    if magic == MAGIC_RAW:  # shorter than its 20-byte header (longer ones never get here)
        return "truncated"
    if magic in KNOWN_UNSUPPORTED:
        return "unsupported-packet"
    return "bad-magic"


def rle_expand(comp: bytes, out_len: int) -> bytes | None:
    """Expand (value, run) pairs; ``None`` if the runs do not add up to ``out_len`` exactly."""
    if len(comp) % 2:
        return None
    a = np.frombuffer(comp, np.uint8).reshape(-1, 2)
    runs = a[:, 1].astype(np.int64)
    if (runs == 0).any() or int(runs.sum()) != out_len:
        return None
    return np.repeat(a[:, 0], runs).tobytes()


_PAD = bytes(HEADER_LEN)
# channel number by frequency in MHz (a lookup is one gather; np.where chains cost ~50 µs/call)
_CHANNEL_LUT = mhz_to_channel(np.arange(6000))


_META_TEMPLATE = empty_meta(1)
_META_TEMPLATE["fmt"] = FrameFormat.RUVIEW_RAW


def _meta(hdr: np.ndarray, need: np.ndarray, t_rx: np.ndarray, src_idx: np.ndarray) -> np.ndarray:
    """FrameBatch metadata rows from validated raw-frame headers."""
    meta = np.repeat(_META_TEMPLATE, len(hdr))  # every field 'unknown', then fill the known ones
    meta["t_rx"] = t_rx
    meta["src"] = src_idx
    meta["node_id"] = hdr["node_id"]
    meta["seq"] = hdr["seq"]
    meta["rssi"] = hdr["rssi"]
    meta["noise"] = hdr["noise"]
    f = hdr["freq_mhz"]
    meta["freq_mhz"] = np.where(f <= 0xFFFF, f, 0)
    meta["channel"] = _CHANNEL_LUT[np.minimum(f, len(_CHANNEL_LUT) - 1)]
    meta["n_pairs"] = need // 2
    return meta


# ---------------------------------------------------------------------------------------------
class RuViewDecoder:
    """Stateful decoder of ADR-018 datagrams (state: each node's last raw CSI buffers).

    The state is only needed for delta-compressed CSI (``0xC5110005``), which encodes a frame
    as ``current XOR previous`` of the same node with no key frame. The firmware sends the raw
    frame too, usually first; so a compressed packet is decoded against the raw frame *before*
    the node's latest one when that reproduces the latest one exactly (``matches_raw: true``),
    else against the latest raw frame of the same length (the compressed packet overtook its
    raw frame). Nodes are keyed by (source, node_id).

    One instance per ingest stream; not thread-safe.
    """

    def __init__(self, recent_batches: int = 64) -> None:
        self._prev: dict[tuple[str, int], list[bytes]] = {}  # last two raw CSI buffers per node
        # Until a node sends compressed CSI, only the last few batches are kept (O(1) per batch:
        # the live path decodes small batches, where per-node bookkeeping would dominate).
        self._recent: deque[FrameBatch] = deque(maxlen=recent_batches)
        self._compressed_seen = False

    # -- entry point for lists of datagrams (UDP ingest) --------------------------------------
    def decode(
        self,
        datagrams: Sequence[bytes],
        t_rx: np.ndarray | float,
        sources: Sequence[str] | str,
        iq_order: str = "imag-first",
    ) -> DecodeResult:
        """Decode a batch of datagrams received at ``t_rx`` (scalar or one per datagram) from
        ``sources`` (one name for all, or one per datagram, e.g. the sender's IP).

        ``iq_order`` is validated only: frames keep the raw int8 buffer and the I/Q order is
        applied when complex values are asked for (:meth:`FrameBatch.by_length`, ``csi_edge.layout``).
        """
        if iq_order not in IQ_ORDERS:
            raise ValueError(f"iq_order must be one of {IQ_ORDERS}, got {iq_order!r}")
        n = len(datagrams)
        if n == 0:
            return DecodeResult()
        t = np.broadcast_to(np.asarray(t_rx, np.float64), (n,))
        if isinstance(sources, str):
            table, src_idx = [sources], np.zeros(n, np.uint32)
        else:
            if len(sources) != n:
                raise ValueError("sources must be one string or one per datagram")
            table = list(dict.fromkeys(sources))
            if len(table) == 1:
                src_idx = np.zeros(n, np.uint32)
            else:
                index = {name: i for i, name in enumerate(table)}
                src_idx = np.fromiter(map(index.__getitem__, sources), np.uint32, n)
        # Small batches are the live path: per-call overhead matters more than per-byte speed,
        # so headers and CSI are joined in Python (one slice per datagram, no numpy views).
        lens = np.fromiter(map(len, datagrams), np.int64, n)
        heads = b"".join([d[:HEADER_LEN] if len(d) >= HEADER_LEN else _PAD for d in datagrams])
        hdr_all = np.frombuffer(heads, HEADER_DTYPE)
        res = DecodeResult()
        is_raw = (hdr_all["magic"] == MAGIC_RAW) & (lens >= HEADER_LEN)
        all_raw = bool(is_raw.all())
        cidx = np.arange(n) if all_raw else np.flatnonzero(is_raw)
        hdr, need, good = self._check_raw(res, hdr_all if all_raw else hdr_all[cidx], lens[cidx])
        if not good.all():
            cidx = cidx[good]
        exact = lens[cidx] == HEADER_LEN + need
        if exact.all():
            csi = b"".join([datagrams[i][HEADER_LEN:] for i in cidx.tolist()])
        else:
            csi = b"".join(
                [
                    datagrams[i][HEADER_LEN : HEADER_LEN + k]
                    for i, k in zip(cidx.tolist(), need.tolist(), strict=True)
                ]
            )
        offsets = np.zeros(len(cidx) + 1, np.int64)
        np.cumsum(need, out=offsets[1:])
        meta = _meta(hdr, need, t[cidx], src_idx[cidx])
        res.frames = FrameBatch(meta, np.frombuffer(csi, np.int8), offsets, table)
        if not all_raw:
            sib = np.flatnonzero(~is_raw)
            self._siblings(res, lambda j: bytes(datagrams[j]), sib, t, src_idx, table, cidx)
        self._after(res.frames)
        return res

    # -- the vectorised core, shared with the pcap reader -------------------------------------
    def decode_block(
        self,
        buf: np.ndarray,
        starts: np.ndarray,
        lens: np.ndarray,
        t_rx: np.ndarray,
        src_idx: np.ndarray,
        sources: list[str],
    ) -> DecodeResult:
        """Decode datagrams ``buf[starts[i] : starts[i] + lens[i]]`` (uint8 buffer, int64 arrays).

        ``t_rx`` float64 and ``src_idx`` (indices into ``sources``) give one value per datagram.
        """
        res = DecodeResult()
        n = len(starts)
        if n == 0:
            res.frames = FrameBatch.empty(sources)
            return res
        starts = np.asarray(starts, np.int64)
        lens = np.asarray(lens, np.int64)
        magic = np.zeros(n, np.uint32)
        ok4 = lens >= 4
        if ok4.all():
            magic[:] = np.ascontiguousarray(sliding_window_view(buf, 4)[starts]).view("<u4").ravel()
        elif ok4.any():
            magic[ok4] = (
                np.ascontiguousarray(sliding_window_view(buf, 4)[starts[ok4]]).view("<u4").ravel()
            )
        is_raw = (magic == MAGIC_RAW) & (lens >= HEADER_LEN)
        cidx = np.flatnonzero(is_raw)
        if len(cidx):
            rows = sliding_window_view(buf, HEADER_LEN)[starts[cidx]]
            hdr = np.ascontiguousarray(rows).view(HEADER_DTYPE).ravel()
        else:
            hdr = np.zeros(0, HEADER_DTYPE)
        hdr, need, good = self._check_raw(res, hdr, lens[cidx])
        cidx = cidx[good]
        res.frames = self._frames(buf, starts[cidx], hdr, need, t_rx[cidx], src_idx[cidx], sources)
        sib = np.flatnonzero(~is_raw)
        if len(sib):

            def get(j: int) -> bytes:
                s = int(starts[j])
                return buf[s : s + int(lens[j])].tobytes()

            self._siblings(res, get, sib, t_rx, src_idx, sources, cidx)
        self._after(res.frames)
        return res

    def _after(self, frames: FrameBatch) -> None:
        if self._compressed_seen:
            self._remember(frames)
        elif len(frames):
            self._recent.append(frames)

    @staticmethod
    def _check_raw(res: DecodeResult, hdr: np.ndarray, clen: np.ndarray):
        """Validate raw-frame headers: (good headers, CSI byte counts, good mask); count skips."""
        n_ant = hdr["n_antennas"].astype(np.int64)
        need = 2 * n_ant * hdr["n_subcarriers"].astype(np.int64)
        bad_hdr = (n_ant == 0) & (hdr["n_subcarriers"] > 0)
        oversized = ~bad_hdr & ((need > MAX_CSI_BYTES) | (clen > MAX_FRAME_LEN))
        truncated = ~bad_hdr & ~oversized & (clen < HEADER_LEN + need)
        good = ~(bad_hdr | oversized | truncated)
        if good.all():
            return hdr, need, good
        for reason, mask, detail in (
            ("bad-header", bad_hdr, "n_antennas is 0 with subcarriers"),
            ("oversized", oversized, f"raw frame beyond {MAX_FRAME_LEN} bytes"),
            ("truncated", truncated, "raw frame shorter than 20 + 2*n_antennas*n_subcarriers"),
        ):
            k = int(mask.sum())
            if k:
                res.skipped.skip(reason, detail, k)
        return hdr[good], need[good], good

    @staticmethod
    def _frames(buf, fstarts, hdr, need, t_rx, src_idx, sources) -> FrameBatch:
        k = len(fstarts)
        meta = _meta(hdr, need, t_rx, src_idx)
        offsets = np.zeros(k + 1, np.int64)
        np.cumsum(need, out=offsets[1:])
        iq = np.empty(int(offsets[-1]), np.uint8)
        if k and offsets[-1]:
            lengths = np.flatnonzero(np.bincount(need))  # need <= 2048: bincount, no sort
            for length in lengths.tolist():
                if length == 0:
                    continue
                g = np.flatnonzero(need == length) if len(lengths) > 1 else slice(None)
                # strided row views: each frame's CSI is copied as one row (no per-byte index)
                rows = sliding_window_view(buf, length)[fstarts[g] + HEADER_LEN]
                out = as_strided(
                    iq, shape=(len(iq) - length + 1, length), strides=(1, 1), writeable=True
                )
                out[offsets[:-1][g]] = rows
        return FrameBatch(meta, iq.view(np.int8), offsets, list(sources))

    def _siblings(self, res, get, sib, t_rx, src_idx, sources, raw_pos) -> None:
        by_node = None  # (src, node) -> datagram positions / frame indices of raw frames, lazily
        for j in sib.tolist():
            d = get(j)
            source = sources[int(src_idx[j])]
            if len(d) >= 4 and _U32.unpack_from(d)[0] == MAGIC_COMPRESSED:
                if by_node is None:
                    by_node = _group_raw(res.frames, raw_pos)
                out = self._compressed(d, source, int(src_idx[j]), j, res.frames, by_node)
            else:
                out = decode_sibling(d)
            if isinstance(out, str):
                res.skipped.skip(out, f"from {source}")
                continue
            kind, node, fields = out
            res.add_packet(Packet(kind, float(t_rx[j]), source, int(node), fields))

    def _compressed(self, d: bytes, source: str, src: int, pos: int, frames: FrameBatch, by_node):
        if len(d) < _COMPRESSED_HDR.size:
            return "truncated"
        _, node, channel, orig_len, comp_len = _COMPRESSED_HDR.unpack_from(d)
        if comp_len > MAX_COMPRESSED or orig_len > MAX_CSI_BYTES:
            return "oversized"
        if len(d) < 10 + comp_len:
            return "truncated"
        if len(d) > 10 + comp_len:
            return "oversized"
        delta = rle_expand(d[10:], orig_len)
        if delta is None:
            return "bad-rle"
        # the node's raw CSI buffers before this datagram: earlier batches, then this batch
        if not self._compressed_seen:
            self._compressed_seen = True
            for old in self._recent:
                self._remember(old)
            self._recent.clear()
        history = list(self._prev.get((source, node), []))
        entry = by_node.get((src, node))
        if entry is not None:
            positions, fidx = entry
            upto = int(np.searchsorted(positions, pos))
            history += [frames.raw(i).tobytes() for i in fidx[max(0, upto - 2) : upto].tolist()]
        history = [h for h in history[-2:] if len(h) == orig_len]
        if not history:
            return "no-previous-frame"
        dx = np.frombuffer(delta, np.uint8)
        ref = "last-raw"
        csi = (dx ^ np.frombuffer(history[-1], np.uint8)).tobytes()
        matches = False
        if len(history) == 2:
            older = (dx ^ np.frombuffer(history[0], np.uint8)).tobytes()
            if older == history[1]:
                csi, ref, matches = older, "previous-raw", True
        return "compressed_csi", node, {
            "channel": channel, "orig_len": orig_len, "comp_len": comp_len, "reference": ref,
            "matches_raw": matches, "n_pairs": orig_len // 2, "csi_hex": csi.hex(),
        }  # fmt: skip

    def _remember(self, frames: FrameBatch) -> None:
        """Keep each node's last two raw CSI buffers for later compressed packets.

        Looks at the batch's tail first (where every busy node's last frames are), and scans
        the whole batch only for nodes missing there: no sort of the whole batch.
        """
        k = len(frames)
        if k == 0:
            return
        key = frames.meta["src"].astype(np.int64) << 16 | frames.meta["node_id"].astype(np.int64)
        try:
            keys = np.unique(key, sorted=False).tolist()
        except TypeError:  # numpy < 2.3
            keys = np.unique(key).tolist()
        tail0 = max(0, k - max(1024, 16 * len(keys)))
        tail = key[tail0:]
        for g in keys:
            hits = np.flatnonzero(tail == g)[-2:] + tail0
            if len(hits) < 2:
                hits = np.flatnonzero(key == g)[-2:]
            name = (frames.sources[g >> 16], g & 0xFFFF)
            hist = [] if len(hits) == 2 else self._prev.get(name, [])[-1:]
            self._prev[name] = hist + [frames.raw(int(i)).tobytes() for i in hits]

    def reset(self) -> None:
        """Forget every node's previous frames (e.g. between unrelated captures)."""
        self._prev.clear()
        self._recent.clear()
        self._compressed_seen = False


def _group_raw(frames: FrameBatch, raw_pos: np.ndarray) -> dict:
    """(src index, node id) -> (datagram positions, frame indices) of this batch's raw frames."""
    out: dict = {}
    if len(frames) == 0:
        return out
    key = frames.meta["src"].astype(np.int64) << 16 | frames.meta["node_id"].astype(np.int64)
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for grp in np.split(order, bounds):
        g = int(key[grp[0]])
        out[(g >> 16, g & 0xFFFF)] = (raw_pos[grp], grp)
    return out
