"""``apply``: plan every transform, record the originals, then write everything, inside one session.

An apply over an older rtdetr-patch's patch first takes that patch back (``revert.revert_recorded``). Here the
plan is made and checked; ``write_plan`` (also ``adopt``'s) turns it into a changeset (``write/changeset.py``) and
hands it to the transaction (``write/transaction.py``), which records the originals, writes and rolls back.
The jobs around it live apart: ``disk`` (atomic writes and permissions), ``record`` (the typed manifest and
the store), ``write`` (changeset, transaction, lock and recovery), ``plan`` (the transforms over the sources,
the only part that needs libcst, imported when needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ..disk.files import require_writable, sha256
from ..errors import Exit, PatchError, if_interrupted
from ..install.locate import Install, start_again
from ..record.manifest import ADDED_PACKAGE, AdoptedAccount, Record
from ..record.store import Store
from ..results import ApplyAdditionRow, ApplyResult, ApplyTransformRow, describe
from ..states import Outcome
from ..version import __version__
from ..write.changeset import changeset_of
from ..write.session import session
from ..write.transaction import Transaction
from .patch_state import recorded_modules, refuse_hand_patched, transforms_for
from .revert import revert_recorded

if TYPE_CHECKING:  # libcst and the preflight load only when a run plans
    from ..modules.user_module import UserModule
    from ..plan.planner import Plan


# -- apply ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    """An install as a run finds it, inside the session: its store, its record, and that record again when it is
    of this very release (``same``)."""

    install: Install
    store: Store
    record: Record | None
    same: Record | None

    @classmethod
    def read(cls, install: Install, store: Store) -> Found:
        record = store.read()
        return cls(install, store, record, record if record and record.release == install.release else None)


@dataclass(frozen=True)
class Adoption:
    """What an ``adopt`` (or an apply after one) adds to the patch it writes: ``current`` the bytes an in-place
    adopt replaces (recorded as originals), ``adopted`` its account for the record, ``kept`` the tree's own files
    for the store."""

    current: Mapping[str, bytes] = field(default_factory=dict)
    adopted: AdoptedAccount | None = None
    kept: Mapping[str, bytes] = field(default_factory=dict)


def _describe_plan(result: ApplyResult) -> ApplyResult:
    """Fill ``transforms``/``additions`` from the plan, as the install is now (after any writes)."""
    plan = result.plan
    if plan is not None:
        result.transforms = [
            ApplyTransformRow(s.transform.NAME, s.transform.BLOG_STEP, s.transform.FILE, s.outcome) for s in plan.steps
        ]
        result.additions = [ApplyAdditionRow(a.rel, len(a.data), a.present) for a in plan.additions]
    return result


def _conflicts(plan: Plan, record: Record | None, replaced: frozenset[str] = frozenset()) -> None:
    """``replaced``: files an in-place adopt overwrites on purpose (their bytes are recorded as originals)."""
    ours = {a.path: a.sha256 for a in record.added} if record else {}
    for add in plan.additions:
        if add.rel in replaced:
            continue
        if add.path.is_symlink() or (add.path.exists() and not add.path.is_file()):
            raise PatchError(
                Exit.CONFLICT,
                f"{add.path} exists and is not a plain file (Ultralytics {plan.install.release}).",
                "Move it away, then run apply again.",
            )
        if add.path.is_file() and not add.present:
            data = add.path.read_bytes()
            if ours.get(add.rel) != sha256(data):
                raise PatchError(
                    Exit.CONFLICT,
                    f"{add.path} already exists and is not rtdetr-patch's "
                    f"(Ultralytics {plan.install.release}); it was not overwritten.",
                    "Move it somewhere of yours (reinstalling Ultralytics does not remove it: the "
                    "file is not part of the package), then run apply again. If it comes from "
                    "following the blog by hand, your own copy can go in with --module. Nothing "
                    "was written.",
                )
    link = plan.install.package / ADDED_PACKAGE
    if link.is_symlink():
        raise PatchError(
            Exit.CONFLICT,
            f"{link} is a symbolic link (Ultralytics {plan.install.release}).",
            "Remove the link, then run apply again. Nothing was written.",
        )


def apply(
    install: Install,
    *,
    dry_run: bool = False,
    options: frozenset[str] = frozenset(),
    force: bool = False,
    module_specs: tuple[str, ...] = (),
    yaml: str | None = None,
) -> ApplyResult:
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
        found = Found.read(install, held.store)
        record = found.record
        if not new and record is not None and options <= record.options and record.intact(install, __version__):
            result = _already(install, record)  # every byte as recorded: nothing to plan or parse
        else:
            result = _plan_and_apply(found, new, dry_run=dry_run, options=options, force=force, yaml=yaml)
        result.recovered = held.recovered
        result.ultralytics, result.dry_run, result.store = describe(install), dry_run, str(held.store.dir)
        return result


def _already(install: Install, record: Record) -> ApplyResult:
    """The answer to a repeated apply, read off an intact record (the same a fresh plan would give)."""
    sizes = {a.path: (install.package / PurePosixPath(a.path)).stat().st_size for a in record.added}
    return ApplyResult(
        plan=None,
        already=True,
        transforms=[
            ApplyTransformRow(t.name, t.blog_step, t.file, Outcome.after_apply(t.outcome)) for t in record.transforms
        ],
        additions=[ApplyAdditionRow(a.path, sizes[a.path], True) for a in record.added],
    )


def _plan_and_apply(
    found: Found, new: list[UserModule], *, dry_run: bool, options: frozenset[str], force: bool, yaml: str | None = None
) -> ApplyResult:
    install = found.install
    refuse_hand_patched(install, found.record)
    if new and not dry_run:
        from ..modules.preflight import check_modules  # the --module preflight: only when modules are given

        new = check_modules(install, new, yaml)
    modules = _modules(found.store, found.same, new)
    options = options | (found.same.options if found.same else frozenset())
    _refuse_adopted_in_place(found)
    upgraded, sources = None, None
    if found.same and found.same.tool != __version__ and _outdated(install, found.same, options, modules):
        upgraded = found.same.tool or "an earlier release"
        found, sources = _take_back(found, dry_run=dry_run)
    extra, adoption = _adopted_state(found) if found.same and found.same.adopted else ((), Adoption())
    from ..plan import planner as planning  # libcst from here on

    plan = planning.make_plan(install, transforms_for(found.same, options), modules, sources=sources, extra=extra)
    result = write_plan(found, plan, modules, dry_run=dry_run, force=force, adoption=adoption)
    result.upgraded_from = upgraded
    result.modules = [row for m in new for row in m.report]
    return _describe_plan(result)


def _modules(store: Store, same: Record | None, new: list[UserModule]) -> tuple[UserModule, ...]:
    """The users' modules of this run: those recorded, with the ones given now added (or replacing them)."""
    modules = {m.name: m for m in recorded_modules(store, same)}
    if new:
        from ..modules.torch_layers import TORCH_STEM, merge_torch_layers  # (loaded already: new modules come from it)

        for m in new:
            if m.name == TORCH_STEM and m.name in modules:  # torch layers given a rule now and before: one file
                m = merge_torch_layers(modules[m.name], m)
            modules[m.name] = m
    return tuple(modules.values())


