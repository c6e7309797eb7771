"""``apply`` and ``revert``: plan, record, write, and undo, inside one session per install.

The jobs around them live apart: ``files`` (atomic writes and permissions), ``record`` (the typed
manifest), ``session`` (store, lock and recovery), ``report`` (``check`` and its exit code) and
``plan`` (the transforms over the sources, the only part that needs libcst, imported when needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from . import __version__
from .errors import WRITTEN_NOT_VERIFIED, Exit, Interrupted, PatchError, if_interrupted
from .files import atomic_write, remove_dir, require_writable, sha256
from .locate import Install
from .record import ADDED_PACKAGE, Record
from .safety import checkpoint
from .session import Store, session, undo
from .store import now

if TYPE_CHECKING:  # libcst and the preflight load only when a run plans
    from .custom import UserModule
    from .plan import Plan


def transforms_for(manifest: dict | None, val_rect_fix: bool = False):
    from .. import patches

    recorded = bool(manifest and manifest.get("options", {}).get("val_rect_fix"))
    return patches.selected(val_rect_fix=val_rect_fix or recorded)


# -- apply ---------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    plan: "Plan | None"  # None when the answer came from the record (already patched, nothing parsed)
    written: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    already: bool = False
    recovered: str | None = None
    upgraded_from: str | None = None  # the rtdetr-patch release whose older patch this run replaced
    module_reports: list[dict] = field(default_factory=list)  # --module preflight, one row per candidate
    transforms: list[dict] = field(default_factory=list)  # {"name", "blog_step", "file", "state"} per step
    additions: list[dict] = field(default_factory=list)  # {"path", "bytes", "present"} per added file

    def describe(self) -> "ApplyResult":
        """Fill ``transforms``/``additions`` from the plan, as the install is now (after any writes)."""
        if self.plan is not None:
            self.transforms = [{"name": s.transform.NAME, "blog_step": s.transform.BLOG_STEP,
                                "file": s.transform.FILE, "state": s.outcome.value} for s in self.plan.steps]
            self.additions = [{"path": a.rel, "bytes": len(a.data), "present": a.present}
                              for a in self.plan.additions]
        return self


def _conflicts(plan: "Plan", manifest: dict | None) -> None:
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
                                 "Move it somewhere of yours (reinstalling Ultralytics does not remove it: the "
                                 "file is not part of the package), then run apply again. If it comes from "
                                 "following the blog by hand, your own copy can go in with --module. Nothing "
                                 "was written.")
    link = plan.install.package / ADDED_PACKAGE
    if link.is_symlink():
        raise PatchError(Exit.CONFLICT, f"{link} is a symbolic link (Ultralytics {plan.install.release}).",
                         "Remove the link, then run apply again. Nothing was written.")


def hand_edits(install: Install, manifest: dict | None) -> list[str]:
    """The blog's hand edits found in the install (files of ours, by record or by content, excluded)."""
    from .handmade import blog_edits
    from .plan import template_files

    def ours() -> set[str]:  # asked for only when tasks.py shows the blog's edits
        owned = {a["path"] for a in (manifest or {}).get("added", [])}
        owned |= {f"{ADDED_PACKAGE}/{m['name']}.py" for m in (manifest or {}).get("options", {}).get("modules", [])}
        return owned | {rel for rel, data in template_files(install)
                        if (install.package / rel).is_file() and (install.package / rel).read_bytes() == data}

    return blog_edits(install, ours)


def refuse_hand_patched(install: Install, manifest: dict | None) -> None:
    found = hand_edits(install, manifest)
    if found:
        raise PatchError(Exit.HAND_PATCHED, f"Ultralytics {install.release} at {install.package} was already "
                         f"edited by hand (following the blog): {'; '.join(found)}.",
                         "It is not patched a second time. Keep a copy of your own module files if you need "
                         f"them, reinstall the pristine package (pip install --force-reinstall --no-deps "
                         f"ultralytics=={install.release}), remove the leftover nn/Addmodules folder, then run "
                         "apply. Nothing was written.")


def recorded_modules(store: Store, manifest: dict | None) -> list["UserModule"]:
    """The users' backbones an earlier apply added (their files come from the store)."""
    from .custom import UserModule

    return [UserModule(name=m["name"], data=store.module(m["name"]), classes=tuple(m["classes"]),
                       safe_names=tuple(m.get("safe_names", ())),
                       rules=tuple((n, r) for n, r in m.get("rules", {}).items()))
            for m in (manifest or {}).get("options", {}).get("modules", [])]


def apply(install: Install, *, dry_run: bool = False, val_rect_fix: bool = False, force: bool = False,
          module_specs: tuple[str, ...] = ()) -> ApplyResult:
    """Plan every transform; only if all succeed, record the originals, then write everything."""
    if module_specs:
        from .custom import parse_specs

        new = parse_specs(module_specs, install)
    else:
        new = []
    with session(install) as held:
        store = held.store
        manifest = store.manifest()
        record = Record.of(manifest)
        if not new and record is not None and (record.val_rect_fix or not val_rect_fix) \
                and record.intact(install, __version__):
            result = _already(install, record)  # every byte as recorded: nothing to plan or parse
        else:
            result = _plan_and_apply(install, store, manifest, new, dry_run=dry_run, val_rect_fix=val_rect_fix,
                                     force=force)
        result.recovered = held.recovered
        return result


