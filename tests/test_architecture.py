"""The import graph points inward, one way; csi-edge installs one top-level name, ``csi_edge``.

Layers (a module may import its own layer or a lower one, never a higher one; lazy imports inside
functions count too, because they are dependencies all the same):

0 core        errors, paths, gatewayid, radio, frames, layout, skips, codecs, capture, registry
1 ingest      nodes, ingest, sources
2 processing  dsp, vitals, inference, temporal, pose, sim
3 gateway     gateway, estimators, config, report, inventory, nodecommands
4 sinks       sinks
5 app         service, app, capacity (assembly of a gateway, demo, record, signals; load)
6 cli         cli, __main__

``firmware``, ``export`` and ``calibration`` (quantization sets) sit beside the runtime: they may
use layers 0-2, ``export`` may use ``calibration`` and ``calibration`` may use ``export``, and
nothing in the runtime (layers 0-5) imports any of them; only the CLI does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"edge": "csi_edge", "firmware": "csi_edge.firmware", "export": "csi_edge.export",
           "calibration": "csi_edge.calibration"}
LAYERS = {
    0: "errors paths gatewayid radio frames layout skips loglimit codecs capture registry __init__",
    1: "nodes admission ingest sources",
    2: "dsp vitals inference temporal pose sim models",
    3: "gateway estimators config report inventory nodecommands",
    4: "sinks",
    5: "service app capacity",
    6: "cli __main__",
}
LAYER_OF = {name: n for n, names in LAYERS.items() for name in names.split()}
SIDE = {"firmware", "export", "calibration"}
SIDE_MAY_USE = {"firmware": set(), "export": {"calibration"}, "calibration": {"export"}}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join((package, *rel))] = path
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _place(module: str) -> tuple[str, int]:
    """(side package or "", layer) of a csi_edge module."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in SIDE:
        return head, -1
    if head not in LAYER_OF:
        raise AssertionError(f"{module}: no layer assigned (add it to LAYERS in this test)")
    return "", LAYER_OF[head]


MODULES = _modules()


def test_every_module_has_a_place() -> None:
    for module in MODULES:
        _place(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_inward(module: str) -> None:
    side, layer = _place(module)
    bad = []
    for line, name in _imports(MODULES[module]):
        top = name.split(".")[0]
        if top in FOLDERS:
            bad.append(f"line {line}: {name} (import csi_edge.*, not the folder name)")
            continue
        if top != "csi_edge" or name == "csi_edge" or name.startswith(module + "."):
            continue
        if name.split(".")[1] in ("__version__",):
            continue
        t_side, t_layer = _place(name)
        if side:
            ok = (t_side == side or t_side in SIDE_MAY_USE[side]) if t_side else t_layer <= 2
        elif t_side:
            ok = layer == LAYER_OF["cli"]
        else:
            ok = t_layer <= layer
        if not ok:
            bad.append(f"line {line}: {name}")
    assert not bad, f"{module} imports outward:\n  " + "\n  ".join(bad)


def test_the_wheel_lists_every_package_and_only_csi_edge_at_top_level() -> None:
    """pyproject's explicit package list covers every folder with an __init__.py."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert listed == found
    assert {p.split(".")[0] for p in listed} == {"csi_edge"}
