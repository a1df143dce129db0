"""The CSI simulator: frames like an ESP32's, timing, truth, captures, csi_fn adapter."""

import json

import numpy as np
from click.testing import CliRunner

from csi_edge.sim import NodeContent, load_truth, preset, simulate, write_capture
from csi_edge.sim.scenario import Scenario


def test_layouts_guard_bins_and_meta():
    for layout in (64, 128, 192):
        r = simulate(preset("still", 5, layout=layout, rate_hz=20), seed=1)
        assert set(r.frames.meta["n_pairs"].tolist()) == {layout}
        raw = r.frames.raw(0).reshape(-1, 2)
        assert np.all(raw[[0, *range(27, 38)]] == 0)  # DC and guard bins of the LLTF section
        assert np.any(raw[1:27] != 0)
    r = simulate(preset("still", 10, layout="mixed"), seed=2)
    assert set(r.frames.meta["n_pairs"].tolist()) == {64, 128, 192}


def test_timing_loss_reboot_and_truth():
    sc = preset("motion", 60, rate_hz=50, loss=0.05, reboot_at_s=30.0, jitter=0.3, burst_every_s=10)
    r = simulate(sc, seed=3)
    m = r.frames.meta
    assert np.all(np.diff(m["t_rx"]) >= 0)
    assert 0.8 * 50 * 57 < len(m) < 50 * 60
    seq = m["seq"]
    assert np.any(np.diff(seq) < -100)  # the reboot restarts the sequence
    tr = r.truth
    assert tr.keypoints.shape == (len(tr.t), 34)
    assert tr.motion.any() and (~tr.motion).any() and tr.presence.all()
    assert np.all((tr.keypoints >= 0) & (tr.keypoints <= 1))
    e = simulate(preset("empty", 10), seed=0).truth
    assert not e.presence.any() and np.isnan(e.breathing_bpm).all() and not e.keypoints.any()


def test_capture_roundtrip_and_cli(tmp_path):
    from csi_edge.codecs.pcap import read_pcap

    r = simulate(preset("enter", 20, n_nodes=2, layout="mixed"), seed=4)
    cap, truth = write_capture(r, tmp_path / "a.pcap")
    d = read_pcap(cap)
    assert np.array_equal(d.frames.iq, r.frames.iq)
    assert sorted(set(d.frames.node_keys())) == r.node_keys
    tr, sc = load_truth(cap)
    assert np.array_equal(tr.presence, r.truth.presence) and sc.n_nodes == 2
    from csi_edge.cli import cli

    out = CliRunner().invoke(
        cli,
        [
            "simulate",
            "-o",
            str(tmp_path / "b.pcap"),
            "--scenario",
            "still",
            "--duration",
            "5",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["frames"] > 50 and (tmp_path / "b.pcap.truth.npz").exists()
    bad = CliRunner().invoke(cli, ["simulate", "-o", str(tmp_path / "c.pcap"), "--loss", "1.5"])
    assert bad.exit_code != 0 and "--loss" in bad.output
    nowhere = tmp_path / "missing-dir" / "c.pcap"
    bad = CliRunner().invoke(cli, ["simulate", "-o", str(nowhere), "--duration", "1"])
    assert bad.exit_code == 1 and isinstance(bad.exception, SystemExit), bad.exception
    assert f"{nowhere}: cannot write" in bad.output


def test_node_content_adapter():
    fn = NodeContent(preset("still", 100), node_index=0, seed=5)
    a = fn(1000.0, 7)
    assert a.dtype == np.int8 and a.shape == (128,)
    assert np.array_equal(fn(1000.0, 7), a)
    assert not np.array_equal(fn(1000.5, 8), a)
    fn3 = NodeContent(Scenario(layout=192), node_index=3, seed=5)
    assert fn3(0.0, 0).shape == (384,)


def _vitals_on_node_content(scenario: str, seconds: float = 40.0, node: int = 0):
    """Render a simulated node frame by frame, as simulated UDP nodes do, through NodeVitals."""
    from csi_edge.frames import pairs_to_complex
    from csi_edge.layout import LLTF_RAW_BINS as raw
    from csi_edge.sim import NodeContent, preset
    from csi_edge.vitals.config import VitalsConfig
    from csi_edge.vitals.node import NodeVitals

    content = NodeContent(preset(scenario, 24 * 3600.0), node_index=node, seed=0, n_pairs=64)
    # the amplitude-level block test: it reads exactly what an instant AGC would erase
    vitals = NodeVitals(VitalsConfig(motion_blocks=True))
    rng = np.random.default_rng(1)
    times = 1.7e9 + np.cumsum(0.05 + rng.uniform(-0.0075, 0.0075, int(seconds * 20)))
    out, due = [], times[0] + 1.0
    for seq, t in enumerate(times):
        csi = pairs_to_complex(content(t, seq).reshape(-1, 2))[raw]
        vitals.push(np.array([t]), csi[None])
        if t >= due:
            out.append(vitals.estimate(t))
            due += 1.0
    return out[10:]


def test_frame_by_frame_content_keeps_the_slow_agc_so_walking_shows_as_motion():
    """Simulated nodes render one frame per call; scaling each frame to its own power (an
    instant AGC) once erased the amplitude changes of a walking person."""
    walk = _vitals_on_node_content("walk")
    assert np.mean([e.motion for e in walk]) > 0.7
    assert all(e.breathing_bpm is None for e in walk)
    still = _vitals_on_node_content("still")
    rates = [e.breathing_bpm for e in still if e.breathing_bpm is not None]
    assert len(rates) > len(still) // 2 and abs(np.median(rates) - 15.0) < 1.0
