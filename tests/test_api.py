"""The Python API, the machine-readable and quiet outputs, pipes, and what ``pip install .`` installs.

``from rtdetr_patch import apply, check, revert``: the same work as the command line, results as
objects, one exception type carrying the exit code. ``--json`` gives the same object on all three
commands; ``--quiet`` prints only failures; piped output has no colour and is not folded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
from conftest import LATEST, snapshot
from rtdetr_patch.patcher.errors import Exit

import rtdetr_patch
from rtdetr_patch import PatchError, apply, check, revert

REPO = Path(__file__).resolve().parents[1]
COMMON = {
    "schema",
    "command",
    "tool",
    "ok",
    "exit_code",
    "error",
    "ultralytics",
    "warnings",
    "notes",
    "problems",
    "restart_needed",
    "transforms",
}


def run_cli(*args, env=None, **kw) -> subprocess.CompletedProcess:
    """The installed entry point in a fresh process, output piped (not a terminal)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rtdetr_patch", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=full,
        timeout=300,
        **kw,
    )


# -- the Python API ---------------------------------------------------------------------------
def test_api_round_trip_returns_objects(tree):
    root = tree(LATEST)
    pristine = snapshot(root)
    applied = apply(target=str(root), no_verify=True)
    assert isinstance(applied, rtdetr_patch.ApplyResult) and applied.ok and applied.exit_code == 0
    assert (
        applied.written == ["nn/tasks.py", "nn/modules/head.py", "utils/loss.py", "models/utils/loss.py"]
        and "nn/Addmodules/MobileNetV3.py" in applied.added
    )
    assert {t["name"]: t["state"] for t in applied.transforms}["parse-model"] == "patched"
    assert applied.ultralytics["release"] == LATEST and applied.restart_needed is False
    assert applied.verification is None  # no_verify, as --no-verify

    report = check(target=str(root), static=True)
    assert isinstance(report, rtdetr_patch.CheckResult) and report.ok and report.exit_code == 0
    assert report.warnings == [] and len(report.notes) == 2  # get-flops and repc3 are facts, not warnings

    again = apply(target=str(root), no_verify=True)
    assert again.already and again.written == []

    undone = revert(target=str(root))
    assert isinstance(undone, rtdetr_patch.RevertResult) and undone.restored == [
        "nn/tasks.py",
        "nn/modules/head.py",
        "utils/loss.py",
        "models/utils/loss.py",
    ]
    assert snapshot(root) == pristine


def test_api_check_returns_findings_and_errors_raise(tree, tmp_path):
    root = tree(LATEST)
    report = check(target=str(root), static=True)
    assert not report.ok and report.exit_code == Exit.NOT_PATCHED
    assert "this install is not patched: run `rtdetr-patch apply`" in report.problems
    with pytest.raises(PatchError) as caught:
        apply(target=str(tmp_path / "nowhere"), no_verify=True)
    assert caught.value.code == Exit.NOT_FOUND and int(caught.value.code) == 3
    assert str(tmp_path / "nowhere") in caught.value.message


def test_api_dry_run_gives_the_diff_and_writes_nothing(tree):
    root = tree(LATEST)
    before = snapshot(root)
    result = apply(target=str(root), dry_run=True)
    assert result.dry_run and result.written == [] and result.diff.startswith("--- a/ultralytics/nn/tasks.py")
    assert "+from ultralytics.nn.Addmodules import" in result.diff
    assert snapshot(root) == before


def test_api_says_restart_when_this_process_imported_that_ultralytics(tree, monkeypatch):
    root = tree(LATEST)
    other = tree("8.4.0")
    loaded = types.ModuleType("ultralytics")
    loaded.__file__ = str(root / "ultralytics" / "__init__.py")
    monkeypatch.setitem(sys.modules, "ultralytics", loaded)  # as `import ultralytics` in a notebook cell
    with pytest.warns(RuntimeWarning, match="restart the process"):
        applied = apply(target=str(root), no_verify=True)
    assert applied.restart_needed and any("restart" in w for w in applied.warnings)
    with pytest.warns(RuntimeWarning, match="restart the process"):
        assert revert(target=str(root)).restart_needed
    # Another install than the one imported: nothing to restart.
    assert apply(target=str(other), no_verify=True).restart_needed is False
    # Nothing changed (already patched): nothing to restart either.
    assert apply(target=str(other), no_verify=True).restart_needed is False


