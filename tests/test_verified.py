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
    (site / "torch-2.14.1.dist-info").mkdir()
    found = Install(package=site / "ultralytics", release="8.4.190", python=sys.executable, how="test")
    store = Store(found)
    store.dir.mkdir(parents=True)
    store.manifest_path.write_text('{"state": "applied"}', encoding="utf-8")
    return found


@pytest.fixture
def smoke_runs(monkeypatch) -> list[dict]:
    runs: list[dict] = []

    def smoke(install, yaml, on_stage, train=False):
        runs.append({"yaml": yaml, "train": train})
        return {"yaml": yaml, "seconds": 1.0, "run": len(runs)}

    monkeypatch.setattr(verify_module, "verify", smoke)
    return runs


def test_a_second_check_with_nothing_changed_takes_the_last_passing_run(install, smoke_runs):
    first = api._verify(install, YAML, lambda s: None, fresh=False)
    again = api._verify(install, YAML, lambda s: None, fresh=False)
    assert len(smoke_runs) == 1 and "cached" not in first
    assert again["run"] == 1 and again["cached"]["verified_at"]


@pytest.mark.parametrize(
    "change",
    ["the record", "the yaml", "a package upgraded", "--fresh", "--train"],
)
def test_anything_the_run_depends_on_runs_it_again(install, smoke_runs, change):
    api._verify(install, YAML, lambda s: None, fresh=False)
    store = Store(install)
    fresh, train = change == "--fresh", change == "--train"
    if change == "the record":
        store.manifest_path.write_text('{"state": "applied", "files": []}', encoding="utf-8")
    elif change == "the yaml":
        (install.package / "cfg" / "models" / "rt-detr" / YAML).write_text("nc: 2\n", encoding="utf-8")
    elif change == "a package upgraded":
        (install.root / "torch-2.14.1.dist-info").rename(install.root / "torch-2.15.0.dist-info")
    again = api._verify(install, YAML, lambda s: None, train, fresh=fresh)
    assert len(smoke_runs) == 2 and "cached" not in again, change


def test_a_train_run_is_never_kept_and_a_failed_run_never_kept(install, smoke_runs, monkeypatch):
    api._verify(install, YAML, lambda s: None, True, fresh=False)
    assert not (Store(install).dir / verified.FILE).exists()

    def failing(install, yaml, on_stage, train=False):
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
