"""The shape of the code: one record schema, the engine below the public layer, deliberate lazy imports,
durable writes, and a clean lint. Fast: no release tree is planned here except by the record tests.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LATEST
from rtdetr_patch.patcher.disk import files
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.install.locate import locate
from rtdetr_patch.patcher.record.manifest import Record
from rtdetr_patch.patcher.record.store import Store
from rtdetr_patch.patcher.results import ApplyResult, RevertResult

REPO = Path(__file__).resolve().parent.parent
ENGINE = ("patcher", "patches", "templates")
# Modules another piece of work owns; their function-level imports are theirs to annotate.
NOT_CHECKED: set[str] = set()

# Python as a regular (non-editable) install would run it: the editable install's finder removed, so the
# repository's rtdetr_patch/ folder, first on sys.path, shadows anything installed.
WITHOUT_EDITABLE = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


def test_version_and_import_from_the_repository_folder():
    version = _run(["-m", "rtdetr_patch", "--version"], REPO)
    assert version.returncode == 0 and version.stdout.strip() == f"rtdetr-patch, version {_version()}", version
    code = (
        WITHOUT_EDITABLE + "import runpy, rtdetr_patch, rtdetr_patch.patcher, rtdetr_patch.patches; "
        "print(rtdetr_patch.__file__, rtdetr_patch.patcher.__version__); "
        "sys.argv = ['rtdetr-patch', '--version']; runpy.run_module('rtdetr_patch', run_name='__main__')"
    )
    shadowed = _run(["-c", code], REPO)
    assert shadowed.returncode == 0, shadowed.stderr
    first, second = shadowed.stdout.strip().splitlines()
    assert Path(first.split()[0]).parent == REPO / "rtdetr_patch" and first.split()[1] == _version()
    assert second == f"rtdetr-patch, version {_version()}"


def test_version_and_import_from_elsewhere(tmp_path):
    version = _run(["-m", "rtdetr_patch", "--version"], tmp_path)
    assert version.returncode == 0 and _version() in version.stdout, version
    imported = _run(
        ["-c", "import rtdetr_patch.patcher, rtdetr_patch.templates; print(rtdetr_patch.__version__)"], tmp_path
    )
    assert imported.returncode == 0 and imported.stdout.strip() == _version(), imported.stderr


def _version() -> str:
    tree = ast.parse((REPO / "patcher" / "version.py").read_text(encoding="utf-8"))
    values = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__version__"]
    assert len(values) == 1
    return values[0]


def test_one_version_string():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = { attr = "rtdetr_patch.patcher.version.__version__" }' in pyproject
    written = [
        p
        for p in REPO.glob("*/*.py")
        if ".venv" not in p.parts
        and any(
            isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__version__"
            for n in ast.parse(p.read_text(encoding="utf-8")).body
        )
    ]
    assert written == [REPO / "patcher" / "version.py"]


def _modules(folders=ENGINE + ("rtdetr_patch",)):
    for folder in folders:
        for path in sorted((REPO / folder).glob("*.py")):
            yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def test_the_engine_never_imports_the_public_layer():
    assert not (REPO / "patcher" / "__main__.py").exists()
    for rel, tree in _modules(ENGINE):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert (node.module or "").split(".")[0] in ("patcher", "patches", "templates", ""), (rel, node.module)
                if node.module is None:
                    assert {a.name for a in node.names} <= {"patcher", "patches", "templates"}, rel
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n == "rtdetr_patch" or n.startswith("rtdetr_patch.") for n in names), rel


def test_every_function_level_import_says_why():
    unexplained = []
    for rel, tree in _modules():
        if rel in NOT_CHECKED:
            continue
        lines = (REPO / rel).read_text(encoding="utf-8").splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    group = lines[node.lineno - 1 : node.end_lineno]
                    # two imports on consecutive lines may share one reason, on either of them
                    after = lines[node.end_lineno] if node.end_lineno < len(lines) else ""
                    before = lines[node.lineno - 2]
                    if not any(
                        "#" in line
                        for line in group + [after if "import" in after else "", before if "import" in before else ""]
                    ):
                        unexplained.append(f"{rel}:{node.lineno}")
    assert unexplained == []


def test_each_mapped_folder_says_what_it_is_installed_as():
    for folder in ENGINE:
        doc = ast.get_docstring(ast.parse((REPO / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and f"rtdetr_patch.{folder}" in doc, folder
    templates = ast.get_docstring(ast.parse((REPO / "templates" / "__init__.py").read_text(encoding="utf-8")))
    assert "nothing of rtdetr-patch" in " ".join(templates.split())


def test_ruff_finds_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the record ----------------------------------------------------------------------------------
def test_the_record_reads_and_writes_back_byte_for_byte(tree, cli, state_home):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    path = next(state_home.rglob("manifest.json"))
    text = path.read_text(encoding="utf-8")
    record = Record.of(json.loads(text), path)
    assert record.state == "applied" and record.release == LATEST and record.files and record.added
    assert json.dumps({"format": 1, **record.to_dict()}, indent=2) + "\n" == text
    store = Store(locate(target=str(root)))
    store.set_state("reverting")
    assert json.loads(path.read_text(encoding="utf-8")) == {**json.loads(text), "state": "reverting"}


def test_a_record_of_an_earlier_release_reads_with_defaults():
    old = {
        "format": 1,
        "tool": "0.1.0",
        "release": "8.3.0",
        "options": {"modules": [{"name": "Net", "classes": ["Net"]}]},
        "files": [{"path": "nn/tasks.py", "original_sha256": "a", "patched_sha256": "b"}],
    }
    record = Record.of(old, "m.json")
    assert record.modules[0].safe_names == () and record.added == () and record.state == "applied"
    assert record.options == frozenset() and record.applied_at == ""


@pytest.mark.parametrize(
    "broken, key",
    [
        ({"format": 1, "release": "8.3.0"}, "files"),
        ({"format": 1, "files": []}, "release"),
        ({"format": 2, "release": "8.3.0", "files": []}, "format"),
        (
            {"format": 1, "release": "8.3.0", "files": [{"path": "x", "original_sha256": "a"}]},
            "files[0].patched_sha256",
        ),
        ({"format": 1, "release": "8.3.0", "files": [], "added": [{"path": 3, "sha256": "a"}]}, "added[0].path"),
        ({"format": 1, "release": "8.3.0", "files": [], "options": {"val_rect_fix": 1}}, "options.val_rect_fix"),
    ],
)
def test_a_malformed_record_names_the_manifest_and_the_key(broken, key):
    with pytest.raises(PatchError) as caught:
        Record.of(broken, Path("somewhere") / "manifest.json")
    assert caught.value.code is Exit.STORE
    assert f"({key})" in caught.value.message and str(Path("somewhere") / "manifest.json") in caught.value.message


# -- results: each fact once -----------------------------------------------------------------------
def test_facts_are_stored_once_and_all_warnings_lists_them():
    reverted = RevertResult(recovered="An interrupted apply was found.", left=["nn/tasks.py"], warnings=["restart"])
    assert reverted.to_dict()["warnings"] == [
        "An interrupted apply was found.",
        "left untouched (changed by someone else): nn/tasks.py",
        "restart",
    ]
    assert reverted.warnings == ["restart"]
    applied = ApplyResult(recovered="rolled back", plan=object())
    assert applied.to_dict()["warnings"] == ["rolled back"] and "plan" not in applied.to_dict()


def test_check_problems_are_the_results_own(tree, cli):
    from rtdetr_patch import check

    root = tree(LATEST)
    first, second = check(target=str(root), static=True), check(target=str(root), static=True)
    assert first.problems == second.problems and first.problems is not second.problems
    first.problems.append("mine")
    assert "mine" not in check(target=str(root), static=True).problems


# -- durable writes --------------------------------------------------------------------------------
def test_atomic_write_syncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    files.atomic_write(tmp_path / "a.txt", b"new")
    assert (tmp_path / "a.txt").read_bytes() == b"new"
    assert len(synced) == (1 if os.name == "nt" else 2)  # the file, then (not on Windows) the folder


def test_a_folder_that_refuses_a_new_file_is_not_writable(tmp_path, monkeypatch):
    import tempfile

    target = tmp_path / "tasks.py"
    target.write_bytes(b"x")

    class Install:
        release = "8.4.190"

    files.require_writable([target], Install())  # a writable folder passes

    def refuse(*args, **kwargs):
        raise PermissionError("denied by the ACL")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # os.access still says yes, as on Windows
    with pytest.raises(PatchError) as caught:
        files.require_writable([target], Install())
    assert caught.value.code is Exit.WRITE and str(target) in caught.value.message
