"""What keeps the commands fast, asserted by counts rather than by timings (these machines are noisy).

* one parse per file per run, shared by every transform of that file, hand-edit detection and the
  release probes;
* each transform walks only its target (visited nodes counted against the whole file);
* transforms that exist for old releases only are gated by release: elsewhere their file is not read;
* a finished record whose files all still have their recorded SHA-256 answers ``check --static`` and a
  repeated ``apply`` with the same report a full planning gives, and without importing libcst or git;
  any changed byte sends them back to planning.
Wall-clock figures are in ``benchmarks/bench_cli.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import libcst as cst
import pytest
from conftest import LATEST, OLD, RELEASES, snapshot
from rtdetr_patch.patcher.commands.check import inspect
from rtdetr_patch.patcher.errors import Exit
from rtdetr_patch.patcher.install.locate import locate
from rtdetr_patch.patcher.plan import source

from rtdetr_patch import patches


def test_one_parse_per_file_per_run(tree, cli, monkeypatch):
    root = tree(OLD)  # 8.0.227: five files need transforms (tasks.py, torch_utils.py, block.py, the two loss files)
    source._PARSED.clear()
    parsed: list[int] = []
    real = source._parse

    def counting(data, where):
        parsed.append(len(data))
        return real(data, where)

    monkeypatch.setattr(source, "_parse", counting)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    assert len(parsed) == 5, parsed  # tasks.py once, though transforms, hand-edit check and probe all read it


class _Counting:
    """Count the nodes a transform's walk enters."""

    def __init__(self, transform_cls):
        counter = self

        class Counted(transform_cls):
            def on_visit(self, node):
                counter.count += 1
                return super().on_visit(node)

        self.count = 0
        self.cls = Counted


def _all_nodes(module: cst.Module) -> int:
    count = 0

    class Every(cst.CSTVisitor):
        def on_visit(self, node):
            nonlocal count
            count += 1
            return True

    module.visit(Every())
    return count


@pytest.mark.parametrize("release", [OLD, LATEST])
def test_each_transform_walks_only_its_target(release_trees, release):
    tasks = (release_trees(release) / "ultralytics" / "nn" / "tasks.py").read_bytes()
    module = cst.parse_module(tasks.decode("utf-8"))
    whole = _all_nodes(module)
    for transform in patches.ALL:
        if transform.FILE != "nn/tasks.py":
            continue
        counted = _Counting(transform)
        counted.cls().run(module)
        assert counted.count < whole * 0.15, (transform.NAME, counted.count, whole)


def test_old_release_transforms_are_gated(tree, cli, state_home):
    """On the latest release, get-flops and repc3 are not needed: their files are not even read."""
    root = tree(LATEST)
    for rel in ("utils/torch_utils.py", "nn/modules/block.py"):
        (root / "ultralytics" / rel).write_bytes(b"this is not python (\n")
    done = cli("apply", "--target", root, "--no-verify")
    assert done.exit_code == 0, done.output
    old = tree(OLD)  # where they can be needed, the shape check reads the file and stops on garbage
    (old / "ultralytics" / "utils" / "torch_utils.py").write_bytes(b"this is not python (\n")
    before = snapshot(old)
    refused = cli("apply", "--target", old, "--no-verify")
    assert refused.exit_code == Exit.TRANSFORM and "torch_utils.py" in refused.output
    assert snapshot(old) == before


@pytest.mark.parametrize("release", RELEASES)
def test_record_answers_like_a_full_check(tree, cli, release):
    root = tree(release)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    install = locate(target=str(root))
    assert inspect(install, trust_record=True) == inspect(install, trust_record=False)


def test_any_changed_byte_is_still_found(tree, cli):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    added = root / "ultralytics" / "cfg" / "models" / "rt-detr" / "rtdetr-MobileNetV3.yaml"
    added.write_bytes(added.read_bytes().replace(b"nc: 80", b"nc: 81"))
    report = json.loads(cli("check", "--target", root, "--static", "--json").stdout)
    assert report["exit_code"] == Exit.NOT_PATCHED
    assert "cfg/models/rt-detr/rtdetr-MobileNetV3.yaml is changed since apply" in report["problems"]
    redo = cli("apply", "--target", root, "--no-verify")  # not "already patched": the record is contradicted
    assert redo.exit_code == Exit.CONFLICT, redo.output


PROBE = """
import runpy, sys
sys.argv = ["rtdetr-patch", *sys.argv[1:]]
try:
    runpy.run_module("rtdetr_patch", run_name="__main__")
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("libcst", "git") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "CODE=%s" % code)
"""


def _probe(*args) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return done.stdout.strip().splitlines()[-1]


def test_record_only_paths_import_neither_libcst_nor_git(tree, cli):
    root = tree(LATEST)
    assert _probe("--version") == "HEAVY= CODE=0"
    assert _probe("check", "--help") == "HEAVY= CODE=0"
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    assert _probe("check", "--target", root, "--static", "-q") == "HEAVY= CODE=0"
    assert _probe("apply", "--target", root, "--no-verify", "-q") == "HEAVY= CODE=0"
    # A changed byte: check plans again (libcst), and says what changed.
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(tasks.read_bytes() + b"\n")
    assert _probe("check", "--target", root, "--static", "-q") == f"HEAVY=libcst CODE={int(Exit.CHANGED)}"


def test_only_the_command_process_turns_the_collector_off():
    """The command switches Python's cyclic collector off for its own short process (its trees hold no
    cycles); importing the package or its API in a user's process leaves the collector as it was."""
    code = (
        "import gc, rtdetr_patch, rtdetr_patch.api, rtdetr_patch.cli; a = gc.isenabled(); "
        "import rtdetr_patch._entry; print(a, gc.isenabled())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "False"], done