def test_api_options_match_the_command_line():
    """Each keyword of apply/check/revert is a command-line option of the same name."""
    import inspect as pyinspect

    from rtdetr_patch.cli import main

    for name, func in (("apply", apply), ("check", check), ("revert", revert)):
        options = {p.name for p in main.commands[name].params} - {"as_json", "quiet"}
        keywords = {k for k in pyinspect.signature(func).parameters if not k.startswith("on_")}
        assert keywords == options, name


# -- --json, --quiet, pipes and colour ------------------------------------------------------------
@pytest.mark.parametrize("command", [("apply", "--no-verify"), ("check", "--static"), ("revert",)])
def test_json_on_every_command_one_schema(tree, cli, command):
    root = tree(LATEST)
    if command[0] == "revert":
        assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    done = cli(*command, "--target", root, "--json")
    report = json.loads(done.stdout)  # stdout holds the JSON object and nothing else
    assert set(report) >= COMMON, COMMON - set(report)
    assert report["schema"] == 1 and report["command"] == command[0] and report["tool"] == rtdetr_patch.__version__
    assert report["exit_code"] == done.exit_code and report["ok"] is (done.exit_code == 0)
    assert report["ultralytics"]["release"] == LATEST


@pytest.mark.parametrize("command", [("apply", "--no-verify"), ("check", "--static"), ("revert",)])
def test_json_on_every_command_reports_errors(cli, tmp_path, command):
    done = cli(*command, "--target", tmp_path / "nowhere", "--json")
    assert done.exit_code == Exit.NOT_FOUND
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["exit_code"] == Exit.NOT_FOUND and report["command"] == command[0]
    assert str(tmp_path / "nowhere") in report["error"]["message"] and report["error"]["hint"]


def test_quiet_prints_only_failures(tree, tmp_path):
    root = tree(LATEST)
    env = {"RTDETR_PATCH_HOME": os.environ["RTDETR_PATCH_HOME"]}
    done = run_cli("apply", "--target", root, "--no-verify", "--quiet", env=env)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    done = run_cli("check", "--target", root, "--static", "-q", env=env)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    (root / "ultralytics" / "nn" / "tasks.py").write_bytes(b"# replaced\n")
    done = run_cli("check", "--target", root, "--static", "-q", env=env)
    assert done.returncode == Exit.CHANGED and done.stdout == ""
    assert "nn/tasks.py is changed since apply" in done.stderr and "FAILED (exit 7)" in done.stderr
    done = run_cli("apply", "--target", tmp_path / "nowhere", "-q", env=env)
    assert done.returncode == Exit.NOT_FOUND and done.stdout == "" and "error:" in done.stderr


def test_reader_closing_the_pipe_is_not_an_error(tree):
    """`rtdetr-patch apply --dry-run | head -2`: the command ends with its own exit code, not 1."""
    root = tree(LATEST)
    before = snapshot(root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtdetr_patch", "apply", "--target", str(root), "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    first = proc.stdout.readline()  # printed before planning; the diff comes after the pipe is gone
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=300)
    assert first.startswith(b"Ultralytics ")
    assert proc.returncode == 0, stderr.decode()
    assert b"BrokenPipe" not in stderr and b"Traceback" not in stderr
    assert snapshot(root) == before


def test_piped_output_is_plain_and_unfolded(tree, tmp_path):
    deep = tmp_path / ("a-long-folder-name-" * 6) / "site"
    shutil.copytree(tree(LATEST), deep)
    env = {"RTDETR_PATCH_HOME": os.environ["RTDETR_PATCH_HOME"]}
    env.pop("COLUMNS", None)
    done = run_cli("check", "--target", deep, "--static", env={**env, "NO_COLOR": "", "FORCE_COLOR": ""})
    assert "\x1b[" not in done.stdout  # no colour codes when not a terminal
    assert f"Ultralytics {LATEST} at {deep / 'ultralytics'}" in done.stdout.splitlines()[0]  # one line, whole
    assert any(
        "this install is not patched (" in line and f"--target {deep}`" in line  # a long line, whole
        for line in done.stdout.splitlines()
    )
    coloured = run_cli("check", "--target", deep, "--static", env={**env, "FORCE_COLOR": "1"})
    assert "\x1b[" in coloured.stdout  # the check above could fail: colour is there when forced
    no_colour = run_cli("check", "--target", deep, "--static", env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", no_colour.stdout)  # NO_COLOR: no colours even when forced


# -- help texts ---------------------------------------------------------------------------------
def test_help_speaks_the_users_words(cli):
    top = cli("--help").output
    commands = top.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in commands] == ["adopt", "apply", "check", "revert"]
    assert not any(line.rstrip().endswith("...") for line in commands), commands  # summaries are whole
    for command in ("adopt", "apply", "check", "revert"):
        text = cli(command, "--help").output
        assert not re.search(r"seed|brief", text, re.I), command
        assert "--json" in text and "--quiet" in text
        assert "Use the ultralytics of another interpreter" in " ".join(text.split())
    assert "blog step 4.10" in " ".join(cli("apply", "--help").output.split())


