"""``csi-edge bench``: the JSON contract, bare model files, clear errors; the cold-start probe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from csi_edge.cli import cli
from csi_edge.inference.synthetic import make_pose_bundle, make_ruview_bundle
from csi_edge.temporal import TemporalConfig


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    return {
        "pose": make_pose_bundle(tmp / "pose", TemporalConfig(4, 1, 16, 16, 64), int8=False),
        "ruview": make_ruview_bundle(tmp / "ruview"),
    }


@pytest.mark.slow
def test_json_contract(bundles) -> None:
    args = ["bench", str(bundles["pose"]), str(bundles["ruview"] / "pose_v1.onnx")]
    args += ["--quick", "--json", "--nodes", "2", "--windows", "8,16", "--no-startup"]
    args += ["--rate", "10", "--max-nodes", "4"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert {"machine", "models", "streaming", "pipeline", "rss_mb"} <= set(r)
    assert {"cpu", "cores", "threads", "libraries"} <= set(r["machine"])
    assert r["machine"]["libraries"]["onnxruntime"]
    keys = {"model", "backend", "precision", "batch", "load_ms", "p50_ms", "p90_ms", "p99_ms",
            "size_bytes"}  # fmt: skip
    assert r["models"] and all(keys <= set(m) for m in r["models"])
    assert {(m["model"], m["batch"]) for m in r["models"]} >= {
        ("synthetic-pose", 1), ("synthetic-pose", 2), ("pose_v1", 1), ("pose_v1", 2)
    }  # fmt: skip
    assert all(m["backend"] in ("onnxruntime", "litert") for m in r["models"])
    assert all(m["precision"] in ("fp32", "int8") for m in r["models"])
    assert all(m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"] for m in r["models"])
    assert [(s["window"], s["batch"]) for s in r["streaming"]] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    assert all(s["step_ms"] > 0 and s["full_ms"] > 0 for s in r["streaming"])
    s0 = r["streaming"][0]
    assert s0["step_impl"].startswith("onnxruntime fp32 encoder")  # the bundle's encoder
    # no exported full graph in the synthetic bundle: the same encoder on W frames + numpy head
    assert s0["full_impl"].startswith("onnxruntime fp32 encoder on W frames")
    assert s0["head_step_ms"] > 0 and s0["head_full_ms"] > 0 and s0["numpy_full_ms"] > 0
    p = r["pipeline"]
    assert p["nodes"] == 2 and p["model"] == "synthetic-pose" and p["p50_ms"] > 0
    assert {"features", "encoder", "temporal_head", "tracking"} <= set(p["stages_p50_ms"])
    assert r["rss_mb"] > 10
    assert p["pipeline_vs_model"] > 0 and p["model_stages_ms"] > 0
    # the capacity verdict: measured through the gateway path, node count doubled to the cap
    c = r["capacity"]
    assert [s["nodes"] for s in c["steps"]] == [4]  # --max-nodes 4: one step
    assert all(s["frames"] == s["nodes"] * 10 and s["pose_frames"] > 0 for s in c["steps"])
    assert c["rate_hz"] == 10 and c["pose_model"] == "synthetic-pose" and c["vitals_model"] is None
    if c["sustained_nodes"]:
        assert f"sustains {c['sustained_nodes']} nodes at 10 Hz" in c["verdict"]
    else:
        assert "does NOT sustain 4 nodes" in c["verdict"]


def test_table_output_and_errors(bundles, tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["bench", str(bundles["ruview"]), "--quick", "--windows", "8",
                              "--no-startup"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "ruview-pose-v1-random" in res.output and "p50 ms" in res.output
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    res = runner.invoke(cli, ["bench", str(bad), "--quick"])
    assert res.exit_code == 1 and "broken.onnx: truncated or not an ONNX file" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(cli, ["bench", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "no such bundle" in res.output
    res = runner.invoke(cli, ["bench", "--windows", "8,x"])
    assert res.exit_code == 2 and "--windows" in res.output


def test_cold_start_probe_stays_light(bundles) -> None:
    """A gateway-like process: first inference reported, no torch/scipy/onnx on the path."""
    out = subprocess.run(
        [sys.executable, "-m", "csi_edge.inference.first_inference", str(bundles["pose"]),
         str(bundles["ruview"])],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    r = json.loads(out.stdout)
    assert r["first_inference_s"] > 0 and r["all_models_ready_s"] >= r["first_inference_s"]
    assert r["rss_mb"] > 10
    assert r["heavy_modules_imported"] == []
