"""``pip install .`` installs one top-level import name, ``csi_edge``, with its data files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_installs_only_csi_edge_at_top_level(tmp_path: Path) -> None:
    # install from a copy of the tracked files, so pip's in-tree build/ never lands in the clone
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
         str(src)],
        check=True, capture_output=True, text=True,
    )
    top = {p.name for p in target.iterdir() if p.name not in ("bin", "__pycache__")}
    names = {n for n in top if not n.endswith((".dist-info", ".egg-info"))}
    assert names == {"csi_edge"}, sorted(top)
    pkg = target / "csi_edge"
    assert (pkg / "sinks" / "live.html").is_file()
    assert (pkg / "models" / "csi-edge-pose" / "manifest.json").is_file()
    assert (pkg / "firmware" / "emulator" / "board.py").is_file()
    # the installed copy works on its own, from a folder that is not the clone
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", "import csi_edge, csi_edge.cli, csi_edge.firmware.nvs; "
         "print(csi_edge.__file__)"],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True,
    ).stdout
    assert out.strip().startswith(str(target))
