"""The changeset and the transaction on a small fake install (a temporary folder, no Ultralytics wheel): write and
commit, rollback on a failed write and on Ctrl-C, revert, recovery of a journal left "applying" or "reverting",
and the kill points counted where the crash-safety tests expect them. Also the typed ``Record.adopted`` and the
platform's folders."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import rtdetr_patch.patcher.disk.killpoints as killpoints
from rtdetr_patch.patcher.disk.files import sha256
from rtdetr_patch.patcher.errors import WRITTEN_NOT_VERIFIED, Exit, Interrupted, PatchError
from rtdetr_patch.patcher.install.folders import tool_folder
from rtdetr_patch.patcher.install.locate import Install
from rtdetr_patch.patcher.plan.planner import Addition, FileChange, Plan, Step
from rtdetr_patch.patcher.record.manifest import AdoptedAccount, Record
from rtdetr_patch.patcher.record.store import Store
from rtdetr_patch.patcher.states import Outcome
from rtdetr_patch.patcher.write import transaction as transaction_module
from rtdetr_patch.patcher.write.changeset import changeset_of, undo_of
from rtdetr_patch.patcher.write.transaction import Transaction

from rtdetr_patch import patches

TASKS, BLOCK, ADDED = "nn/tasks.py", "nn/modules/block.py", "nn/Addmodules/Net.py"
PRISTINE = {"__init__.py": b"__version__ = '8.4.190'\n", TASKS: b"tasks = 1\r\n", BLOCK: b"block = 1\n"}
PATCHED = {TASKS: b"tasks = 2\r\n", BLOCK: b"block = 2\n"}
NET = b"class Net: ...\n"


@pytest.fixture
def install(tmp_path) -> Install:
    package = tmp_path / "site" / "ultralytics"
    for rel, data in PRISTINE.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_bytes(data)
    return Install(package=package, release="8.4.190", python=sys.executable, how="test")


@pytest.fixture(autouse=True)
def counted(monkeypatch):
    """A fresh kill-point counter for each test (the process-wide one counts every run)."""
    monkeypatch.setattr(killpoints, "_reached", 0)
    monkeypatch.delenv(killpoints.INTERRUPT_ENV, raising=False)
    monkeypatch.delenv(killpoints.KILL_ENV, raising=False)


def files(install: Install) -> dict[str, bytes]:
    root = install.package
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def plan_of(install: Install) -> Plan:
    """Two files changed and one file added in a folder that does not exist yet, as the planner would say."""
    transform = patches.ALL[0]
    changes = [
        FileChange(
            rel,
            install.package / rel,
            PRISTINE[rel],
            PATCHED[rel],
            steps=[Step(transform, Outcome.PATCHED)] if rel == TASKS else [],
        )
        for rel in (TASKS, BLOCK)
    ]
    return Plan(install, changes, [Addition(ADDED, install.package / ADDED, NET)])


def test_a_changeset_holds_every_byte_before_and_after_and_the_record(install):
    changes = changeset_of(install, plan_of(install), None, None, ())
    assert [(w.rel, w.before, w.after) for w in changes.writes] == [
        (TASKS, PRISTINE[TASKS], PATCHED[TASKS]),
        (BLOCK, PRISTINE[BLOCK], PATCHED[BLOCK]),
    ]
    assert [(a.rel, a.before, a.after) for a in changes.adds] == [(ADDED, None, NET)]
    assert changes.folders == ("nn/Addmodules",) and changes.record.dirs == ("nn/Addmodules",)
    assert dict(changes.originals) == {TASKS: PRISTINE[TASKS], BLOCK: PRISTINE[BLOCK]}
    record = changes.record
    assert record.state == "applied" and record.release == "8.4.190" and record.adopted is None
    assert [(f.path, f.original_sha256, f.patched_sha256) for f in record.files] == [
        (rel, sha256(PRISTINE[rel]), sha256(PATCHED[rel])) for rel in (TASKS, BLOCK)
    ]
    assert [(a.path, a.sha256) for a in record.added] == [(ADDED, sha256(NET))]
    assert [t.name for t in record.transforms] == [patches.ALL[0].NAME] and files(install) == PRISTINE
    with pytest.raises(dataclasses.FrozenInstanceError):
        changes.record = record  # type: ignore[misc]


def test_apply_records_the_originals_then_writes_and_commits(install):
    store = Store(install)
    done = Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    assert done.written == (TASKS, BLOCK) and done.added == (ADDED,)
    assert files(install) == {**PRISTINE, **PATCHED, ADDED: NET}
    record = store.read()
    assert record is not None and record.state == "applied"
    assert (store.originals / TASKS).read_bytes() == PRISTINE[TASKS]
    assert killpoints._reached == 1 + 2 * 2 + 2 + 1  # recorded; each write (inside and after); the end


def test_a_failed_write_puts_every_byte_back_and_removes_the_new_folder(install, monkeypatch):
    real = transaction_module.atomic_write

    def failing(path: Path, data: bytes) -> None:
        if path.name == "Net.py":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(transaction_module, "atomic_write", failing)
    store = Store(install)
    with pytest.raises(PatchError) as caught:
        Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    assert caught.value.code is Exit.WRITE
    assert caught.value.message == (
        f"Writing Ultralytics 8.4.190 at {install.package} failed: [Errno 28] No space left on device"
    )
    assert caught.value.hint == (
        "Every file was put back as it was. Fix the cause (disk space, permissions) and run apply again."
    )
    assert files(install) == PRISTINE and not (install.package / "nn" / "Addmodules").exists()
    assert store.read() is None


@pytest.mark.parametrize("point", [0, 1, 2, 3, 4, 5, 6])
def test_ctrl_c_while_writing_puts_every_byte_back(install, monkeypatch, point):
    monkeypatch.setenv(killpoints.INTERRUPT_ENV, str(point))
    store = Store(install)
    with pytest.raises(Interrupted) as caught:
        Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    assert caught.value.state == (
        "Interrupted while writing: every file was put back, the install is as it was. Run `rtdetr-patch apply` again."
    )
    assert files(install) == PRISTINE and not (install.package / "nn" / "Addmodules").exists()
    assert store.read() is None and not list(install.package.rglob("*.rtdetr-patch"))


def test_ctrl_c_after_the_last_write_leaves_the_patch_recorded(install, monkeypatch):
    monkeypatch.setenv(killpoints.INTERRUPT_ENV, "7")
    store = Store(install)
    with pytest.raises(Interrupted) as caught:
        Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    assert caught.value.state == WRITTEN_NOT_VERIFIED
    record = store.read()
    assert record is not None and record.state == "applied" and files(install)[ADDED] == NET


def test_revert_puts_back_and_leaves_what_someone_else_changed(install):
    store = Store(install)
    Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    (install.package / BLOCK).write_bytes(b"mine\n")
    record = store.read()
    assert record is not None
    killpoints._reached = 0
    done = Transaction(install, store).revert(undo_of(install, store, record), "revert: test")
    assert done.restored == (TASKS,) and done.removed == (ADDED,) and done.left == (BLOCK,)
    assert files(install) == {**PRISTINE, BLOCK: b"mine\n"} and not (install.package / "nn" / "Addmodules").exists()
    assert store.read() is None
    assert killpoints._reached == 1 + 2 + 1 + 1  # journal; the write (inside and after); the removal; the end


def test_revert_with_force_takes_back_an_edited_file(install):
    store = Store(install)
    Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    (install.package / BLOCK).write_bytes(b"mine\n")
    record = store.read()
    assert record is not None
    done = Transaction(install, store).revert(undo_of(install, store, record, frozenset({BLOCK})), "revert: test")
    assert done.restored == (TASKS, BLOCK) and done.left == () and files(install) == PRISTINE


def test_recovery_rolls_back_an_apply_killed_half_way(install):
    store = Store(install)
    changes = changeset_of(install, plan_of(install), None, None, ())
    store.record(changes.record.with_state("applying"), dict(changes.originals))
    (install.package / TASKS).write_bytes(PATCHED[TASKS])  # the first write happened, the rest did not
    (install.package / "nn" / "Addmodules").mkdir()
    (install.package / "nn" / f".{Path(TASKS).name}.x1.rtdetr-patch").write_bytes(b"half")  # a killed write's temp
    message = Transaction(install, store).recover()
    assert message == "An interrupted apply was found and rolled back: the install is pristine again."
    assert files(install) == PRISTINE and not (install.package / "nn" / "Addmodules").exists()
    assert store.read() is None and Transaction(install, store).recover() is None


def test_recovery_completes_a_revert_killed_half_way(install):
    store = Store(install)
    Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    store.set_state("reverting")
    (install.package / TASKS).write_bytes(PRISTINE[TASKS])  # the first original was put back, the rest not
    message = Transaction(install, store).recover()
    assert message == "An interrupted revert was found and completed: the install is pristine again."
    assert files(install) == PRISTINE and store.read() is None


def test_recovery_names_the_files_someone_else_changed(install):
    store = Store(install)
    Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    store.set_state("applying")
    (install.package / ADDED).write_bytes(b"mine\n")
    message = Transaction(install, store).recover()
    assert message == (
        "An interrupted apply was found and rolled back: the install is pristine again. Left "
        f"untouched (changed by someone else): {ADDED}."
    )
    assert files(install) == {**PRISTINE, ADDED: b"mine\n"}


def test_a_finished_record_needs_no_recovery(install):
    store = Store(install)
    Transaction(install, store).apply(changeset_of(install, plan_of(install), None, None, ()))
    assert Transaction(install, store).recover() is None and files(install)[TASKS] == PATCHED[TASKS]


# -- the record's adopt account ------------------------------------------------------------------
ACCOUNT = {
    "source": "/tree/ultralytics",
    "source_release": "8.0.227",
    "in_place": True,
    "names": [{"name": "Net", "status": "carried", "rule": "backbone", "file": "x.py", "why": "", "code": ""}],
    "yamls": [{"path": "cfg/models/a.yaml", "source": {"params": 3}, "target": {"params": 3}}],
    "edits": [{"path": "nn/tasks.py", "why": "replaced"}],
}


def test_the_adopt_account_reads_and_writes_the_same_json():
    data = {"format": 1, "release": "8.4.190", "files": [], "adopted": ACCOUNT}
    record = Record.of(data, "m.json")
    assert isinstance(record.adopted, AdoptedAccount) and record.adopted.in_place
    assert record.adopted.edits[0]["path"] == "nn/tasks.py"
    assert json.dumps(record.to_dict()["adopted"]) == json.dumps(ACCOUNT)  # key for key, in the same order
    assert Record.of({**data, "adopted": {}}, "m.json").adopted is None
    assert "adopted" not in Record.of({**data, "adopted": {}}, "m.json").to_dict()


def test_a_malformed_adopt_account_names_its_key():
    with pytest.raises(PatchError) as caught:
        Record.of({"format": 1, "release": "8.4.190", "files": [], "adopted": {**ACCOUNT, "in_place": "yes"}}, "m")
    assert caught.value.code is Exit.STORE and "(adopted.in_place)" in caught.value.message


# -- the platform's folders ----------------------------------------------------------------------
def test_the_tool_variable_wins_then_the_xdg_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("RTDETR_PATCH_TEST_HOME", str(tmp_path / "mine"))
    assert tool_folder("RTDETR_PATCH_TEST_HOME", "XDG_STATE_HOME", ".local/state") == tmp_path / "mine"
    monkeypatch.delenv("RTDETR_PATCH_TEST_HOME")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert tool_folder("RTDETR_PATCH_TEST_HOME", "XDG_CACHE_HOME", ".cache") == tmp_path / "cache" / "rtdetr-patch"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert tool_folder("X_UNSET", "XDG_CACHE_HOME", ".cache", "cache") == tmp_path / "local" / "rtdetr-patch" / "cache"
