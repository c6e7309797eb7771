"""``check``: the state of an install, per transform, per file, per added file, and its exit code.

Two ways to the same report. When this tool version's record of this release says the patch is
finished and every file it names still has the recorded SHA-256, the report is read off the record:
no source is parsed (libcst is not even imported). Otherwise every file is planned again and
compared, which finds what changed, what is missing and what was edited by hand.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from types import ModuleType
from typing import Any

from ..disk.files import digest_of
from ..errors import Exit, PatchError
from ..install.locate import TESTED_RELEASES, Install
from ..record.manifest import Record
from ..record.store import Store
from ..results import (
    NOT_PATCHED_PROBLEM,
    CheckAddedRow,
    CheckFileRow,
    CheckModuleRow,
    CheckResult,
    CheckTransformRow,
    describe,
)
from ..states import AddedState, FileState, TransformState
from ..version import __version__
from ..write.session import session
from .patch_state import hand_edits, recorded_modules, transforms_for

# Why a transform is not needed, per transform (a fact about the release: a note, not a warning).
NOT_NEEDED_WHY = {
    "safe-load": "the release has no restricted checkpoint loading to extend",
    "restricted-layers": "the release has no restricted model construction to extend",
    "get-flops": "the release already profiles at the real image size when the small probe fails",
    "repc3-expansion": "the release's RepC3 already builds cv1/cv2 with its hidden width",
}


def not_needed_note(name: str, release: str) -> str:
    return f"{name} is not needed on {release}: {NOT_NEEDED_WHY.get(name, 'the release already does it')}"


def inspect(install: Install, trust_record: bool = True) -> CheckResult:
    """The static state of an install, with its exit code (``result.exit_code``; ``static`` is left false)."""
    with session(install) as held:
        record = held.store.read()
        if trust_record and record is not None and record.intact(install, __version__):
            result = from_record(install, held.store, record)
        else:
            result = from_files(install, held.store)
    if held.recovered:
        result.warnings.insert(0, held.recovered)
    return result


def _base(install: Install, store: Store, recorded_release: str | None) -> CheckResult:
    result = CheckResult(
        ultralytics=describe(install),
        tested_range=[TESTED_RELEASES[0], TESTED_RELEASES[-1]],
        release_tested=install.tested,
        store=str(store.dir),
        recorded=recorded_release is not None,
        recorded_release=recorded_release,
    )
    if not install.tested:
        result.warnings.append(
            f"release {install.release} lies outside the tested range {TESTED_RELEASES[0]}-{TESTED_RELEASES[-1]}"
        )
    return result


def _settle(result: CheckResult, code: Exit) -> CheckResult:
    result.exit_code, result.ok = int(code), code == Exit.OK
    return result


def from_record(install: Install, store: Store, record: Record) -> CheckResult:
    """The report of an intact patch, read off its record."""
    result = _base(install, store, record.release)
    for step in record.transforms:
        _report_transform(
            result,
            install,
            CheckTransformRow(step.name, step.file, step.blog_step, TransformState.recorded(step.outcome)),
        )
    result.files = [CheckFileRow(f.path, FileState.PATCHED) for f in record.files]
    result.modules = [module_row(m) for m in record.modules]
    result.adopted = record.adopted.to_dict() if record.adopted else None
    result.added = [CheckAddedRow(a.path, AddedState.PRESENT) for a in record.added]
    return _settle(result, Exit.OK)


def _report_transform(result: CheckResult, install: Install, row: CheckTransformRow) -> None:
    """One transform's row; one not needed on this release is also a note."""
    result.transforms.append(row)
    if row.state is TransformState.NOT_NEEDED:
        result.notes.append(not_needed_note(row.name, install.release))


def from_files(install: Install, store: Store) -> CheckResult:
    """The report found by planning every file again (the record is absent, stale or contradicted)."""
    from ..plan import (
        planner as plan,  # libcst from here on; looked up at call time, so a test may stand in for plan_file
    )

    record = store.read()
    hand = hand_edits(install, record)
    result = _base(install, store, record.release if record else None)
    problems = result.problems
    if hand:
        result.hand_patched = hand
        problems.append("edited by hand (following the blog): " + "; ".join(hand))
    stale_release = record.release if record is not None and record.release != install.release else None
    stale = stale_release is not None
    if stale:
        problems.append(
            f"the patch was applied to Ultralytics {stale_release}, but the install is "
            f"now {install.release}: the patch is gone; run `rtdetr-patch apply` again"
        )
    current = None if stale else record  # the record of this very release, if any
    _plan_transforms(result, install, plan, current)
    missing = [t.name for t in result.transforms if t.state is TransformState.MISSING]
    if missing and not stale:
        problems.append(f"not applied: {', '.join(missing)}")
    _older_patch(result, current)
    if current is not None:
        _check_files(result, install, current)
    modules = [] if stale else recorded_modules(store, record)
    result.modules = [module_row(m) for m in modules]
    _check_additions(result, install, plan, record, modules)
    if record is None and not missing and not problems:
        result.warnings.append(f"patched, but no record in {store.dir}: revert is not possible")
    code = _exit_code(result, record, hand, stale)
    if (
        code is Exit.NOT_PATCHED
        and missing
        and len(missing) == len(result.transforms) - len(result.notes)
        and not record
    ):
        problems.append(NOT_PATCHED_PROBLEM)
    return _settle(result, code)


