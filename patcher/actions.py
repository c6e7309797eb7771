"""The three commands as plain functions: locate, plan, write, record, verify.

The CLI (``cli.py``) only parses options and prints; everything that decides or writes is here.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import patches
from patches import Outcome

from . import __version__
from .checkout import refuse_uncommitted
from .custom import UserModule, check_modules, parse_spec
from .errors import Exit, PatchError
from .handmade import blog_edits
from .locate import TESTED_RELEASES, Install
from .plan import ADDED_PACKAGE, Plan, make_plan, plan_file, sha256, template_files
from .safety import InstallLock, checkpoint
from .store import Store, now


def atomic_write(path: Path, data: bytes) -> None:
    """Write beside the file, then move it into place: a reader sees the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rtdetr-patch", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if path.exists():
            shutil.copymode(path, tmp)
        checkpoint()
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
    recovered: str | None = None
    upgraded_from: str | None = None  # the rtdetr-patch release whose older patch this run replaced
    module_reports: list[dict] = field(default_factory=list)  # --module preflight, one row per candidate


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


def hand_edits(install: Install, manifest: dict | None) -> list[str]:
    """The blog's hand edits found in the install (files of ours, by record or by content, excluded)."""
    ours = {a["path"] for a in (manifest or {}).get("added", [])}
    ours |= {f"nn/Addmodules/{m['name']}.py" for m in (manifest or {}).get("options", {}).get("modules", [])}
    ours |= {rel for rel, data in template_files(install)
             if (install.package / rel).is_file() and (install.package / rel).read_bytes() == data}
    return blog_edits(install, ours)


def refuse_hand_patched(install: Install, manifest: dict | None) -> None:
    found = hand_edits(install, manifest)
    if found:
        raise PatchError(Exit.HAND_PATCHED, f"Ultralytics {install.release} at {install.package} was already "
                         f"edited by hand (following the blog): {'; '.join(found)}.",
                         "It is not patched a second time. Keep a copy of your own module files if you need "
                         f"them, reinstall the pristine package (pip install --force-reinstall "
                         f"ultralytics=={install.release}), remove the leftover nn/Addmodules folder, then run "
                         "apply. Nothing was written.")


def recorded_modules(store: Store, manifest: dict | None) -> list[UserModule]:
    """The users' backbones an earlier apply added (their files come from the store)."""
    return [UserModule(name=m["name"], data=store.module(m["name"]), classes=tuple(m["classes"]),
                       safe_names=tuple(m.get("safe_names", ())))
            for m in (manifest or {}).get("options", {}).get("modules", [])]


def apply(install: Install, *, dry_run: bool = False, val_rect_fix: bool = False, force: bool = False,
          module_specs: tuple[str, ...] = ()) -> ApplyResult:
    """Plan every transform; only if all succeed, record the originals, then write everything."""
    store = Store(install)
    new = [parse_spec(spec, install) for spec in module_specs]
    with InstallLock(store.dir, f"Ultralytics {install.release} at {install.package}"):
        recovered = recover(install, store)
        manifest = store.manifest()
        refuse_hand_patched(install, manifest)
        same = manifest if manifest and manifest.get("release") == install.release else None
        if new and not dry_run:
            new = check_modules(install, new)
        modules = {m.name: m for m in recorded_modules(store, same)}
        modules.update((m.name, m) for m in new)
        val_rect_fix = val_rect_fix or bool(same and same.get("options", {}).get("val_rect_fix"))
        upgraded, sources = None, None
        if same and same.get("tool") != __version__ and _outdated(install, same, val_rect_fix, tuple(modules.values())):
            # An earlier rtdetr-patch wrote another patch: take it back (a journaled revert that refuses
            # to lose edits), then apply this release's patch to the pristine files.
            upgraded = same.get("tool", "an earlier release")
            if dry_run:
                sources = {e["path"]: store.original(e["path"], e["original_sha256"]) for e in same["files"]}
            else:
                _revert(install, store, force=False)
                manifest = same = None
        result = _apply(install, store, manifest, same, dry_run=dry_run, val_rect_fix=val_rect_fix, force=force,
                        modules=tuple(modules.values()), sources=sources)
        result.recovered = recovered
        result.upgraded_from = upgraded
        result.module_reports = [row for m in new for row in m.report]
        return result