def _refuse_adopted_in_place(found: Found) -> None:
    same = found.same
    if same and same.adopted is not None and same.adopted.in_place and same.tool != __version__:
        # taking that patch back gives the hand-edited install again, which only adopt can read
        raise PatchError(
            Exit.ADOPT,
            f"Ultralytics {found.install.release} at {found.install.package} was adopted in "
            f"place by rtdetr-patch {same.tool or 'an earlier release'}, whose patch this release would "
            "replace.",
            "Run `rtdetr-patch revert` (it gives back your hand-edited install byte for "
            "byte), then `rtdetr-patch adopt` with this release. Nothing was written.",
        )


def _take_back(found: Found, *, dry_run: bool) -> tuple[Found, dict[str, bytes] | None]:
    """An earlier rtdetr-patch wrote another patch: take it back (a journaled revert that refuses to lose edits),
    so this release's patch goes onto the pristine files. A dry run plans from the recorded originals instead."""
    assert found.same is not None
    if dry_run:
        return found, {e.path: found.store.original(e.path, e.original_sha256) for e in found.same.files}
    with if_interrupted(
        "Interrupted while taking back the patch of an older rtdetr-patch: the next "
        "rtdetr-patch command finishes that revert; then run `rtdetr-patch apply`."
    ):
        revert_recorded(found.install, found.store, force=False)
    return Found(found.install, found.store, None, None), None