def _already(install: Install, record: Record) -> ApplyResult:
    """The answer to a repeated apply, read off an intact record (the same a fresh plan would give)."""
    from .report import STATES

    sizes = {a.path: (install.package / PurePosixPath(a.path)).stat().st_size for a in record.added}
    return ApplyResult(plan=None, already=True,
                       transforms=[{"name": t.name, "blog_step": t.blog_step, "file": t.file,
                                    "state": STATES[t.outcome]} for t in record.transforms],
                       additions=[{"path": a.path, "bytes": sizes[a.path], "present": True} for a in record.added])


def _plan_and_apply(install: Install, store: Store, manifest: dict | None, new: list, *, dry_run: bool,
                    val_rect_fix: bool, force: bool) -> ApplyResult:
    refuse_hand_patched(install, manifest)
    same = manifest if manifest and manifest.get("release") == install.release else None
    if new and not dry_run:
        from .custom import check_modules

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
            with if_interrupted("Interrupted while taking back the patch of an older rtdetr-patch: the next "
                                "rtdetr-patch command finishes that revert; then run `rtdetr-patch apply`."):
                _revert(install, store, force=False)
            manifest = same = None
    result = _apply(install, store, manifest, same, dry_run=dry_run, val_rect_fix=val_rect_fix, force=force,
                    modules=tuple(modules.values()), sources=sources)
    result.upgraded_from = upgraded
    result.module_reports = [row for m in new for row in m.report]
    return result.describe()


def _outdated(install: Install, same: dict, val_rect_fix: bool, modules: tuple) -> bool:
    """Whether the patch an earlier rtdetr-patch recorded differs from the one this release would write."""
    from .plan import make_plan

    try:
        return not make_plan(install, transforms_for(same, val_rect_fix), modules).complete
    except PatchError as exc:
        if exc.code is Exit.TRANSFORM:  # the older patch's shapes are not this release's
            return True
        raise


def _apply(install: Install, store: Store, manifest: dict | None, same: dict | None, *, dry_run: bool,
           val_rect_fix: bool, force: bool, modules: tuple, sources: dict[str, bytes] | None = None) -> ApplyResult:
    """``manifest`` is the record as found; ``same`` is that record when it is of this very release;
    ``sources`` (a dry run only) are the bytes to plan from instead of the files' current ones."""
    from .checkout import refuse_uncommitted
    from .plan import make_plan

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
                         f"(pip install --force-reinstall --no-deps ultralytics=={install.release}) and apply again.")
    to_write = [f.path for f in plan.changes] + [a.path for a in plan.additions if not a.present]
    require_writable(to_write, install)
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
                    "modules": [{"name": m.name, "classes": list(m.classes), "safe_names": list(m.safe_names),
                                 **({"rules": dict(m.rules)} if m.rules else {})} for m in modules]},
        "transforms": [{"name": s.transform.NAME, "file": s.transform.FILE, "blog_step": s.transform.BLOG_STEP,
                        "outcome": s.outcome.value} for s in plan.steps],
        "files": files,
        "added": [{"path": a.rel, "sha256": sha256(a.data)} for a in plan.additions],
        "dirs": created,
        "state": "applying",  # the journal: recover() rolls back a run killed before "applied"
    }
    result = ApplyResult(plan=plan)
    done: list[tuple[Path, bytes | None]] = []  # (path, bytes before) for a rollback

    def roll_back(why: str) -> None:
        for path, before in reversed(done):
            if before is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, before)
        for rel in sorted(created, reverse=True):
            remove_dir(install.package / rel)
        store.forget(why)

    recorded = False
    try:
        store.record(record, originals, {f"{m.name}.py": m.data for m in modules})
        recorded = True
        checkpoint()
        try:
            for change in plan.changes:  # each noted before it is written: a rollback may find it either way
                done.append((change.path, change.before))
                atomic_write(change.path, change.after)
                checkpoint()
                result.written.append(change.rel)
            for add in plan.additions:
                if add.present:
                    continue
                done.append((add.path, None))
                add.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(add.path, add.data)
                checkpoint()
                result.added.append(add.rel)
        except OSError as exc:
            roll_back(f"apply rolled back: {exc}")
            raise PatchError(Exit.WRITE, f"Writing Ultralytics {install.release} at {install.package} failed: {exc}",
                             "Every file was put back as it was. Fix the cause (disk space, permissions) and run "
                             "apply again.")
        store.set_state("applied")
    except KeyboardInterrupt:
        if not recorded:
            raise Interrupted("Interrupted before any file of the install was written: it is as it was.") from None
        try:
            roll_back("apply interrupted (Ctrl-C) and rolled back")
        except BaseException:  # a second Ctrl-C, or a failing disk: the journal still says "applying"
            raise Interrupted("Interrupted while writing, and the rollback did not finish: the next rtdetr-patch "
                              "command rolls the install back to as it was (run `rtdetr-patch check`).") from None
        raise Interrupted("Interrupted while writing: every file was put back, the install is as it was. Run "
                          "`rtdetr-patch apply` again.") from None
    with if_interrupted(WRITTEN_NOT_VERIFIED):
        checkpoint()
    return result


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