def _outdated(install: Install, same: dict, val_rect_fix: bool, modules: tuple[UserModule, ...]) -> bool:
    """Whether the patch an earlier rtdetr-patch recorded differs from the one this release would write."""
    try:
        return not make_plan(install, transforms_for(same, val_rect_fix), modules).complete
    except PatchError as exc:
        if exc.code is Exit.TRANSFORM:  # the older patch's shapes are not this release's
            return True
        raise


def _apply(install: Install, store: Store, manifest: dict | None, same: dict | None, *, dry_run: bool,
           val_rect_fix: bool, force: bool, modules: tuple[UserModule, ...],
           sources: dict[str, bytes] | None = None) -> ApplyResult:
    """``manifest`` is the record as found; ``same`` is that record when it is of this very release;
    ``sources`` (a dry run only) are the bytes to plan from instead of the files' current ones."""
    plan = make_plan(install, transforms_for(same, val_rect_fix), modules, sources=sources)
    if plan.complete and same:
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
    if not force:
        refuse_uncommitted(install, [f.path for f in plan.changes])

    # The record: originals of the files this run changes, plus those an earlier run of the same
    # release already changed (a run that stopped half way); the new files and folders.
    old = {f["path"]: f for f in same["files"]} if same else {}
    files, originals = [], {}
    for change in plan.files:
        if change.changed:
            files.append({"path": change.rel, "original_sha256": sha256(change.before),
                          "patched_sha256": sha256(change.after)})
            originals[change.rel] = change.before
        elif change.rel in old and old[change.rel]["patched_sha256"] == sha256(change.before):
            files.append(old[change.rel])
    # Folders this tool made: new ones, and those an earlier record (of any release) says are ours.
    created = sorted({str(PurePosixPath(a.rel).parent) for a in plan.additions if not a.path.parent.exists()}
                     | set((manifest or {}).get("dirs", [])))
    record = {
        "tool": __version__,
        "release": install.release,
        "package": str(install.package),
        "applied_at": now(),
        "options": {"val_rect_fix": any(s.transform.NAME == "val-rect" for s in plan.steps),
                    "modules": [{"name": m.name, "classes": list(m.classes), "safe_names": list(m.safe_names)}
                                for m in modules]},
        "transforms": [{"name": s.transform.NAME, "file": s.transform.FILE, "blog_step": s.transform.SEED_STEP,
                        "outcome": s.outcome.value} for s in plan.steps],
        "files": files,
        "added": [{"path": a.rel, "sha256": sha256(a.data)} for a in plan.additions],
        "dirs": created,
        "state": "applying",  # the journal: recover() rolls back a run killed before "applied"
    }
    store.record(record, originals, {f"{m.name}.py": m.data for m in modules})
    checkpoint()

    result = ApplyResult(plan=plan)
    done: list[tuple[Path, bytes | None]] = []  # (path, bytes before) for a rollback
    try:
        for change in plan.changes:
            atomic_write(change.path, change.after)
            checkpoint()
            done.append((change.path, change.before))
            result.written.append(change.rel)
        for add in plan.additions:
            if add.present:
                continue
            add.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(add.path, add.data)
            checkpoint()
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
    store.set_state("applied")
    checkpoint()
    return result


def _remove_dir(path: Path) -> None:
    cache = path / "__pycache__"
    if cache.is_dir() and not cache.is_symlink():
        shutil.rmtree(cache)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


# -- revert and recovery --------------------------------------------------------------------------
@dataclass
class RevertResult:
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited copies saved with --force
    left: list[str] = field(default_factory=list)  # files neither ours nor original, not touched
    nothing: bool = False
    stale_release: str | None = None
    recovered: str | None = None


def _clean_temporaries(paths: list[Path]) -> None:
    """Temporary files an atomic write killed half way left beside its target."""
    for path in paths:
        if path.parent.is_dir():
            for tmp in path.parent.glob(f".{path.name}.*.rtdetr-patch"):
                tmp.unlink(missing_ok=True)


