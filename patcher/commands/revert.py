"""``revert``: put back every recorded original, remove every added file that is still ours.

A file changed since apply is refused with the user's own edit shown as a diff (``--force`` keeps the
edited copy in the store); an in-place adopt's hand edits that were never managed stay as they are.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..disk.files import require_writable, sha256
from ..errors import Exit, PatchError, if_interrupted, reinstall
from ..install.locate import Install, pip_installed, start_again
from ..record.manifest import Record
from ..record.store import Store
from ..results import RevertResult, describe
from ..states import Outcome
from ..write.changeset import undo_of
from ..write.session import session
from ..write.transaction import Transaction
from .patch_state import applied_bytes, refuse_hand_patched

REVERT_INTERRUPTED = (
    "Interrupted while reverting: the next rtdetr-patch command finishes the revert (run `rtdetr-patch revert`)."
)


def revert(install: Install, *, force: bool = False) -> RevertResult:
    with session(install) as held:
        result = (
            RevertResult(recovered=held.recovered)
            if held.recovered
            else revert_recorded(install, held.store, force=force)
        )
    result.ultralytics = describe(install)
    return result


def revert_recorded(install: Install, store: Store, *, force: bool) -> RevertResult:
    """The revert itself, inside a session the caller holds (``revert``, and ``apply`` taking back an older patch)."""
    record = store.read()
    if record is None:
        _refuse_unrecorded(install, store)
        return RevertResult(nothing=True)

    result = RevertResult()
    if record.release != install.release:
        result.stale_release = record.release
    edited, checked = _edited(install, store, record, force=force, files=not result.stale_release)
    require_writable(checked, install)
    result.kept = store.keep_edited(edited)
    with if_interrupted(REVERT_INTERRUPTED):
        undo = undo_of(install, store, record, frozenset(rel for rel, _ in edited))
        done = Transaction(install, store).revert(undo, f"revert: Ultralytics {install.release} at {install.package}")
    result.left, result.restored, result.removed = list(done.left), list(done.restored), list(done.removed)
    if record.adopted is not None and record.adopted.in_place:  # the hand edits adopt never managed stay as made
        result.left_as_edited = [e["path"] for e in record.adopted.edits if e.get("path") not in result.restored]
    return result


def _refuse_unrecorded(install: Install, store: Store) -> None:
    """With no record, only the sources can tell: an install that looks patched is refused."""
    from ..plan import planner as planning  # libcst: with no record, only the sources can tell

    refuse_hand_patched(install, None, reverting=True)
    plan = planning.make_plan(install)
    if any(s.outcome is Outcome.APPLIED for s in plan.steps) or any(a.present for a in plan.additions):
        raise PatchError(
            Exit.STORE,
            f"Ultralytics {install.release} at {install.package} looks patched, but "
            f"rtdetr-patch has no record of it in {store.dir}.",
            f"To start again, {start_again(install)}.",
        )


def _edited(
    install: Install, store: Store, record: Record, *, force: bool, files: bool
) -> tuple[list[tuple[str, bytes]], list[Path]]:
    """The files of the record changed since apply (refused unless ``force``: then their bytes, to keep), and
    every file the revert replaces; ``files``: the recorded files too, not only the added ones."""
    edited: list[tuple[str, bytes]] = []
    checked: list[Path] = []
    entries = [(e.path, e.patched_sha256, e.original_sha256) for e in record.files if files] + [
        (e.path, e.sha256, None) for e in record.added
    ]
    for rel, ours, original in entries:
        path = install.package / PurePosixPath(rel)
        if not path.is_file():
            continue
        current = path.read_bytes()
        if sha256(current) in (ours, original):
            checked.append(path)
            continue
        if not force:
            raise PatchError(
                Exit.CHANGED,
                f"{path} changed since apply (Ultralytics {install.release}); "
                "revert would lose those edits. Your edits (what apply wrote -> the file now):\n"
                + _edit_diff(install, store, record, rel, current),
                "Run `rtdetr-patch revert --force` to revert anyway (your edited copy is kept "
                "in the store), or " + _fresh_copy_advice(install, rel, added=original is None),
            )
        edited.append((rel, current))
        checked.append(path)
    return edited, checked


MAX_DIFF_LINES = 300


def _edit_diff(install: Install, store: Store, record: Record, rel: str, current: bytes) -> str:
    """The user's own edit: a diff from the bytes apply wrote (rebuilt from the recorded original, or the
    added file's template) to the file now, so the patch itself is not shown as a change."""
    import difflib  # only a refused revert shows a diff

    wrote = applied_bytes(install, store, record, rel)
    if wrote is None:
        return "(the file apply wrote cannot be rebuilt here)"
    lines = list(
        difflib.unified_diff(
            wrote.decode("utf-8", "replace").splitlines(keepends=True),
            current.decode("utf-8", "replace").splitlines(keepends=True),
            fromfile=f"applied/{rel}",
            tofile=f"now/{rel}",
            n=2,
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more diff lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")


def _fresh_copy_advice(install: Install, rel: str, added: bool) -> str:
    """How to get Ultralytics' own file back: git for a checkout, pip for an installed package."""
    from ..install.checkout import repository  # gitpython: only this advice asks whether the install is a checkout

    if added:  # a file rtdetr-patch added: nobody else has a copy of it
        return (
            f"move {install.package / PurePosixPath(rel)} somewhere of yours if you want to keep it, then run "
            "`rtdetr-patch revert` again."
        )
    repo = repository(install)
    if repo is not None:
        top = Path(repo.working_tree_dir).resolve()
        path = (install.package / PurePosixPath(rel)).resolve().relative_to(top).as_posix()
        return (
            f"drop both your edit and the patch with `git -C {top} checkout -- {path}` (this is a git "
            "checkout), then run `rtdetr-patch revert` to finish."
        )
    if not pip_installed(install):  # (a fork outside git: only the user's own copy has the file as it was)
        return f"{start_again(install, rel)}; then run `rtdetr-patch revert` to clear the record."
    return f"drop both with `{reinstall(install.release)}`, then run `rtdetr-patch revert` to clear the record."
