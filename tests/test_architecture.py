"""The layout issue 24 asks for: "to change X, open folder X", and the folders' imports only go down.

Read off the sources with ``ast`` (no import runs): every ``from . import`` / ``from ..x import`` in
``patcher/`` is resolved to the folder it names, and each folder may import only folders on a lower floor
(or its own). Function-level imports count too: they are dependencies all the same, only loaded later.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCHER = REPO / "patcher"

# Lowest first. A folder may import itself and anything before it; the top-level modules of patcher/
# (errors, version, states, results) have floors of their own.
FLOORS = [
    "errors",
    "version",
    "states",
    "target",
    "install",
    "disk",
    "record",
    "modules",
    "plan",
    "adopt",
    "write",
    "results",
    "commands",
]


def _unit(module: str) -> str:
    """``patcher.record.store`` -> ``record``; ``patcher.errors`` -> ``errors``; outside patcher -> ``""``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "patcher" and len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    rel = path.relative_to(REPO).with_suffix("")
    package = list(rel.parts[:-1])  # the package a relative import starts from (also for an __init__.py)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            names = [node.module] if node.module else [a.name for a in node.names]
            found += [(node.lineno, ".".join(base + name.split("."))) for name in names]
    return found


def test_every_folder_of_patcher_has_a_floor():
    folders = {p.name for p in PATCHER.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in PATCHER.glob("*.py") if p.stem != "__init__"}
    assert folders | modules <= set(FLOORS), f"give these a floor in FLOORS: {(folders | modules) - set(FLOORS)}"


def test_imports_only_go_down():
    upward = []
    for path in sorted(PATCHER.rglob("*.py")):
        me = _unit(".".join(path.relative_to(REPO).with_suffix("").parts))
        if me in ("", "__init__"):  # patcher/__init__.py only re-exports the version
            continue
        for line, target in _imports(path):
            there = _unit(target)
            if there and there != me and FLOORS.index(there) > FLOORS.index(me):
                upward.append(f"{path.relative_to(REPO)}:{line} ({me}) imports {target} ({there})")
    assert not upward, "imports that go up a floor:\n" + "\n".join(upward)


def test_patches_use_only_the_state_vocabulary_of_patcher():
    """The transforms sit beside plan/: of patcher/ they may read the states, nothing that runs commands."""
    for path in sorted((REPO / "patches").glob("*.py")):
        for line, target in _imports(path):
            if target.startswith("patcher."):
                assert target == "patcher.states", f"{path.name}:{line} imports {target}"


def test_the_scripts_run_in_the_target_interpreter_parse_as_python_3_8():
    """target/ runs in the training interpreter, which old Ultralytics releases pair with Python 3.8."""
    for path in sorted((PATCHER / "target").glob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))