def _undo(install: Install, store: Store, manifest: dict, result: RevertResult,
          forced: frozenset[str] = frozenset(), journal: str | None = None) -> None:
    """Put back every recorded original and remove every added file that is still ours.

    Every original is read and checked before the first write, so a damaged store stops the run
    with the install untouched; ``journal`` (a manifest state) is recorded right before that write.
    """
    same_release = manifest["release"] == install.release
    targets, restore = [], []
    for entry in manifest["files"] if same_release else []:  # never write old files over another release
        path = install.package / PurePosixPath(entry["path"])
        targets.append(path)
        digest = sha256(path.read_bytes()) if path.is_file() else None
        if digest == entry["original_sha256"]:
            continue
        if digest not in (entry["patched_sha256"], None) and entry["path"] not in forced:
            result.left.append(entry["path"])
            continue
        restore.append((path, entry["path"], store.original(entry["path"], entry["original_sha256"])))
    if journal is not None:
        store.set_state(journal)
        checkpoint()
    for path, rel, data in restore:
        atomic_write(path, data)
        checkpoint()
        result.restored.append(rel)
    for entry in manifest["added"]:
        path = install.package / PurePosixPath(entry["path"])
        targets.append(path)
        if not path.is_file() or path.is_symlink():
            continue
        if sha256(path.read_bytes()) != entry["sha256"] and entry["path"] not in forced:
            result.left.append(entry["path"])
            continue
        path.unlink()
        checkpoint()
        result.removed.append(entry["path"])
    _clean_temporaries(targets)
    for rel in sorted(manifest.get("dirs", []), reverse=True):
        _remove_dir(install.package / PurePosixPath(rel))


def recover(install: Install, store: Store) -> str | None:
    """Finish what a killed run left: roll an interrupted apply back, complete an interrupted revert."""
    manifest = store.manifest()
    state = (manifest or {}).get("state", "applied")
    if manifest is None or state == "applied":
        return None
    result = RevertResult()
    _undo(install, store, manifest, result)
    if state == "applying":
        store.forget("recovered: an interrupted apply was rolled back")
        message = "An interrupted apply was found and rolled back: the install is pristine again."
    else:
        store.forget("recovered: an interrupted revert was completed")
        message = "An interrupted revert was found and completed: the install is pristine again."
    if result.left:
        message += f" Left untouched (changed by someone else): {', '.join(result.left)}."
    return message


def revert(install: Install, *, force: bool = False) -> RevertResult:
    store = Store(install)
    with InstallLock(store.dir, f"Ultralytics {install.release} at {install.package}"):
        recovered = recover(install, store)
        if recovered:
            return RevertResult(recovered=recovered)
        return _revert(install, store, force=force)


def _revert(install: Install, store: Store, *, force: bool) -> RevertResult:
    manifest = store.manifest()
    if manifest is None:
        refuse_hand_patched(install, None)
        plan = make_plan(install)
        if any(s.outcome is Outcome.APPLIED for s in plan.steps) or any(a.present for a in plan.additions):
            raise PatchError(Exit.STORE, f"Ultralytics {install.release} at {install.package} looks patched, but "
                             f"rtdetr-patch has no record of it in {store.dir}.",
                             f"Reinstall it instead: pip install --force-reinstall ultralytics=={install.release}")
        return RevertResult(nothing=True)

    result = RevertResult()
    if manifest["release"] != install.release:
        result.stale_release = manifest["release"]
    edited: list[tuple[str, bytes]] = []
    checked: list[Path] = []
    entries = [(e["path"], e["patched_sha256"], e["original_sha256"]) for e in manifest["files"]
               if not result.stale_release] + [(e["path"], e["sha256"], None) for e in manifest["added"]]
    for rel, ours, original in entries:
        path = install.package / PurePosixPath(rel)
        if not path.is_file():
            continue
        current = path.read_bytes()
        if sha256(current) in (ours, original):
            checked.append(path)
            continue
        if not force:
            diff = ""
            if original is not None:
                diff = "".join(difflib.unified_diff(
                    store.original(rel, original).decode("utf-8", "replace").splitlines(keepends=True),
                    current.decode("utf-8", "replace").splitlines(keepends=True),
                    fromfile=f"original/{rel}", tofile=f"now/{rel}", n=1))[:4000]
            raise PatchError(Exit.CHANGED, f"{path} changed since apply (Ultralytics {install.release}); "
                             "revert would lose those edits." + (f"\n{diff}" if diff else ""),
                             "Run `rtdetr-patch revert --force` to revert anyway (your edited copy is kept "
                             "in the store), or reinstall Ultralytics.")
        edited.append((rel, current))
        checked.append(path)
    _writable(checked, install)
    stamp = now().replace(":", "-")
    for rel, data in edited:
        keep = store.dir / "edited" / stamp / PurePosixPath(rel)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data)
        result.kept.append(str(keep))
    _undo(install, store, manifest, result, frozenset(rel for rel, _ in edited), journal="reverting")
    store.forget(f"revert: Ultralytics {install.release} at {install.package}")
    checkpoint()
    return result


