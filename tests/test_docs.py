"""The documentation names only things that exist, and its byte-level examples are true.

A module, file or folder that a doc names and that has since moved or gone makes this fail,
so ARCHITECTURE.md and docs/ cannot silently drift from the code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "ARCHITECTURE.md", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# repository paths: a top-level folder of this repo, not part of a longer path or URL
PATH_RE = re.compile(
    r"(?<![\w./~-])((?:edge|firmware|export|calibration|scripts|tests|docs)/[A-Za-z0-9_./-]*)"
)
# dotted names in the installed package: csi_edge.codecs.ruview, csi_edge.errors.ExitCode
DOTTED_RE = re.compile(r"\bcsi_edge(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# import package -> folder (pyproject's [tool.setuptools.package-dir])
PACKAGE_DIRS = {
    "csi_edge.firmware": "firmware",
    "csi_edge.export": "export",
    "csi_edge.calibration": "calibration",
    "csi_edge": "edge",
}


def _named_paths(text: str) -> set[str]:
    return {m.group(1).rstrip(".,") for m in PATH_RE.finditer(text)}


def _module_file(dotted: str) -> tuple[Path | None, list[str]]:
    """The file of the longest module prefix of ``dotted`` and the attribute names after it."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        mod = ".".join(parts[:n])
        pkg = next((p for p in PACKAGE_DIRS if mod == p or mod.startswith(p + ".")), None)
        if pkg is None:
            continue
        rel = (
            Path(PACKAGE_DIRS[pkg], *mod[len(pkg) :].lstrip(".").split("."))
            if mod != pkg
            else Path(PACKAGE_DIRS[pkg])
        )
        for cand in (ROOT / f"{rel}.py", ROOT / rel / "__init__.py"):
            if cand.is_file():
                return cand, parts[n:]
    return None, parts


