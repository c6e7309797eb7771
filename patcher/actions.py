"""The three commands as plain functions: locate, plan, write, record, verify.

The CLI (``cli.py``) only parses options and prints; everything that decides or writes is here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import patches
from patches import Outcome

from .errors import Exit, PatchError
from .locate import TESTED_RELEASES, Install
from .plan import ADDED_PACKAGE, Plan, make_plan, plan_file, sha256
from .store import Store, now


def atomic_write(path: Path, data: bytes) -> None:
    """Write beside the file, then move it into place: a reader sees the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rtdetr-patch", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _writable(paths: list[Path], install: Install) -> None:
    for path in paths:
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if (path.exists() and not os.access(path, os.W_OK)) or not os.access(folder, os.W_OK):
            raise PatchError(Exit.WRITE, f"Cannot write {path} (Ultralytics {install.release}): permission denied.",
                             "Run from an environment you own (a venv), or with the rights to change this install. "
                             "Nothing was written.")


def transforms_for(manifest: dict | None, val_rect_fix: bool = False):
    recorded = bool(manifest and manifest.get("options", {}).get("val_rect_fix"))
    return patches.selected(val_rect_fix=val_rect_fix or recorded)


# -- apply ---------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    plan: Plan
    written: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    already: bool = False


def _conflicts(plan: Plan, manifest: dict | None) -> None:
    ours = {a["path"]: a["sha256"] for a in (manifest or {}).get("added", [])}
    for add in plan.additions:
        if add.path.is_symlink() or (add.path.exists() and not add.path.is_file()):
            raise PatchError(Exit.CONFLICT, f"{add.path} exists and is not a plain file "
                             f"(Ultralytics {plan.install.release}).", "Move it away, then run apply again.")
        if add.path.is_file() and not add.present:
            data = add.path.read_bytes()
            if ours.get(add.rel) != sha256(data):
                raise PatchError(Exit.CONFLICT, f"{add.path} already exists and is not rtdetr-patch's "
                                 f"(Ultralytics {plan.install.release}); it was not overwritten.",
                                 "If it comes from following the blog by hand, reinstall Ultralytics "
                                 "(pip install --force-reinstall ultralytics==" + plan.install.release + ") "
                                 "and run apply again; otherwise move it away first. Nothing was written.")
    link = plan.install.package / ADDED_PACKAGE
    if link.is_symlink():
        raise PatchError(Exit.CONFLICT, f"{link} is a symbolic link (Ultralytics {plan.install.release}).",
                         "Remove the link, then run apply again. Nothing was written.")


def apply(install: Install, *, dry_run: bool = False, val_rect_fix: bool = False) -> ApplyResult:
    """Plan every transform; only if all succeed, record the originals, then write everything."""
    store = Store(install)
    manifest = store.manifest()
    plan = make_plan(install, transforms_for(manifest if manifest and manifest.get("release") == install.release
                                             else None, val_rect_fix))
    if plan.complete and manifest and manifest.get("release") == install.release:
        return ApplyResult(plan=plan, already=True)
    _conflicts(plan, manifest)
    if dry_run:
        return ApplyResult(plan=plan)
    if plan.complete:
        raise PatchError(Exit.STORE, f"Ultralytics {install.release} at {install.package} is already patched, "
                         f"but rtdetr-patch has no record of it in {store.dir}.",
                         "Without the record it cannot be reverted: reinstall Ultralytics "
                         f"(pip install --force-reinstall ultralytics=={install.release}) and apply again.")
    to_write = [f.path for f in plan.changes] + [a.path for a in plan.additions if not a.present]
    _writable(to_write, install)

    # The record: originals of the files this run changes, plus those an earlier run of the same
    # release already changed (a run that stopped half way); the new files and folders.
    old = {f["path"]: f for f in (manifest or {}).get("files", [])} if (manifest or {}).get("release") == \
        install.release else {}
    files, originals = [], {}
    for change in plan.files:
        if change.changed:
            files.append({"path": change.rel, "original_sha256": sha256(change.before),
                          "patched_sha256": sha256(change.after)})
            originals[change.rel] = change.before
        elif change.rel in old and old[change.rel]["patched_sha256"] == sha256(change.before):
            files.append(old[change.rel])
    created = sorted({str(PurePosixPath(a.rel).parent) for a in plan.additions
                      if not a.path.parent.exists()} | set((manifest or {}).get("dirs", [])
                                                          if old else []))
    record = {
        "tool": __import__("patcher").__version__,
        "release": install.release,
        "package": str(install.package),
        "applied_at": now(),
        "options": {"val_rect_fix": any(s.transform.NAME == "val-rect" for s in plan.steps)},
        "transforms": [{"name": s.transform.NAME, "file": s.transform.FILE, "seed_step": s.transform.SEED_STEP,
                        "outcome": s.outcome.value} for s in plan.steps],
        "files": files,
        "added": [{"path": a.rel, "sha256": sha256(a.data)} for a in plan.additions],
        "dirs": created,
    }
    store.record(record, originals)

    result = ApplyResult(plan=plan)
    done: list[tuple[Path, bytes | None]] = []  # (path, bytes before) for a rollback
    try:
        for change in plan.changes:
            atomic_write(change.path, change.after)
            done.append((change.path, change.before))
            result.written.append(change.rel)
        for add in plan.additions:
            if add.present:
                continue
            add.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(add.path, add.data)
            done.append((add.path, None))
            result.added.append(add.rel)
    except OSError as exc:
        for path, before in reversed(done):
            if before is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, before)
        for rel in sorted(created, reverse=True):
            _remove_dir(install.package / rel)
        store.forget(f"apply rolled back: {exc}")
        raise PatchError(Exit.WRITE, f"Writing Ultralytics {install.release} at {install.package} failed: {exc}",
                         "Every file was put back as it was. Fix the cause (disk space, permissions) and run "
                         "apply again.")
    return result