# -- revert after a hand edit ---------------------------------------------------------------------
def test_revert_shows_only_the_users_edit(tree, cli):
    root = tree(LATEST)
    (root / f"ultralytics-{LATEST}.dist-info").mkdir()  # pip installed it: a reinstall gives its files back
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(
        tasks.read_bytes().replace(b"def parse_model(", b"MY_SETTING = 3  # mine\n\n\ndef parse_model(", 1)
    )
    refused = cli("revert", "--target", root)
    assert refused.exit_code == Exit.CHANGED
    diff = [
        line
        for line in refused.output.splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert diff == ["+MY_SETTING = 3  # mine", "+", "+"], refused.output  # the user's lines, not the patch
    assert f"pip install --force-reinstall --no-deps ultralytics=={LATEST}" in " ".join(refused.output.split())


def test_revert_in_a_git_checkout_advises_git(tree, cli):
    root = tree(LATEST)

    def git(*args):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=root,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "clone")
    pristine = snapshot(root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(tasks.read_bytes() + b"\n# mine\n")
    refused = cli("revert", "--target", root)
    assert refused.exit_code == Exit.CHANGED
    advice = f"git -C {root.resolve()} checkout -- ultralytics/nn/tasks.py"
    assert advice in " ".join(refused.output.split())
    git("checkout", "--", "ultralytics/nn/tasks.py")  # what the advice says, then revert finishes
    assert cli("revert", "--target", root).exit_code == 0
    assert {k: v for k, v in snapshot(root).items() if not k.startswith(".git/")} == {
        k: v for k, v in pristine.items() if not k.startswith(".git/")
    }


# -- packaging -----------------------------------------------------------------------------------
def test_pip_install_adds_one_import_package(tmp_path):
    """What `pip install .` puts in site-packages: rtdetr_patch and its dist-info, nothing generic."""
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    src = tmp_path / "src"
    for rel in tracked:
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (whl,) = (tmp_path / "dist").glob("rtdetr_patch-*.whl")
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"rtdetr_patch", f"rtdetr_patch-{rtdetr_patch.__version__}.dist-info"}, tops
    for must in (
        "rtdetr_patch/__main__.py",
        "rtdetr_patch/api.py",
        "rtdetr_patch/cli.py",
        "rtdetr_patch/patcher/target/smoke.py",
        "rtdetr_patch/patcher/target/module_probe.py",
        "rtdetr_patch/patcher/target/target_common.py",
        "rtdetr_patch/templates/Addmodules/ResNet.py",
        "rtdetr_patch/patches/parse_model.py",
        "rtdetr_patch/templates/Addmodules/MobileNetV3.py",
        "rtdetr_patch/templates/yolo/11/yolo11-MobileNetV3.yaml",
    ):
        assert must in names, must
    # Every source file of the folders pyproject maps (a subfolder missing from its package list would be left
    # out of the wheel and break the installed tool), and py.typed for the typed API.
    shipped = {
        f"rtdetr_patch/{rel}" for rel in tracked if rel.endswith(".py") and rel.split("/")[0] in ("patcher", "patches")
    } | {"rtdetr_patch/py.typed"}
    assert shipped <= set(names), sorted(shipped - set(names))
    # Installed into a folder of its own, it runs as `python -m rtdetr_patch` without the repository.
    site = tmp_path / "site"
    with zipfile.ZipFile(whl) as zf:
        zf.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "rtdetr_patch", "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0 and rtdetr_patch.__version__ in done.stdout
    found = subprocess.run(
        [sys.executable, "-c", "import rtdetr_patch.templates as t; print(t.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert Path(found.stdout.strip()).is_relative_to(site), found


def test_check_table_names_every_row_and_keeps_paths_whole(tree, cli):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    rows = [line for line in cli("check", "--target", root, "--static").output.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert cells and all(c[0] for c in cells), rows  # no row without a name in the first column
    paths = {c[2] for c in cells}
    for name in (
        "rtdetr-MobileNetV3.yaml",
        "rtdetr-MobileNetV3-large.yaml",
        "rtdetr-MobileNetV3-small.yaml",
        "rtdetr-MobileNetV3-tv.yaml",
    ):
        assert f"cfg/models/rt-detr/{name}" in paths, paths  # each yaml named whole, on one line
