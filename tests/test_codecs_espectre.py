"""ESPectre captures: its data-collection .npz (written here exactly as its collector does:
``np.savez_compressed`` of the documented keys) and its UDP stream datagrams."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from csi_edge.capture import detect_format, read_capture
from csi_edge.codecs.espectre import STREAM_MAGIC, decode_stream
from csi_edge.errors import InputError
from csi_edge.frames import FrameFormat

RNG = np.random.default_rng(3)
CSI = RNG.integers(-60, 60, (50, 128)).astype(np.int8)


def sample(path, **over):
    doc = {
        "csi_data": CSI,
        "num_subcarriers": 64,
        "label": "wave",
        "chip": "s3",
        "collected_at": "2025-03-01T10:00:10",
        "duration_ms": 4900.0,
        "format_version": "1.0",
        "gain_locked": True,
    }
    doc.update(over)
    doc = {k: v for k, v in doc.items() if v is not None}
    np.savez_compressed(path, **doc)
    return path


def test_npz_without_timestamps_spreads_frames_over_duration(tmp_path):
    p = sample(tmp_path / "wave_s3_64sc_20250301_100010.npz")
    assert detect_format(p) == "espectre"
    res = read_capture(p)
    f = res.frames
    assert len(f) == 50 and np.array_equal(f.raw(7), CSI[7])
    assert set(f.meta["n_pairs"].tolist()) == {64} and set(f.meta["fmt"]) == {FrameFormat.ESPECTRE}
    t = f.meta["t_rx"]
    end = 1740823210.0  # 2025-03-01T10:00:10 read as UTC
    assert t[0] == pytest.approx(end - 4.9) and t[-1] == pytest.approx(end)
    assert np.allclose(np.diff(t), 0.1)
    assert res.notes == {"times-spread-over-duration": 50}
    assert f.extra["label"][0] == "wave" and f.extra["chip"][0] == "s3"
    assert f.extra["gain_locked"][0] == "True"
    assert (f.meta["rssi"] == 0).all() and (f.meta["seq"] == -1).all()  # not stored: unknown


def test_npz_with_timestamps_rssi_and_noise(tmp_path):
    ts = np.arange(50, dtype=np.uint32) * 20 + 1000
    rssi = np.full(50, -57, np.int8)
    p = sample(tmp_path / "old.npz", timestamps=ts, rssi=rssi, noise_floor=np.full(50, -95, np.int8),
               collected_at=None, duration_ms=None, chip=None)  # fmt: skip
    res = read_capture(p)
    assert res.frames.meta["t_rx"].tolist() == pytest.approx((ts / 1000).tolist())
    assert set(res.frames.meta["rssi"].tolist()) == {-57} and not res.notes
    assert set(res.frames.meta["noise"].tolist()) == {-95}


def test_npz_inconsistent_is_a_clear_error(tmp_path):
    p = sample(tmp_path / "bad.npz", num_subcarriers=52)
    with pytest.raises(InputError, match=r"bad\.npz: csi_data has 128 values per packet but "):
        read_capture(p)


def test_csi_edge_npz_output_is_not_taken_for_espectre(tmp_path):
    from csi_edge.cli import main

    src = sample(tmp_path / "s.npz")
    out = tmp_path / "frames.npz"
    with pytest.raises(SystemExit) as e:
        main(["decode", str(src), "-o", str(out)])
    assert e.value.code == 0
    z = np.load(out)
    assert z["extra_columns"].tolist() == ["label", "chip", "gain_locked"]
    assert z["extra"][0].tolist() == ["wave", "s3", "True"]
    assert not __import__("csi_edge.codecs.espectre", fromlist=["x"]).is_espectre_npz(
        out.read_bytes()[:4], out
    )


def test_cli_summary_says_times_were_spread(tmp_path, capsys):
    from csi_edge.cli import main

    p = sample(tmp_path / "s.npz")
    with pytest.raises(SystemExit):
        main(["decode", str(p), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["frames"] == 50 and doc["notes"] == {"times-spread-over-duration": 50}
    with pytest.raises(SystemExit):
        main(["decode", str(p)])
    assert "times-spread-over-duration 50" in capsys.readouterr().out


def test_stream_datagrams_v1_and_v2():
    body = CSI[0].tobytes()
    v2 = struct.pack("<HBBBH", STREAM_MAGIC, 3, 1, 9, 64) + body
    v1 = struct.pack("<HBBH", STREAM_MAGIC, 6, 10, 64) + body
    res = decode_stream(
        [v2, v1, b"XX" + v2[2:], v2[:-1], b"\x53"], [1.0, 2.0, 3.0, 4.0, 5.0], "10.0.0.9"
    )
    f = res.frames
    assert len(f) == 2 and np.array_equal(f.raw(1), CSI[0])
    assert f.meta["seq"].tolist() == [9, 10] and f.meta["t_rx"].tolist() == [1.0, 2.0]
    assert f.extra["chip"].tolist() == ["s3", "c6"]
    assert f.extra["gain_locked"].tolist() == ["True", None]  # v1 does not say
    assert res.skipped == {"bad-magic": 1, "len-mismatch": 1, "truncated": 1}
    assert res.n_inputs == 5


def test_live_stream_over_a_real_udp_socket():
    import asyncio
    import socket

    from csi_edge.frames import FrameBatch
    from csi_edge.sources.espectre import EspectreSource

    async def main():
        got: list = []
        src = EspectreSource("127.0.0.1", 0, batch_s=0.005)
        await src.start(got.append)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for k in range(300):  # the one-byte sequence wraps past 255
                d = struct.pack("<HBBBH", STREAM_MAGIC, 3, 1, k & 0xFF, 64) + CSI[k % 50].tobytes()
                tx.sendto(d, src.address)
            tx.sendto(b"not espectre", src.address)
        for _ in range(200):
            if sum(len(r.frames) + sum(r.skipped.values()) for r in got) >= 301:
                break
            await asyncio.sleep(0.01)
        src.close()
        await asyncio.sleep(0)
        return got, src

    got, src = asyncio.run(asyncio.wait_for(main(), 10))
    frames = FrameBatch.concat(r.frames for r in got)
    assert len(frames) == 300 and src.name.startswith("espectre://127.0.0.1:")
    assert frames.meta["seq"].tolist() == list(range(300))  # unwrapped across 255 -> 0
    assert np.array_equal(frames.raw(299), CSI[299 % 50])
    assert set(frames.node_keys().tolist()) == {"127.0.0.1"}
    assert sum(r.skipped["bad-magic"] for r in got) == 1