def _defined_names(body: list[ast.stmt]) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for el in ast.walk(t):
                    if isinstance(el, ast.Name):
                        names[el.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                names[(a.asname or a.name).split(".")[0]] = node
        elif isinstance(node, ast.If | ast.Try):  # names defined under TYPE_CHECKING / fallbacks
            names.update(_defined_names(node.body))
    return names


def _dotted_problem(dotted: str) -> str | None:
    path, attrs = _module_file(dotted)
    if path is None:
        return "no such module"
    if not attrs:
        return None
    names = _defined_names(ast.parse(path.read_text(encoding="utf-8")).body)
    first = names.get(attrs[0])
    if first is None:
        if (path.parent / attrs[0]).is_dir() or (path.parent / f"{attrs[0]}.py").is_file():
            return None
        return f"{path.relative_to(ROOT)} defines no {attrs[0]!r}"
    if (
        len(attrs) > 1
        and isinstance(first, ast.ClassDef)
        and attrs[1] not in _defined_names(first.body)
    ):
        return f"{path.relative_to(ROOT)}: class {attrs[0]} has no {attrs[1]!r}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = sorted(p for p in _named_paths(text) if not (ROOT / p).exists())
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_modules_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    problems = {d: _dotted_problem(d) for d in sorted(set(DOTTED_RE.findall(text)))}
    bad = {d: why for d, why in problems.items() if why}
    assert not bad, f"{doc.name} names modules or objects that do not exist: {bad}"


def test_checker_catches_a_missing_module() -> None:
    """The checks above are not vacuous: made-up names are reported."""
    assert _named_paths("see `edge/nope.py` and edge/app/") == {"edge/nope.py", "edge/app/"}
    assert not (ROOT / "edge/nope.py").exists()
    assert _named_paths("https://x.org/edge/a.py and ruview/scripts/x.py") == set()
    assert _dotted_problem("csi_edge.nope") is not None
    assert _dotted_problem("csi_edge.errors.NoSuchError") is not None
    assert _dotted_problem("csi_edge.errors.ExitCode") is None
    assert _dotted_problem("csi_edge.firmware.nvs") is None
    assert _dotted_problem("csi_edge.codecs.ruview.RuViewDecoder.decode_block") is None
    assert _dotted_problem("csi_edge.codecs.ruview.RuViewDecoder.nope") is not None


def test_wire_format_worked_example_decodes_as_documented() -> None:
    """The raw-frame header bytes printed in docs/wire-formats.md decode to the fields it states."""
    from csi_edge.codecs.ruview import RuViewDecoder

    text = (ROOT / "docs" / "wire-formats.md").read_text(encoding="utf-8")
    block = text.split("Worked example", 1)[1].split("```", 2)[1]
    header = bytes.fromhex(block.strip().splitlines()[0])
    assert len(header) == 20
    res = RuViewDecoder().decode([header + bytes(128)], 0.0, "192.168.1.20")
    row = res.frames.meta[0]
    got = {
        k: int(row[k])
        for k in ("node_id", "seq", "rssi", "noise", "freq_mhz", "channel", "n_pairs")
    }
    assert got == {"node_id": 2, "seq": 18, "rssi": -45, "noise": -92, "freq_mhz": 2437,
                   "channel": 6, "n_pairs": 64}  # fmt: skip
    stated = "node_id 2, seq 18,\nrssi -45, noise -92, freq_mhz 2437, channel 6, n_pairs 64"
    assert stated in text


def test_exit_code_table_matches_the_code() -> None:
    """docs/exit-codes.md lists exactly the codes csi_edge.errors.ExitCode defines."""
    from csi_edge.errors import ExitCode

    text = (ROOT / "docs" / "exit-codes.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \|", text, re.M)
    assert {name: int(code) for code, name in rows} == {e.name: int(e) for e in ExitCode}


def test_nvs_key_table_matches_the_firmware_keys() -> None:
    """docs/provisioning.md lists every NVS key csi-edge writes, with its namespace and type."""
    from csi_edge.firmware.nodecfg import KEYS

    text = (ROOT / "docs" / "provisioning.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (csi_cfg|security) \| `(\w+)` \| (\w+) \|", text, re.M)
    assert rows == [(k.ns, k.name, k.type) for k in KEYS]


def test_nvs_csv_example_is_what_csi_edge_generates() -> None:
    """The generator CSV printed in docs/provisioning.md is the one csi-edge writes for it, and
    the image built from it reads back to the same values."""
    from csi_edge.firmware import nodecfg, nvs

    text = (ROOT / "docs" / "provisioning.md").read_text(encoding="utf-8")
    csv = (
        "key,type,encoding,value\n"
        + text.split("```\nkey,type,encoding,value\n", 1)[1].split("```", 1)[0]
    )
    cfg = {
        "ssid": "HomeNet",
        "password": "s3cretpass",
        "target_ip": "192.168.1.20",
        "node_id": 3,
        "filter_mac": bytes.fromhex("aabbccddeeff"),
        "ota_psk": "tok",
    }
    nodecfg.validate(cfg)
    owned = nodecfg.owned_namespaces(cfg)
    assert nvs.to_csv(owned) == csv
    back = nvs.read_image(nvs.build_image(owned))
    assert back.problems == [] and nodecfg.from_nvs(back.namespaces) == (cfg, [])


# a file outside the repository, as code and docs must never name it (tests may read the
# shared tools folder and skip when it is absent)
OUTSIDE_RE = re.compile(rb"/work/shared|\.\./shared|shared/spec")


def test_nothing_outside_tests_names_files_outside_the_repository() -> None:
    """Code and docs reference the repository's own docs (docs/, edge/models/MODEL_SPEC.md),
    never the shared folder the project was started from: a reader of the repository has only
    the repository."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot list the tracked files")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, tracked):
        rel = name.decode()
        if rel.startswith("tests/") or not (ROOT / rel).is_file():
            continue
        for n, line in enumerate((ROOT / rel).read_bytes().splitlines(), 1):
            if OUTSIDE_RE.search(line):
                found.append(f"{rel}:{n}: {line.decode(errors='replace').strip()[:100]}")
    assert not found, "names a file outside the repository:\n" + "\n".join(found)
