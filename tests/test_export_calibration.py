"""``csi-edge calibration build``: windows through the runtime's builder, balanced, reported.

Real components: a simulated pcap from ``csi-edge simulate`` (with its ground-truth sidecar),
the capture reader, the runtime's FeatureBuilder/TimeResampler, and model bundles written by the
runtime's own synthetic-bundle helpers (no torch needed).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.inference.synthetic import make_pose_bundle, make_ruview_bundle
from csi_edge.temporal import TemporalConfig


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cal")
    pcap = tmp / "sim.pcap"
    res = CliRunner().invoke(
        cli,
        [
            "simulate",
            "-o",
            str(pcap),
            "--scenario",
            "activities",
            "--duration",
            "40",
            "--nodes",
            "2",
            "--layout",
            "mixed",
            "--seed",
            "4",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    return pcap


def _build(*args) -> dict:
    res = CliRunner().invoke(cli, ["calibration", "build", *map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_pose_windows_are_balanced_and_match_the_runtime(capture, tmp_path):
    from csi_edge.capture import read_capture
    from csi_edge.inference.manifest import load_manifest
    from csi_edge.inference.runtime import FeatureBuilder, TimeResampler

    bundle = make_pose_bundle(tmp_path / "pose", TemporalConfig(window=8), int8=False)
    out = tmp_path / "cal.npz"
    rep = _build(capture, "--model", bundle, "-o", out, "-n", "48", "--seed", "1")
    z = np.load(out)
    assert z["features"].shape == (48, 8, 104)
    assert rep["activity_source"] == ["ground truth"]
    assert set(rep["by_activity"]) == {"still", "moving", "empty"}
    assert max(rep["by_activity"].values()) - min(rep["by_activity"].values()) <= 2
    assert rep["by_node"] == {k: 24 for k in rep["by_node"]} and len(rep["by_node"]) == 2
    assert len(rep["by_layout"]) == 3  # 64, 128 and 192-pair frames all represented
    assert 0 < z["split"].sum() < 48 and z["gt_keypoints"].shape == (48, 34)
    assert json.loads(str(z["report_json"]))["windows"] == 48

    # one window rebuilt independently with the runtime's classes gives the same numbers
    m = load_manifest(bundle)
    fr = read_capture(capture).frames
    node = str(z["node"][0])
    idx = dict(fr.node_groups())[node]
    sub = fr[idx]
    t = sub.meta["t_rx"]
    csi = np.stack([sub.csi(i)[:64] for i in range(len(sub))])
    rs = TimeResampler(m.input["sample_rate_hz"])
    feats = FeatureBuilder(m)(csi)
    grid_t, grid_x = [], []
    for i in range(len(t)):
        tg, xg = rs.push(t[i : i + 1], feats[i : i + 1])
        grid_t += list(tg)
        grid_x += list(xg)
    end = int(np.argmin(np.abs(np.asarray(grid_t) - z["t_end"][0])))
    np.testing.assert_allclose(z["features"][0], np.asarray(grid_x[end - 7 : end + 1]), atol=1e-6)


def test_ruview_windows_use_the_reshape_layout(capture, tmp_path):
    bundle = make_ruview_bundle(tmp_path / "rv")
    out = tmp_path / "cal.npz"
    rep = _build(capture, "--model", bundle, "-o", out, "-n", "16")
    z = np.load(out)
    assert rep["input"] == "csi_window" and z["csi_window"].shape == (16, 56, 20)
    # RuView's runtime: 20 frames frame-major reshaped to (56, 20) without a transpose, so
    # row 0 holds frame 0's first 20 bins, row 2 starts with frame 0's bins 40..55 then frame 1
    w = z["csi_window"][0].reshape(20, 56)
    assert np.allclose(w.reshape(56, 20), z["csi_window"][0])
    assert (w[:, 28:36] == 0).all()  # guard/DC bins of the raw layout stay zero in every frame


def test_without_truth_activity_comes_from_motion(capture, tmp_path):
    import shutil

    bare = tmp_path / "bare.pcap"
    shutil.copy(capture, bare)  # no sidecar next to it
    bundle = make_pose_bundle(tmp_path / "pose", TemporalConfig(window=8), int8=False)
    rep = _build(bare, "--model", bundle, "-o", tmp_path / "c.npz", "-n", "20")
    assert rep["activity_source"] == ["motion statistic"]
    assert "empty" not in rep["by_activity"] and "note" in rep
    assert rep["ground_truth"] == []


def test_bad_inputs_are_clear_errors(capture, tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    bundle = make_pose_bundle(tmp_path / "pose", TemporalConfig(window=8), int8=False)
    res = CliRunner().invoke(
        cli,
        ["calibration", "build", str(junk), "--model", str(bundle), "-o", str(tmp_path / "c.npz")],
    )
    assert res.exit_code == 1 and "junk.pcap" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(
        cli,
        [
            "calibration",
            "build",
            str(capture),
            "--model",
            str(tmp_path),
            "-o",
            str(tmp_path / "c.npz"),
        ],
    )
    assert res.exit_code == 1 and "manifest.json" in res.output


def test_real_ruview_recording(tmp_path):
    """A real 2-node ESP32-S3 recording (tests/data/ruview, see PROVENANCE.md): windows per node,
    amplitudes of the first 56 raw bins exactly as RuView's runtime lays them out."""
    from pathlib import Path

    from csi_edge.capture import read_capture

    rec = Path(__file__).parent / "data" / "ruview" / "pretrain-head400.csi.jsonl"
    bundle = make_ruview_bundle(tmp_path / "rv")
    out = tmp_path / "cal.npz"
    rep = _build(rec, "--model", bundle, "-o", out, "-n", "200", "--holdout", "0")
    z = np.load(out)
    assert len(rep["by_node"]) == 2 and rep["windows"] == rep["available"] > 0
    node = str(z["node"][0])
    fr = read_capture(rec).frames
    sub = fr[dict(fr.node_groups())[node]]
    sub = sub[np.argsort(sub.meta["t_rx"], kind="stable")]
    amp = np.stack([np.abs(sub.csi(i)[:56]) for i in range(len(sub))]).astype(np.float32)
    # the window ending at t_end[0] is the 20 frames up to it, frame-major, no transpose
    end = int(np.flatnonzero(sub.meta["t_rx"] == z["t_end"][0])[-1])
    np.testing.assert_allclose(
        z["csi_window"][0], amp[end - 19 : end + 1].reshape(56, 20), rtol=1e-6
    )
