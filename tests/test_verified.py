"""check's cache of the last passing smoke run (patcher/record/verified.py; issue 27): taken only when nothing
the run depends on changed, never for --train or --fresh, and kept only from a run that passed.

No Ultralytics here: a fake install folder, a manifest file, and a stand-in for the smoke run that counts its calls.
"""

from __future__ import annotations

import sys

import pytest
from rtdetr_patch.patcher.commands import verify as verify_module
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.install.locate import Install
from rtdetr_patch.patcher.record import verified
from rtdetr_patch.patcher.record.store import Store

from rtdetr_patch import api

YAML = "rtdetr-MobileNetV3.yaml"


@pytest.fixture
def install(tmp_path, monkeypatch) -> Install:
    monkeypatch.setenv("RTDETR_PATCH_HOME", str(tmp_path / "state"))
    site = tmp_path / "site"
    models = site / "ultralytics" / "cfg" / "models" / "rt-detr"
    models.mkdir(parents=True)
    (models / YAML).write_text("nc: 80\n", encoding="utf-8")
    (site / "ultralytics" / "nn" / "modules").mkdir(parents=True)
    (site / "ultralytics" / "nn" / "modules" / "block.py").write_bytes(b"def f(x):\r\n    return x + 1\r\n")
    (site / "ultralytics" / "nn" / "Addmodules").mkdir()
    (site / "ultralytics" / "nn" / "Addmodules" / "MyNet.py").write_bytes(b"class MyNet:\r\n    width = 1\r\n")
    (site / "torch-2.14.1.dist-info").mkdir()
    found = Install(package=site / "ultralytics", release="8.4.190", python=sys.executable, how="test")
    store = Store(found)
    store.dir.mkdir(parents=True)
    store.manifest_path.write_text('{"state": "applied"}', encoding="utf-8")
    return found


@pytest.fixture
def smoke_runs(monkeypatch) -> list[dict]:
    runs: list[dict] = []

    def smoke(install, yaml, on_stage, train=False, stock=True):
        runs.append({"yaml": yaml, "train": train, "stock": stock})
        return {"yaml": yaml, "seconds": 1.0, "run": len(runs), "rtdetr_l_params": 32_970_476 if stock else None}

    monkeypatch.setattr(verify_module, "verify", smoke)
    return runs


def test_a_second_check_with_nothing_changed_takes_the_last_passing_run(install, smoke_runs):
    first = api._verify(install, YAML, lambda s: None, fresh=False)
    again = api._verify(install, YAML, lambda s: None, fresh=False)
    assert len(smoke_runs) == 1 and "cached" not in first
    assert again["run"] == 1 and again["cached"]["verified_at"]


@pytest.mark.parametrize(
    "change",
    [
        "the record",
        "the yaml",
        "a package upgraded",
        "--fresh",
        "--train",
        "a file nobody patched",
        "an added module",
        "a new file in the package",
        "the user's own yaml",
        "the python version",
    ],
)
def test_anything_the_run_depends_on_runs_it_again(install, smoke_runs, change, monkeypatch, tmp_path):
    own = tmp_path / "own.yaml"  # a yaml of the user's, outside the package
    own.write_text("nc: 2\n", encoding="utf-8")
    yaml = str(own) if change == "the user's own yaml" else YAML
    api._verify(install, yaml, lambda s: None, fresh=False)
    assert "cached" in api._verify(install, yaml, lambda s: None, fresh=False)  # nothing changed yet
    runs = len(smoke_runs)
    store = Store(install)
    fresh, train = change == "--fresh", change == "--train"
    if change == "the record":
        store.manifest_path.write_text('{"state": "applied", "files": []}', encoding="utf-8")
    elif change == "the yaml":
        (install.package / "cfg" / "models" / "rt-detr" / YAML).write_text("nc: 2\n", encoding="utf-8")
    elif change == "a package upgraded":
        (install.root / "torch-2.14.1.dist-info").rename(install.root / "torch-2.15.0.dist-info")
    elif change == "a file nobody patched":  # a hand edit after the verified run: one byte, same size
        block = install.package / "nn" / "modules" / "block.py"
        block.write_bytes(block.read_bytes().replace(b"x + 1", b"x - 1"))
    elif change == "an added module":
        (install.package / "nn" / "Addmodules" / "MyNet.py").write_bytes(b"class MyNet:\r\n    width = 2\r\n")
    elif change == "a new file in the package":
        (install.package / "nn" / "modules" / "extra.py").write_bytes(b"")
    elif change == "the python version":
        monkeypatch.setattr(verified.platform, "python_version", lambda: "3.99.0")
    elif change == "the user's own yaml":
        own.write_text("nc: 3\n", encoding="utf-8")
    again = api._verify(install, yaml, lambda s: None, train, fresh=fresh)
    assert len(smoke_runs) == runs + 1 and "cached" not in again, change


