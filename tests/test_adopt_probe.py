"""adopt's probe (``patcher/target/adopt_probe.py``) on small stand-in Ultralytics trees: which ``ultralytics`` it
imports, each yaml in a bounded child, its progress events; and how the engine words what it finds.

The stand-in packages are a few lines each (an ``__init__`` with a ``__version__``, an ``nn/tasks.py`` whose
"yamls" are JSON and whose models sleep, allocate or crash on request), so each probe run takes seconds. A
``sitecustomize`` on ``PYTHONPATH`` installs a finder the way an editable install of Ultralytics does (after the
path finder, filling in any ``ultralytics.*`` module the path finder does not find): the real way a tree that
lacks a file gets another Ultralytics' copy of it.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from adopt_trees import blog_tree
from conftest import LATEST, OLD, snapshot, wheel
from rtdetr_patch.patcher.commands import adopt as adopting
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.results import AdoptNameRow, AdoptResult, Stage
from rtdetr_patch.patcher.states import AdoptStatus
from rtdetr_patch.patcher.target import runner
from rtdetr_patch.patcher.target.target_common import SPAWN_ENV

from rtdetr_patch import console

TASKS = """\
import json, os, time
{extra}

def yaml_model_load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Weight:
    def __init__(self, n):
        self.n = n

    def numel(self):
        return self.n


class DetectionModel:
    def __init__(self, path, verbose=False):
        cfg = yaml_model_load(path)
        if cfg.get("do") == "sleep":
            time.sleep(600)
        if cfg.get("do") == "allocate":
            self.blob = bytearray(cfg["bytes"])
        if cfg.get("do") == "crash":
            os.abort()
        self.n = cfg.get("params", 1) + len(RELEASE)

    def parameters(self):
        return [Weight(self.n)]
"""
# an editable install's finder, as setuptools writes one: after the path finder, it finds ultralytics.* in OTHER
EDITABLE = """\
import importlib.machinery, os, sys

OTHER = {other!r}


class Editable:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "ultralytics" and not fullname.startswith("ultralytics."):
            return None
        parts = fullname.split(".")[1:]
        return importlib.machinery.PathFinder.find_spec(fullname, [os.path.join(OTHER, *parts[:-1])])