# -- check ---------------------------------------------------------------------------------------
def inspect(install: Install) -> dict:
    """The static state of an install: per transform, per file, per added file; and the warnings."""
    store = Store(install)
    with InstallLock(store.dir, f"Ultralytics {install.release} at {install.package}"):
        recovered = recover(install, store)
        report = _inspect(install, store)
    if recovered:
        report["warnings"].insert(0, recovered)
    return report


def _inspect(install: Install, store: Store) -> dict:
    manifest = store.manifest()
    hand = hand_edits(install, manifest)
    report: dict = {
        "release": install.release, "package": str(install.package), "python": install.python,
        "tested_range": [TESTED_RELEASES[0], TESTED_RELEASES[-1]], "release_tested": install.tested,
        "store": str(store.dir), "recorded": manifest is not None,
        "recorded_release": manifest["release"] if manifest else None,
        "transforms": [], "files": [], "added": [], "hand_patched": [], "warnings": [], "notes": [], "problems": [],
    }
    if hand:
        report["hand_patched"] = hand
        report["problems"].append("edited by hand (following the blog): " + "; ".join(hand))
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
                report["transforms"].append({"name": transform.NAME, "file": rel, "blog_step": transform.SEED_STEP,
                                             "state": "unrecognised"})
            report["problems"].append(exc.message)
            continue
        for step in change.steps:
            state = {Outcome.APPLIED: "applied", Outcome.PATCHED: "missing",
                     Outcome.NOT_NEEDED: "not-needed"}[step.outcome]
            report["transforms"].append({"name": step.transform.NAME, "file": rel,
                                         "blog_step": step.transform.SEED_STEP, "state": state})
            if state == "not-needed":  # a fact about the release, nothing to act on: a note, not a warning
                report["notes"].append(f"{step.transform.NAME} is not needed on {install.release}: "
                                       "the release already does it")
    missing = [t["name"] for t in report["transforms"] if t["state"] == "missing"]
    if missing and not stale:
        report["problems"].append(f"not applied: {', '.join(missing)}")
    older = manifest.get("tool") if manifest and not stale else None
    if older != __version__ and older and any(t["state"] in ("missing", "unrecognised") for t in report["transforms"]):
        report["problems"].append(f"the patch was written by rtdetr-patch {older}; run `rtdetr-patch apply` to "
                                  f"replace it with this release's ({__version__})")
    if manifest and not stale:
        for entry in manifest["files"]:
            current = (install.package / PurePosixPath(entry["path"]))
            digest = sha256(current.read_bytes()) if current.is_file() else None
            state = ("patched" if digest == entry["patched_sha256"] else
                     "pristine" if digest == entry["original_sha256"] else "changed since apply")
            report["files"].append({"path": entry["path"], "state": state})
            if state != "patched":
                report["problems"].append(f"{entry['path']} is {state}")
    modules = [] if stale else recorded_modules(store, manifest)
    report["modules"] = [{"file": m.rel, "classes": list(m.classes)} for m in modules]
    plan_additions = make_plan(install, (), tuple(modules)).additions
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
    if hand:
        code = Exit.HAND_PATCHED
    elif stale or (manifest and any(f["state"] != "patched" for f in report["files"])):
        code = Exit.CHANGED
    elif report["problems"]:
        code = Exit.NOT_PATCHED
        if missing and len(missing) == len(report["transforms"]) - len(report["notes"]) and not manifest:
            report["problems"].append("this install is not patched: run `rtdetr-patch apply`")
    else:
        code = Exit.OK
    report["exit_code"] = int(code)
    return report