def test_a_train_run_is_never_kept_and_a_failed_run_never_kept(install, smoke_runs, monkeypatch):
    api._verify(install, YAML, lambda s: None, True, fresh=False)
    assert not (Store(install).dir / verified.FILE).exists()

    def failing(install, yaml, on_stage, train=False, stock=True):
        raise PatchError(Exit.VERIFY, "the smoke run failed", "fix it")

    monkeypatch.setattr(verify_module, "verify", failing)
    with pytest.raises(PatchError):
        api._verify(install, YAML, lambda s: None, fresh=False)
    assert not (Store(install).dir / verified.FILE).exists()


def test_no_record_no_cache(install, smoke_runs):
    Store(install).manifest_path.unlink()
    api._verify(install, YAML, lambda s: None, fresh=False)
    api._verify(install, YAML, lambda s: None, fresh=False)
    assert len(smoke_runs) == 2


def test_a_damaged_cache_file_is_a_miss(install, smoke_runs):
    api._verify(install, YAML, lambda s: None, fresh=False)
    (Store(install).dir / verified.FILE).write_text("{not json", encoding="utf-8")
    assert "cached" not in api._verify(install, YAML, lambda s: None, fresh=False)
    assert len(smoke_runs) == 2


def test_a_failed_run_is_never_reused_and_the_last_passing_one_is_not_taken_after_it(install, smoke_runs, monkeypatch):
    """A run that passed, then a hand edit whose run fails: the edit undone is the passing key again (taken), but
    the failing state is run every time."""
    block = install.package / "nn" / "modules" / "block.py"
    good = block.read_bytes()
    api._verify(install, YAML, lambda s: None, fresh=False)
    passing = verify_module.verify

    def failing(install, yaml, on_stage, train=False, stock=True):
        smoke_runs.append({"failed": True})
        raise PatchError(Exit.VERIFY, "the smoke run failed", "fix it")

    monkeypatch.setattr(verify_module, "verify", failing)
    block.write_bytes(good + b"broken\r\n")
    for _ in range(2):
        with pytest.raises(PatchError):
            api._verify(install, YAML, lambda s: None, fresh=False)
    assert len(smoke_runs) == 3
    monkeypatch.setattr(verify_module, "verify", passing)
    block.write_bytes(good)
    assert api._verify(install, YAML, lambda s: None, fresh=False)["cached"]


def test_stock_rtdetr_l_is_built_again_only_when_a_byte_of_the_package_changed(install, smoke_runs):
    api._verify(install, YAML, lambda s: None, fresh=True)
    again = api._verify(install, YAML, lambda s: None, fresh=True)
    assert [r["stock"] for r in smoke_runs] == [True, False]
    assert again["rtdetr_l_params"] == 32_970_476 and again["stock_checked"]["at"]
    third = api._verify(install, YAML, lambda s: None, fresh=True)  # a run that skipped it passes the fact on
    assert third["stock_checked"] == again["stock_checked"] and smoke_runs[-1]["stock"] is False
    (install.package / "nn" / "modules" / "block.py").write_bytes(b"def f(x):\n    return x\n")
    api._verify(install, YAML, lambda s: None, fresh=True)
    assert smoke_runs[-1]["stock"] is True


def test_the_package_digest_reads_every_file_but_pycache(tmp_path):
    package = tmp_path / "ultralytics"
    (package / "nn" / "__pycache__").mkdir(parents=True)
    (package / "nn" / "tasks.py").write_bytes(b"a = 1\r\n")
    before = verified.package_digest(package)
    (package / "nn" / "__pycache__" / "tasks.cpython-311.pyc").write_bytes(b"\0")
    assert verified.package_digest(package) == before
    (package / "nn" / "tasks.py").write_bytes(b"a = 1\n")
    assert verified.package_digest(package) != before
    (package / "nn" / "tasks.py").write_bytes(b"a = 1\r\n")
    (package / "nn" / "tasks.py").rename(package / "nn" / "task.py")
    assert verified.package_digest(package) != before


def test_the_python_version_is_read_without_starting_the_interpreter(tmp_path):
    assert verified.python_version(sys.executable) == verified.platform.python_version()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_bytes(b"")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.9.18\n", encoding="utf-8")
    assert verified.python_version(str(venv / "bin" / "python")) == "3.9.18"
