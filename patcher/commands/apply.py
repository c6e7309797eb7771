"""``apply``: plan every transform, record the originals, then write everything, inside one session.

An apply over an older rtdetr-patch's patch first takes that patch back (``revert.revert_recorded``).
The jobs around it live apart: ``disk`` (atomic writes and permissions), ``record`` (the typed manifest and
the store), ``write`` (lock and recovery), ``plan`` (the transforms over the sources, the only part that
needs libcst, imported when needed).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..disk.files import atomic_write, remove_dir, require_writable, sha256
from ..disk.killpoints import checkpoint
from ..errors import WRITTEN_NOT_VERIFIED, Exit, Interrupted, PatchError, if_interrupted, reinstall
from ..install.locate import Install
from ..record.manifest import ADDED_PACKAGE, AddedEntry, FileEntry, Record, StepEntry
from ..record.store import now
from ..results import ApplyResult, describe
from ..states import STATES
from ..version import __version__
from ..write.session import Store, session
from .recorded import recorded_modules, refuse_hand_patched, transforms_for
from .revert import revert_recorded

if TYPE_CHECKING:  # libcst and the preflight load only when a run plans
    from ..plan.planner import Plan


# -- apply ---------------------------------------------------------------------------------------
def _describe_plan(result: ApplyResult) -> ApplyResult:
    """Fill ``transforms``/``additions`` from the plan, as the install is now (after any writes)."""
    plan = result.plan
    if plan is not None:
        result.transforms = [{"name": s.transform.NAME, "blog_step": s.transform.BLOG_STEP,
                              "file": s.transform.FILE, "state": s.outcome.value} for s in plan.steps]
        result.additions = [{"path": a.rel, "bytes": len(a.data), "present": a.present} for a in plan.additions]
    return result


def _conflicts(plan: "Plan", record: Record | None, replaced: frozenset[str] = frozenset()) -> None:
    """``replaced``: files an in-place adopt overwrites on purpose (their bytes are recorded as originals)."""
    ours = {a.path: a.sha256 for a in record.added} if record else {}
    for add in plan.additions:
        if add.rel in replaced:
            continue
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


def apply(install: Install, *, dry_run: bool = False, options: frozenset[str] = frozenset(), force: bool = False,
          module_specs: tuple[str, ...] = (), yaml: str | None = None) -> ApplyResult:
    """Plan every transform; only if all succeed, record the originals, then write everything.

    ``options`` are the opt-in transforms asked for, by their ``Transform.OPTION`` (``{"val_rect_fix"}``).
    ``yaml`` (``--yaml``) is the model yaml whose rows the ``--module`` preflight reads widths and rules from.
    """
    if module_specs:
        from ..modules.spec import parse_specs  # the --module machinery loads only when modules are given

        new = parse_specs(module_specs, install)
    else:
        new = []
    with session(install) as held:
        store = held.store
        record = store.read()
        if not new and record is not None and options <= record.options and record.intact(install, __version__):
            result = _already(install, record)  # every byte as recorded: nothing to plan or parse
        else:
            result = _plan_and_apply(install, store, record, new, dry_run=dry_run, options=options, force=force,
                                     yaml=yaml)
        result.recovered = held.recovered
        result.ultralytics, result.dry_run, result.store = describe(install), dry_run, str(store.dir)
        return result


def _already(install: Install, record: Record) -> ApplyResult:
    """The answer to a repeated apply, read off an intact record (the same a fresh plan would give)."""
    sizes = {a.path: (install.package / PurePosixPath(a.path)).stat().st_size for a in record.added}
    return ApplyResult(plan=None, already=True,
                       transforms=[{"name": t.name, "blog_step": t.blog_step, "file": t.file,
                                    "state": STATES[t.outcome]} for t in record.transforms],
                       additions=[{"path": a.path, "bytes": sizes[a.path], "present": True} for a in record.added])


def _plan_and_apply(install: Install, store: Store, record: Record | None, new: list, *, dry_run: bool,
                    options: frozenset[str], force: bool, yaml: str | None = None) -> ApplyResult:
    refuse_hand_patched(install, record)
    same = record if record and record.release == install.release else None
    if new and not dry_run:
        from ..modules.preflight import check_modules  # the --module preflight: only when modules are given

        new = check_modules(install, new, yaml)
    modules = {m.name: m for m in recorded_modules(store, same)}
    if new:
        from ..modules.torch_layers import TORCH_STEM, merge_torch_layers  # (loaded already: new modules come from it)

        for m in new:
            if m.name == TORCH_STEM and m.name in modules:  # torch layers given a rule now and before: one file
                m = merge_torch_layers(modules[m.name], m)
            modules[m.name] = m
    options = options | (same.options if same else frozenset())
    upgraded, sources = None, None
    if same and same.adopted.get("in_place") and same.tool != __version__:
        # taking that patch back gives the hand-edited install again, which only adopt can read
        raise PatchError(Exit.ADOPT, f"Ultralytics {install.release} at {install.package} was adopted in place by "
                         f"rtdetr-patch {same.tool or 'an earlier release'}, whose patch this release would replace.",
                         "Run `rtdetr-patch revert` (it gives back your hand-edited install byte for byte), then "
                         "`rtdetr-patch adopt` with this release. Nothing was written.")
    if same and same.tool != __version__ and _outdated(install, same, options, tuple(modules.values())):
        # An earlier rtdetr-patch wrote another patch: take it back (a journaled revert that refuses
        # to lose edits), then apply this release's patch to the pristine files.
        upgraded = same.tool or "an earlier release"
        if dry_run:
            sources = {e.path: store.original(e.path, e.original_sha256) for e in same.files}
        else:
            with if_interrupted("Interrupted while taking back the patch of an older rtdetr-patch: the next "
                                "rtdetr-patch command finishes that revert; then run `rtdetr-patch apply`."):
                revert_recorded(install, store, force=False)
            record = same = None
    extra, current, adopted = _adopted_state(install, store, same) if same and same.adopted else ((), None, None)
    result = _apply(install, store, record, same, dry_run=dry_run, options=options, force=force,
                    modules=tuple(modules.values()), sources=sources, extra=extra, current=current, adopted=adopted)
    result.upgraded_from = upgraded
    result.modules = [row for m in new for row in m.report]
    return _describe_plan(result)


def _adopted_state(install: Install, store: Store, same: Record) -> tuple[tuple, dict[str, bytes], dict]:
    """What an apply after ``adopt`` keeps of it: the yamls it added, the originals of the files it replaced in
    place (the user's own ``nn/Addmodules/__init__.py``...), and its account in the record."""
    from ..plan.planner import template_files  # libcst: this run plans

    shipped = {rel for rel, _ in template_files(install)}
    managed = {t.FILE for t in transforms_for(same)}
    extra = []
    for entry in same.added:
        path = install.package / PurePosixPath(entry.path)
        if entry.path.startswith("cfg/models/") and entry.path not in shipped and path.is_file():
            data = path.read_bytes()
            if sha256(data) == entry.sha256:
                extra.append((entry.path, data))
    current = {f.path: store.original(f.path, f.original_sha256) for f in same.files if f.path not in managed}
    return tuple(extra), current, same.adopted


def _outdated(install: Install, same: Record, options: frozenset[str], modules: tuple) -> bool:
    """Whether the patch an earlier rtdetr-patch recorded differs from the one this release would write."""
    from ..plan import planner as plan  # libcst: an upgrade plans

    try:
        return not plan.make_plan(install, transforms_for(same, options), modules).complete
    except PatchError as exc:
        if exc.code is Exit.TRANSFORM:  # the older patch's shapes are not this release's
            return True
        raise


def _new_record(install: Install, plan: "Plan", record: Record | None, same: Record | None, modules: tuple,
                created: list[str], current: dict[str, bytes] | None = None,
                adopted: dict | None = None) -> tuple[Record, dict[str, bytes]]:
    """The record of this run, and the originals to keep: those of the files this run changes, plus those an
    earlier run of the same release already changed (a run that stopped half way).

    ``current`` (an in-place adopt): the bytes files have now where the plan starts from other ones (the
    pristine release) or an addition replaces one; those bytes are the originals, put back by ``revert``.
    """
    from ... import patches  # already loaded: this run planned

    current = current or {}
    files, originals = [], {}
    for change in plan.files:
        old = same.file(change.rel) if same else None
        found = current.get(change.rel, change.before)
        unread = not change.before and not change.after  # no transform can be needed on the release
        if not unread and (change.changed or found != change.after):
            files.append(FileEntry(change.rel, sha256(found), sha256(change.after)))
            originals[change.rel] = found
        elif old is not None and old.patched_sha256 == sha256(change.before):
            files.append(old)
    for add in plan.additions:
        if add.rel in current:
            files.append(FileEntry(add.rel, sha256(current[add.rel]), sha256(add.data)))
            originals[add.rel] = current[add.rel]
    steps = plan.steps
    new = Record(tool=__version__, release=install.release, package=str(install.package), applied_at=now(),
                 flags={o: any(s.transform.OPTION == o for s in steps) for o in patches.OPTIONS},
                 modules=tuple(m.entry for m in modules),
                 transforms=tuple(StepEntry(s.transform.NAME, s.transform.FILE, s.transform.BLOG_STEP,
                                            s.outcome.value) for s in steps),
                 files=tuple(files), added=tuple(AddedEntry(a.rel, sha256(a.data)) for a in plan.additions
                                                 if a.rel not in current),
                 dirs=tuple(created), adopted=adopted or {},
                 state="applying")  # the journal: recover() rolls back a run killed before "applied"
    return new, originals


def _apply(install: Install, store: Store, record: Record | None, same: Record | None, *, dry_run: bool,
           options: frozenset[str], force: bool, modules: tuple,
           sources: dict[str, bytes] | None = None, extra: tuple = (), current: dict[str, bytes] | None = None,
           adopted: dict | None = None, kept: dict[str, bytes] | None = None) -> ApplyResult:
    """``record`` is the record as found; ``same`` is that record when it is of this very release;
    ``sources`` are the bytes to plan from instead of the files' current ones (a dry run of an upgrade, an
    in-place adopt). ``adopt`` also gives ``extra`` files to add (its yamls), ``current`` (the bytes an in-place
    adopt replaces, recorded as originals), ``adopted`` (for the record) and ``kept`` (files for the store)."""
    from ..install.checkout import refuse_uncommitted  # gitpython: only a run that writes asks git
    from ..plan import planner as planning  # libcst from here on

    current = current or {}
    plan = planning.make_plan(install, transforms_for(same, options), modules, sources=sources, extra=extra)
    if plan.complete and same and not current:
        return ApplyResult(plan=plan, already=True)
    _conflicts(plan, record, frozenset(current))
    if dry_run:
        return ApplyResult(plan=plan)
    if plan.complete:
        raise PatchError(Exit.STORE, f"Ultralytics {install.release} at {install.package} is already patched, "
                         f"but rtdetr-patch has no record of it in {store.dir}.",
                         "Without the record it cannot be reverted: reinstall Ultralytics "
                         f"({reinstall(install.release)}) and apply again.")
    to_write = [f.path for f in plan.changes] + [a.path for a in plan.additions if not a.present]
    require_writable(to_write, install)
    if not force:
        refuse_uncommitted(install, [f.path for f in plan.changes])

    # Folders this tool made: new ones, and those an earlier record (of any release) says are ours.
    created = sorted({str(PurePosixPath(a.rel).parent) for a in plan.additions if not a.path.parent.exists()}
                     | set(record.dirs if record else ()))
    new, originals = _new_record(install, plan, record, same, modules, created, current, adopted)
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
        store.record(new, originals, {f"{m.name}.py": m.data for m in modules}, kept)
        recorded = True
        checkpoint()
        try:
            for change in plan.files:  # each noted before it is written: a rollback may find it either way
                if not (change.changed or (change.rel in current and change.after)):
                    continue
                done.append((change.path, _on_disk(change.path)))
                atomic_write(change.path, change.after)
                checkpoint()
                result.written.append(change.rel)
            for add in plan.additions:
                if add.present:
                    continue
                done.append((add.path, _on_disk(add.path)))
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


def _on_disk(path: Path) -> bytes | None:
    """A file's bytes before this run writes it (what a rollback puts back), None where there is none."""
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