def revert(install: Install, *, force: bool = False) -> RevertResult:
    with session(install) as held:
        if held.recovered:
            return RevertResult(recovered=held.recovered)
        return _revert(install, held.store, force=force)


def _revert(install: Install, store: Store, *, force: bool) -> RevertResult:
    manifest = store.manifest()
    if manifest is None:
        from .plan import Outcome, make_plan  # no record: only the sources can tell

        refuse_hand_patched(install, None)
        plan = make_plan(install)
        if any(s.outcome is Outcome.APPLIED for s in plan.steps) or any(a.present for a in plan.additions):
            raise PatchError(Exit.STORE, f"Ultralytics {install.release} at {install.package} looks patched, but "
                             f"rtdetr-patch has no record of it in {store.dir}.",
                             f"Reinstall it instead: pip install --force-reinstall --no-deps ultralytics=={install.release}")
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
            raise PatchError(Exit.CHANGED, f"{path} changed since apply (Ultralytics {install.release}); "
                             "revert would lose those edits. Your edits (what apply wrote -> the file now):\n"
                             + _edit_diff(install, store, manifest, rel, original, current),
                             "Run `rtdetr-patch revert --force` to revert anyway (your edited copy is kept "
                             "in the store), or " + _fresh_copy_advice(install, rel, added=original is None))
        edited.append((rel, current))
        checked.append(path)
    require_writable(checked, install)
    stamp = now().replace(":", "-")
    for rel, data in edited:
        keep = store.dir / "edited" / stamp / PurePosixPath(rel)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data)
        result.kept.append(str(keep))
    with if_interrupted("Interrupted while reverting: the next rtdetr-patch command finishes the revert (run "
                        "`rtdetr-patch revert`)."):
        undo(install, store, manifest, result, frozenset(rel for rel, _ in edited), journal="reverting")
        store.forget(f"revert: Ultralytics {install.release} at {install.package}")
    with if_interrupted("Interrupted after reverting: the install is pristine again."):
        checkpoint()
    return result


MAX_DIFF_LINES = 300


def _edit_diff(install: Install, store: Store, manifest: dict, rel: str, original: str | None,
               current: bytes) -> str:
    """The user's own edit: a diff from the bytes apply wrote (rebuilt from the recorded original, or the
    added file's template) to the file now, so the patch itself is not shown as a change."""
    import difflib

    from .plan import plan_file, template_files

    wrote: bytes | None = None
    if original is not None:
        try:
            change = plan_file(install, rel, [t for t in transforms_for(manifest) if t.FILE == rel],
                               data=store.original(rel, original))
            entry = next(e for e in manifest["files"] if e["path"] == rel)
            if sha256(change.after) == entry["patched_sha256"]:
                wrote = change.after
        except (PatchError, StopIteration):
            wrote = None
        if wrote is None:  # written by another rtdetr-patch release: compare with the original instead
            wrote = store.original(rel, original)
    else:
        modules = recorded_modules(store, manifest)
        wrote = dict(template_files(install, tuple(modules))).get(rel)
    if wrote is None:
        return "(the file apply wrote cannot be rebuilt here)"
    lines = list(difflib.unified_diff(wrote.decode("utf-8", "replace").splitlines(keepends=True),
                                      current.decode("utf-8", "replace").splitlines(keepends=True),
                                      fromfile=f"applied/{rel}", tofile=f"now/{rel}", n=2))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")


def _fresh_copy_advice(install: Install, rel: str, added: bool) -> str:
    """How to get Ultralytics' own file back: git for a checkout, pip for an installed package."""
    from .checkout import repository

    if added:  # a file rtdetr-patch added: nobody else has a copy of it
        return (f"move {install.package / PurePosixPath(rel)} somewhere of yours if you want to keep it, then run "
                "`rtdetr-patch revert` again.")
    repo = repository(install)
    if repo is not None:
        top = Path(repo.working_tree_dir).resolve()
        path = (install.package / PurePosixPath(rel)).resolve().relative_to(top).as_posix()
        return (f"drop both your edit and the patch with `git -C {top} checkout -- {path}` (this is a git "
                "checkout), then run `rtdetr-patch revert` to finish.")
    return (f"drop both with `pip install --force-reinstall --no-deps ultralytics=={install.release}`, then run "
            "`rtdetr-patch revert` to clear the record.")