sys.meta_path.append(Editable)
"""


def package(folder: Path, release: str, extra: str = "") -> Path:
    """A stand-in ``ultralytics`` package in ``folder`` (its name as given): a release and an ``nn/tasks.py``."""
    (folder / "nn").mkdir(parents=True)
    (folder / "__init__.py").write_text(f'__version__ = "{release}"\n', encoding="utf-8")
    (folder / "nn" / "__init__.py").write_text("", encoding="utf-8")
    tasks = TASKS.format(extra=extra) + f"RELEASE = {release!r}\n"
    (folder / "nn" / "tasks.py").write_text(tasks, encoding="utf-8")
    return folder


def yaml(folder: Path, name: str, **cfg) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return str(path)


def probe(root: Path, pkg: Path, yamls=(), imports=(), env=None, **limits):
    events: list[dict] = []
    spec = {"package": str(pkg), "imports": list(imports), "yamls": list(yamls), "jobs": 2, **limits}
    done = runner.run("adopt-probe", sys.executable, [str(root)], spec=spec, cwd=root, env=env, on_event=events.append)
    return done.answer, events[:-1]


@pytest.fixture
def other(tmp_path) -> Path:
    """Another Ultralytics (the interpreter's), 0.0.1, with an ``nn/extra.py`` the forks below lack."""
    found = package(tmp_path / "site" / "ultralytics", "0.0.1")
    (found / "nn" / "extra.py").write_text("WHERE = 'the other one'\n", encoding="utf-8")
    return found


def test_the_tree_is_imported_from_its_own_folder_whatever_its_name(tmp_path, other):
    """--from a folder holding the package under another name: built with that package, not the interpreter's."""
    fork = tmp_path / "fork"
    own = package(fork / "yolo_renamed", "8.2.50")
    answer, _ = probe(fork, own, [yaml(fork, "a", params=10)], env={"PYTHONPATH": str(other.parent)})
    assert answer["release"] == "8.2.50" and answer["package"] == str(own)
    assert answer["builds"][str(fork / "a.yaml")]["params"] == 10 + len("8.2.50")  # its own tasks.py built it


def test_a_module_found_in_another_ultralytics_is_reported_and_nothing_built(tmp_path, other):
    fork = tmp_path / "fork"
    own = package(fork / "ultralytics", "8.2.50", extra="from ultralytics.nn import extra")  # extra.py: not here
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(EDITABLE.format(other=str(other)), encoding="utf-8")
    answer, events = probe(fork, own, [yaml(fork, "a")], env={"PYTHONPATH": str(tmp_path / "hook")})
    assert answer["elsewhere"] == {"module": "ultralytics.nn.extra", "file": str(other / "nn" / "extra.py")}
    assert "builds" not in answer and not events  # known before any yaml is built
    with pytest.raises(PatchError) as wrong:
        adopting._checked(answer, own, "8.2.50", sys.executable, "The tree's yamls")
    assert wrong.value.code == Exit.ADOPT
    assert str(other / "nn" / "extra.py") in wrong.value.message and str(own) in wrong.value.message


def test_another_release_than_the_trees_is_refused():
    answer = {"release": "8.4.190", "package": "/site/ultralytics", "imports": {}, "builds": {}}
    with pytest.raises(PatchError) as wrong:
        adopting._checked(answer, Path("/fork/ultralytics"), "8.2.50", "python", "The tree's yamls")
    assert wrong.value.code == Exit.ADOPT
    assert "8.4.190" in wrong.value.message and "8.2.50" in wrong.value.message
    assert "/site/ultralytics" in wrong.value.message and str(Path("/fork/ultralytics")) in wrong.value.message


def test_a_tree_that_does_not_import_is_answered_before_any_build(tmp_path):
    fork = tmp_path / "fork"
    own = package(fork / "ultralytics", "8.2.50")
    (own / "nn" / "tasks.py").write_text("def broken(:\n", encoding="utf-8")
    answer, events = probe(fork, own, [yaml(fork, "a")])
    assert "SyntaxError" in answer["fatal"]["error"] and not events
    assert answer["fatal"]["where"] == [str(own / "nn" / "tasks.py"), 1]


def test_a_staged_target_that_does_not_import_names_the_edit_it_fails_in(tmp_path):
    """In place, the tree's own edit left beside the release's files put back is named, not the interpreter."""
    staged = tmp_path / "stage" / "ultralytics"
    edited = staged / "nn" / "modules" / "block.py"
    survey = SimpleNamespace(modified=["nn/modules/block.py", "nn/tasks.py"])
    install = SimpleNamespace(release="8.0.227", package=Path("/site/ultralytics"), python="python")
    job = SimpleNamespace(install=install, survey=survey, in_place=True, sources={"nn/tasks.py": b""})
    fatal = {"error": "ImportError: cannot import name 'Mine' from 'ultralytics.nn.tasks'", "where": [str(edited), 9]}
    mine = adopting._staged_fails(job, staged, fatal)  # type: ignore[arg-type]
    assert mine.code == Exit.ADOPT and "(in nn/modules/block.py, line 9)" in mine.message
    assert "one of your edits" in mine.hint and "nn/tasks.py" in mine.hint and "interpreter" not in mine.hint
    assert "reinstall" not in mine.hint  # never advice that would wipe the edits
    outside = adopting._staged_fails(job, staged, {"error": "OSError: libtorch", "where": ["/usr/lib/torch.py", 3]})  # type: ignore[arg-type]
    assert "in nn/" not in outside.message and "this interpreter runs Ultralytics" in outside.hint


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory limit is Linux's (RLIMIT_AS)")
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_each_yaml_is_bounded_and_the_rest_go_on(tmp_path, start):
    """A yaml past its time, one past its memory, one that crashes its child: each costs only itself. Forked
    children (Linux), and spawned workers replaced after a failure (Windows' and macOS' way)."""
    fork = tmp_path / "fork"
    own = package(fork / "ultralytics", "8.2.50")
    paths = [
        yaml(fork, "sleeps", do="sleep"),
        yaml(fork, "allocates", do="allocate", bytes=8 << 30),
        yaml(fork, "crashes", do="crash"),
        yaml(fork, "fine", params=5),
        yaml(fork, "also-fine", params=7),
    ]
    if start == "spawn":  # each failure costs a new worker (a second import): the memory limit is tested forked
        paths = [p for p in paths if "allocates" not in p and "also-fine" not in p]
    started = time.perf_counter()
    env = {SPAWN_ENV: "1"} if start == "spawn" else {}
    answer, events = probe(fork, own, paths, env=env, seconds=2, memory=512 << 20)
    took = time.perf_counter() - started
    builds = {Path(p).stem: r for p, r in answer["builds"].items()}
    assert builds["sleeps"]["limit"] == "time" and "longer than 2 s" in builds["sleeps"]["error"]
    assert builds["crashes"]["limit"] == "crash" and "signal 6" in builds["crashes"]["error"]
    assert builds["fine"]["params"] == 5 + 6
    if start == "fork":
        assert builds["allocates"]["limit"] == "memory" and "MemoryError" in builds["allocates"]["error"]
        assert "memory limit (0.5 GiB)" in builds["allocates"]["error"] and builds["also-fine"]["params"] == 7 + 6
    assert [e["done"] for e in events] == list(range(1, len(paths) + 1)) and {e["of"] for e in events} == {len(paths)}
    assert {e["built"] for e in events} == set(paths)
    assert took < 60  # the sleeping yaml was stopped at its limit, not waited for


def test_the_engine_keeps_the_builds_a_probe_reported_before_it_died(tmp_path, monkeypatch):
    fork = tmp_path / "fork"
    own = package(fork / "ultralytics", "8.2.50")
    paths = [yaml(fork, "fine", params=5), yaml(fork, "sleeps", do="sleep")]
    monkeypatch.setitem(runner.TIMEOUTS, "adopt-probe", 4)  # the probe's own limit, past the first yaml
    monkeypatch.setitem(runner.BUILD_LIMITS, "seconds", 600)
    monkeypatch.setattr(adopting, "JOBS", 1)
    seen = []
    answer = adopting._probe(sys.executable, fork, own, [], paths, lambda done, of: seen.append((done, of)))
    assert "did not answer" in answer["fatal"]["error"] and seen == [(1, 2)]
    assert adopting._built(answer, paths[0])["params"] == 11
    assert "did not answer" in adopting._built(answer, paths[1])["error"]


def test_a_generated_file_that_does_not_parse_stops_adopt_before_any_build():
    class Change:
        rel, after = "nn/tasks.py", b"x = 1\n"

    class Addition:
        def __init__(self, rel, data):
            self.rel, self.data = rel, data

    class Plan:
        files = [Change()]
        additions = [Addition("nn/Addmodules/mine.py", b"def (:\n"), Addition("cfg/models/x.yaml", b": :")]

    adopting._parses(Plan(), {"nn/Addmodules/mine.py"}, "8.4.190")  # type: ignore[arg-type]  # the fork's: probed
    Plan.additions.append(Addition("nn/Addmodules/__init__.py", b"from .x import \n"))
    with pytest.raises(PatchError) as broken:
        adopting._parses(Plan(), {"nn/Addmodules/mine.py"}, "8.4.190")  # type: ignore[arg-type]
    assert broken.value.code == Exit.ADOPT and "nn/Addmodules/__init__.py" in broken.value.message
    assert "8.4.190" in broken.value.message and "line 1" in broken.value.message


def test_a_failed_adopt_keeps_its_survey_in_the_json():
    survey = AdoptResult(source="/fork/ultralytics", source_release="8.2.50")
    survey.names = [AdoptNameRow("EMA", AdoptStatus.CARRIED, "same", "nn/extra_modules/attention.py", "", "")]
    error = PatchError(Exit.ADOPT, "the tree's yamls would be built with another Ultralytics", "restore the file")
    error.partial = survey
    found = AdoptResult.failed(error).to_dict()
    assert not found["ok"] and found["exit_code"] == Exit.ADOPT and "another Ultralytics" in found["error"]["message"]
    assert found["source_release"] == "8.2.50" and found["names"][0]["name"] == "EMA"
    assert AdoptResult.failed(PatchError(Exit.ADOPT, "no tree")).to_dict()["names"] == []


def test_progress_when_piped_is_a_line_per_hundred_yamls_and_at_the_end(monkeypatch):
    """The engine asks for a line every hundred yamls and at the end; piped, the console prints just those, on
    stderr (the smoke run's stages, plain text, print nothing there, as before)."""
    said: list[Stage] = []

    class Job:
        def say(self, text, line=True):
            said.append(Stage(text, line=line))

    count = adopting._counting(Job(), "in the tree")  # type: ignore[arg-type]
    for done in range(1, 251):
        count(done, 250)
    assert len(said) == 250
    assert [s for s in said if s.line] == [
        "building the yamls in the tree: 100 of 250",
        "building the yamls in the tree: 200 of 250",
        "building the yamls in the tree: 250 of 250",
    ]
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr(console, "out", console.make_console(stdout))
    monkeypatch.setattr(console, "err", console.make_console(stderr))
    progress = console.Progress()
    for stage in (Stage("adopt: reading the tree"), Stage("adopt: building: 1 of 250", line=False), "build"):
        progress(stage)
    progress.stop()
    assert stderr.getvalue().splitlines() == ["reading the tree (0 s)"] and stdout.getvalue() == ""


@pytest.mark.slow
def test_a_fork_built_with_another_ultralytics_stops_adopt_before_any_yaml_with_its_survey(
    tree, release_trees, cli, tmp_path, monkeypatch
):
    """A fork that lacks one of its release's files, adopted with an interpreter that has another copy of that
    release installed editable: the tree's column would be built partly with the other copy. Exit 16 naming both
    paths, before any yaml is built, and the JSON keeps the survey."""
    fork = blog_tree(tree(OLD))
    (fork / "nn" / "modules" / "transformer.py").unlink()
    other = tmp_path / "other" / "ultralytics"
    shutil.copytree(release_trees(OLD) / "ultralytics", other)
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(EDITABLE.format(other=str(other)), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "hook"))  # the probes' interpreter, not this one
    target = tree(LATEST)
    before = snapshot(target)
    done = cli("adopt", "--from", fork, "--target", target, "--wheel", wheel(OLD), "--dry-run", "--json")
    assert done.exit_code == Exit.ADOPT, done.output
    found = json.loads(done.output)
    message = found["error"]["message"]
    assert (
        "ultralytics.nn.modules.transformer" in message and str(other / "nn" / "modules" / "transformer.py") in message
    )
    assert str(fork) in message and "Nothing was written" in found["error"]["hint"]
    assert {n["name"] for n in found["names"]} >= {"EMA", "Zoom_cat", "C2f_EMA"}  # the survey, beside the error
    assert found["yamls"] and all(not y["source"] and not y["target"] for y in found["yamls"])  # none built
    assert snapshot(target) == before