def _plan_transforms(result: CheckResult, install: Install, plan: ModuleType, record: Record | None) -> None:
    """Each file planned again: a row per transform (all ``unrecognised`` where the file's plan fails)."""
    by_file: dict[str, list] = {}
    for transform in transforms_for(record):
        by_file.setdefault(transform.FILE, []).append(transform)
    for rel, group in by_file.items():
        try:
            change = plan.plan_file(install, rel, group)
        except PatchError as exc:
            for transform in group:
                result.transforms.append(
                    CheckTransformRow(transform.NAME, rel, transform.BLOG_STEP, TransformState.UNRECOGNISED)
                )
            result.problems.append(exc.message)
            continue
        for step in change.steps:
            _report_transform(
                result,
                install,
                CheckTransformRow(
                    step.transform.NAME, rel, step.transform.BLOG_STEP, TransformState.planned(step.outcome)
                ),
            )


def _older_patch(result: CheckResult, record: Record | None) -> None:
    """A patch an earlier rtdetr-patch wrote, which this release's plan no longer finds whole: apply replaces it."""
    older = record.tool if record else None
    unfinished = (TransformState.MISSING, TransformState.UNRECOGNISED)
    if older != __version__ and older and any(t.state in unfinished for t in result.transforms):
        result.problems.append(
            f"the patch was written by rtdetr-patch {older}; run `rtdetr-patch apply` to "
            f"replace it with this release's ({__version__})"
        )


def _check_files(result: CheckResult, install: Install, record: Record) -> None:
    """Each recorded file against the SHA-256 apply wrote and the original's."""
    for entry in record.files:
        digest = digest_of(install.package / PurePosixPath(entry.path))
        state = (
            FileState.PATCHED
            if digest == entry.patched_sha256
            else FileState.PRISTINE
            if digest == entry.original_sha256
            else FileState.CHANGED
        )
        result.files.append(CheckFileRow(entry.path, state))
        if state is not FileState.PATCHED:
            result.problems.append(f"{entry.path} is {state}")


def _check_additions(
    result: CheckResult, install: Install, plan: ModuleType, record: Record | None, modules: list
) -> None:
    """Each file the patch adds: there as the plan makes it, changed, someone else's, or missing."""
    recorded_added = {a.path for a in record.added} if record else set()
    for add in plan.make_plan(install, (), tuple(modules)).additions:
        if add.present:
            state = AddedState.PRESENT
        elif add.path.is_file():
            state = AddedState.CHANGED if add.rel in recorded_added else AddedState.NOT_OURS
        else:
            state = AddedState.MISSING
        result.added.append(CheckAddedRow(add.rel, state))
        if state is not AddedState.PRESENT:
            result.problems.append(f"{add.rel} is {state}")


def _exit_code(result: CheckResult, record: Record | None, hand: list[str], stale: bool) -> Exit:
    if hand:
        return Exit.HAND_PATCHED
    if stale or (record and any(f.state is not FileState.PATCHED for f in result.files)):
        return Exit.CHANGED
    return Exit.NOT_PATCHED if result.problems else Exit.OK


def verdict(result: CheckResult, error_on_warn: bool) -> int:
    """The exit code of ``check --static``: the result's, and warnings count as problems when asked (then the
    reason is added to ``result.problems``)."""
    if result.exit_code == Exit.OK and error_on_warn and result.warnings:
        result.problems.append("warnings are errors (--error-on-warn)")
        return int(Exit.NOT_PATCHED)
    return result.exit_code


def module_row(module: Any) -> CheckModuleRow:
    """A ``--module`` file as check reports it: its names, and each name's rule ("backbone" for a backbone)."""
    rules = dict(module.rules)
    return CheckModuleRow(
        module.rel, tuple(module.classes), {name: rules.get(name, "backbone") for name in module.classes}
    )