def _remove_dir(path: Path) -> None:
    cache = path / "__pycache__"
    if cache.is_dir() and not cache.is_symlink():
        shutil.rmtree(cache)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


# -- revert --------------------------------------------------------------------------------------
@dataclass
class RevertResult:
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited copies saved with --force
    nothing: bool = False
    stale_release: str | None = None


def revert(install: Install, *, force: bool = False) -> RevertResult:
    store = Store(install)
    manifest = store.manifest()
    if manifest is None:
        plan = make_plan(install)
        if any(s.outcome is Outcome.APPLIED for s in plan.steps) or any(a.present for a in plan.additions):
            raise PatchError(Exit.STORE, f"Ultralytics {install.release} at {install.package} looks patched, but "
                             f"rtdetr-patch has no record of it in {store.dir}.",
                             f"Reinstall it instead: pip install --force-reinstall ultralytics=={install.release}")
        return RevertResult(nothing=True)

    result = RevertResult()
    stale = manifest["release"] != install.release
    if stale:
        result.stale_release = manifest["release"]
    restore: list[tuple[Path, bytes, str]] = []
    edited: list[tuple[str, bytes]] = []
    if not stale:  # never write old files over another release
        for entry in manifest["files"]:
            path = install.package / PurePosixPath(entry["path"])
            current = path.read_bytes() if path.is_file() else b""
            digest = sha256(current)
            if digest == entry["original_sha256"]:
                continue  # already pristine (e.g. reinstalled)
            if digest != entry["patched_sha256"]:
                if not force:
                    raise PatchError(Exit.CHANGED, f"{path} changed since apply (Ultralytics {install.release}); "
                                     "revert would lose those edits.",
                                     "Run `rtdetr-patch revert --force` to revert anyway (your edited copy is kept "
                                     "in the store), or reinstall Ultralytics.")
                edited.append((entry["path"], current))
            restore.append((path, store.original(entry["path"], entry["original_sha256"]), entry["path"]))
    removals: list[tuple[Path, str]] = []
    for entry in manifest["added"]:
        path = install.package / PurePosixPath(entry["path"])
        if not path.is_file():
            continue
        current = path.read_bytes()
        if sha256(current) != entry["sha256"]:
            if not force:
                raise PatchError(Exit.CHANGED, f"{path} changed since apply (Ultralytics {install.release}); "
                                 "revert would delete those edits.",
                                 "Run `rtdetr-patch revert --force` to revert anyway (your edited copy is kept "
                                 "in the store).")
            edited.append((entry["path"], current))
        removals.append((path, entry["path"]))
    _writable([p for p, _, _ in restore] + [p for p, _ in removals], install)

    for rel, data in edited:
        keep = store.dir / "edited" / now().replace(":", "-") / PurePosixPath(rel)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data)
        result.kept.append(str(keep))
    for path, data, rel in restore:
        atomic_write(path, data)
        result.restored.append(rel)
    for path, rel in removals:
        path.unlink()
        result.removed.append(rel)
    for rel in sorted(manifest.get("dirs", []), reverse=True):
        _remove_dir(install.package / PurePosixPath(rel))
    store.forget(f"revert: Ultralytics {install.release} at {install.package}")
    return result