def _adopted_state(found: Found) -> tuple[tuple[tuple[str, bytes], ...], Adoption]:
    """What an apply after ``adopt`` keeps of it: the files it added or wrote over the tree's (yamls, data files, in
    place the tree's files put back to the release's: everything but the modules, which come back from the store),
    the originals of the files it replaced in place (the user's own ``nn/Addmodules/__init__.py``...), and its
    account in the record."""
    from ..plan.planner import template_files  # libcst: this run plans

    install, store, same = found.install, found.store, found.same
    assert same is not None
    shipped = {rel for rel, _ in template_files(install)}
    managed = {t.FILE for t in transforms_for(same)}
    extra = []
    written = [(a.path, a.sha256) for a in same.added]  # (and, in place, those written over the tree's own files)
    written += [(f.path, f.patched_sha256) for f in same.files if f.path not in managed]
    for rel, recorded in written:
        path = install.package / PurePosixPath(rel)
        module = rel.startswith(f"{ADDED_PACKAGE}/") and rel.endswith(".py")
        if not module and rel not in shipped and path.is_file():
            data = path.read_bytes()
            if sha256(data) == recorded:
                extra.append((rel, data))
    current = {f.path: store.original(f.path, f.original_sha256) for f in same.files if f.path not in managed}
    return tuple(extra), Adoption(current=current, adopted=same.adopted)


def _outdated(install: Install, same: Record, options: frozenset[str], modules: tuple[UserModule, ...]) -> bool:
    """Whether the patch an earlier rtdetr-patch recorded differs from the one this release would write."""
    from ..plan import planner as plan  # libcst: an upgrade plans

    try:
        return not plan.make_plan(install, transforms_for(same, options), modules).complete
    except PatchError as exc:
        if exc.code is Exit.TRANSFORM:  # the older patch's shapes are not this release's
            return True
        raise


def write_plan(
    found: Found,
    plan: Plan,
    modules: tuple[UserModule, ...],
    *,
    dry_run: bool,
    force: bool,
    adoption: Adoption | None = None,
) -> ApplyResult:
    """Write a plan made on ``found``'s install (``apply``; ``adopt`` with its ``adoption``): all or nothing, the
    originals recorded first (``Transaction.apply``). A plan already in place, or a dry run, writes nothing."""
    from ..install.checkout import refuse_uncommitted  # gitpython: only a run that writes asks git

    install, adoption = found.install, adoption or Adoption()
    if plan.complete and found.same and not adoption.current:
        return ApplyResult(plan=plan, already=True)
    _conflicts(plan, found.record, frozenset(adoption.current))
    if dry_run:
        return ApplyResult(plan=plan)
    if plan.complete:
        raise PatchError(
            Exit.STORE,
            f"Ultralytics {install.release} at {install.package} is already patched, "
            f"but rtdetr-patch has no record of it in {found.store.dir}.",
            f"Without the record it cannot be reverted: to start again {start_again(install)}, and apply again.",
        )
    to_write = [f.path for f in plan.changes] + [a.path for a in plan.additions if not a.present]
    require_writable(to_write, install)
    if not force:
        refuse_uncommitted(install, [f.path for f in plan.changes])
    changes = changeset_of(
        install, plan, found.record, found.same, modules, adoption.current, adoption.adopted, adoption.kept
    )
    done = Transaction(install, found.store).apply(changes)
    return ApplyResult(plan=plan, written=list(done.written), added=list(done.added))