# -- check ---------------------------------------------------------------------------------------
def inspect(install: Install) -> dict:
    """The static state of an install: per transform, per file, per added file; and the warnings."""
    store = Store(install)
    manifest = store.manifest()
    report: dict = {
        "release": install.release, "package": str(install.package), "python": install.python,
        "tested_range": [TESTED_RELEASES[0], TESTED_RELEASES[-1]], "release_tested": install.tested,
        "store": str(store.dir), "recorded": manifest is not None,
        "recorded_release": manifest["release"] if manifest else None,
        "transforms": [], "files": [], "added": [], "warnings": [], "problems": [],
    }
    if not install.tested:
        report["warnings"].append(f"release {install.release} lies outside the tested range "
                                  f"{TESTED_RELEASES[0]}-{TESTED_RELEASES[-1]}")
    stale = manifest is not None and manifest["release"] != install.release
    if stale:
        report["problems"].append(f"the patch was applied to Ultralytics {manifest['release']}, but the install is "
                                  f"now {install.release}: the patch is gone; run `rtdetr-patch apply` again")
    by_file: dict[str, list] = {}
    for transform in transforms_for(None if stale else manifest):
        by_file.setdefault(transform.FILE, []).append(transform)
    for rel, group in by_file.items():
        try:
            change = plan_file(install, rel, group)
        except PatchError as exc:
            for transform in group:
                report["transforms"].append({"name": transform.NAME, "file": rel, "seed_step": transform.SEED_STEP,
                                             "state": "unrecognised"})
            report["problems"].append(exc.message)
            continue
        for step in change.steps:
            state = {Outcome.APPLIED: "applied", Outcome.PATCHED: "missing",
                     Outcome.NOT_NEEDED: "not-needed"}[step.outcome]
            report["transforms"].append({"name": step.transform.NAME, "file": rel,
                                         "seed_step": step.transform.SEED_STEP, "state": state})
            if state == "not-needed":
                report["warnings"].append(f"{step.transform.NAME} is not needed on {install.release}: "
                                          "the release already does it")
    missing = [t["name"] for t in report["transforms"] if t["state"] == "missing"]
    if missing and not stale:
        report["problems"].append(f"not applied: {', '.join(missing)}")
    if manifest and not stale:
        for entry in manifest["files"]:
            current = (install.package / PurePosixPath(entry["path"]))
            digest = sha256(current.read_bytes()) if current.is_file() else None
            state = ("patched" if digest == entry["patched_sha256"] else
                     "pristine" if digest == entry["original_sha256"] else "changed since apply")
            report["files"].append({"path": entry["path"], "state": state})
            if state != "patched":
                report["problems"].append(f"{entry['path']} is {state}")
    plan_additions = make_plan(install, ()).additions
    recorded_added = {a["path"]: a["sha256"] for a in (manifest or {}).get("added", [])}
    for add in plan_additions:
        if add.present:
            state = "present"
        elif add.path.is_file():
            state = "changed since apply" if add.rel in recorded_added else "not ours"
        else:
            state = "missing"
        report["added"].append({"path": add.rel, "state": state})
        if state != "present":
            report["problems"].append(f"{add.rel} is {state}")
    if manifest is None and not missing and not report["problems"]:
        report["warnings"].append(f"patched, but no record in {store.dir}: revert is not possible")
    if stale or (manifest and any(f["state"] != "patched" for f in report["files"])):
        code = Exit.CHANGED
    elif report["problems"]:
        code = Exit.NOT_PATCHED
    else:
        code = Exit.OK
    report["exit_code"] = int(code)
    return report
