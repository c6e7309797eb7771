"""What a run writes, decided before anything is written: frozen values the transaction carries out.

- :class:`Changeset` (``apply``, ``adopt``): the files to write, with their bytes before and after, the files to
  add, the folders this tool made, the originals and other files to keep in the store, and the record to write.
  :func:`changeset_of` builds it from a plan.
- :class:`Undo` (``revert``, a rollback, the recovery after a kill): the files to put back or remove, in order,
  the folders to remove once empty, and the files left as someone else changed them. :func:`undo_of` builds it
  from a record; a rollback builds it from what the transaction wrote (``Transaction.apply``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..disk.files import digest_of, sha256
from ..install.locate import Install
from ..record.manifest import AddedEntry, AdoptedAccount, FileEntry, Record, StepEntry
from ..record.store import Store, now
from ..version import __version__

if TYPE_CHECKING:  # the plan module needs libcst; a changeset is only built from a plan that was made
    from ..modules.user_module import UserModule
    from ..plan.planner import Plan


@dataclass(frozen=True)
class FileWrite:
    """One file of the install to write: ``before`` is its bytes now (None: there is no file), what a rollback
    puts back; ``after`` the bytes written."""

    rel: str  # inside the ultralytics package, forward slashes
    path: Path
    before: bytes | None
    after: bytes


@dataclass(frozen=True)
class Changeset:
    """Everything one ``apply`` (or ``adopt``) writes; built before anything is."""

    record: Record  # the record of the finished run; the transaction journals it as "applying" first
    writes: tuple[FileWrite, ...] = ()  # files of the install changed, in order
    adds: tuple[FileWrite, ...] = ()  # files added (nn/Addmodules, yamls), in order
    folders: tuple[str, ...] = ()  # folders this tool made (new ones, those a record names): removed on rollback
    originals: Mapping[str, bytes] = field(default_factory=dict)  # rel -> the original bytes, kept in the store
    modules: Mapping[str, bytes] = field(default_factory=dict)  # "<name>.py" -> a user's module file, for the store
    kept: Mapping[str, bytes] = field(default_factory=dict)  # adopt in place: the tree's own files, for the store


@dataclass(frozen=True)
class PutBack:
    """One step of an undo: write ``data`` back to ``path``, or remove the file where ``data`` is None."""

    rel: str
    path: Path
    data: bytes | None


@dataclass(frozen=True)
class Undo:
    """Everything one undo does, in order; the bytes to put back are read (and checked) before the first write."""

    steps: tuple[PutBack, ...] = ()
    folders: tuple[str, ...] = ()  # folders this tool made, removed once empty
    left: tuple[str, ...] = ()  # files neither ours nor original: not touched
    targets: tuple[Path, ...] = ()  # every file named, where a killed atomic write may have left a temporary


def on_disk(path: Path) -> bytes | None:
    """A file's bytes before this run writes it (what a rollback puts back), None where there is none."""
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


def changeset_of(
    install: Install,
    plan: Plan,
    record: Record | None,
    same: Record | None,
    modules: tuple[UserModule, ...],
    current: Mapping[str, bytes] | None = None,
    adopted: AdoptedAccount | None = None,
    kept: Mapping[str, bytes] | None = None,
) -> Changeset:
    """The changeset of a plan. ``record`` is the record as found, ``same`` that record when it is of this very
    release; ``current`` (an in-place adopt): the bytes files have now where the plan starts from other ones (the
    pristine release) or an addition replaces one: those bytes are the originals, put back by ``revert``.
    ``adopted`` is adopt's account for the record, ``kept`` the tree's files it keeps in the store."""
    current = current or {}
    # Folders this tool made: new ones, and those an earlier record (of any release) says are ours.
    folders = sorted(
        {rel for a in plan.additions for rel in _new_folders(a.rel, a.path)} | set(record.dirs if record else ())
    )
    entries, originals = _file_entries(plan, same, current)
    writes = tuple(
        FileWrite(c.rel, c.path, on_disk(c.path), c.after)
        for c in plan.files
        if c.changed or (c.rel in current and c.after)
    )
    adds = tuple(FileWrite(a.rel, a.path, on_disk(a.path), a.data) for a in plan.additions if not a.present)
    new = _record_of(install, plan, modules, entries, tuple(folders), current, adopted)
    return Changeset(
        record=new,
        writes=writes,
        adds=adds,
        folders=tuple(folders),
        originals=originals,
        modules={f"{m.name}.py": m.data for m in modules},
        kept=dict(kept or {}),
    )


def _new_folders(rel: str, path: Path) -> list[str]:
    """The folders an addition's write makes (its parent, and every folder above it that is not there yet)."""
    out = []
    here, folder = PurePosixPath(rel).parent, path.parent
    while here.parts and not folder.exists():
        out.append(str(here))
        here, folder = here.parent, folder.parent
    return out


def _file_entries(
    plan: Plan, same: Record | None, current: Mapping[str, bytes]
) -> tuple[list[FileEntry], dict[str, bytes]]:
    """The files of the record, and the originals to keep: those of the files this run changes, plus those an
    earlier run of the same release already changed (a run that stopped half way)."""
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
    return files, originals


def _record_of(
    install: Install,
    plan: Plan,
    modules: tuple[UserModule, ...],
    files: list[FileEntry],
    folders: tuple[str, ...],
    current: Mapping[str, bytes],
    adopted: AdoptedAccount | None,
) -> Record:
    from ... import patches  # already loaded: this run planned

    steps = plan.steps
    return Record(
        tool=__version__,
        release=install.release,
        package=str(install.package),
        applied_at=now(),
        flags={o: any(o == s.transform.OPTION for s in steps) for o in patches.OPTIONS},
        modules=tuple(m.entry for m in modules),
        transforms=tuple(
            StepEntry(s.transform.NAME, s.transform.FILE, s.transform.BLOG_STEP, s.outcome.value) for s in steps
        ),
        files=tuple(files),
        added=tuple(AddedEntry(a.rel, sha256(a.data)) for a in plan.additions if a.rel not in current),
        dirs=folders,
        adopted=adopted,
    )


def undo_of(install: Install, store: Store, record: Record, forced: frozenset[str] = frozenset()) -> Undo:
    """Put back every recorded original and remove every added file that is still ours; a file changed by someone
    else is left (``forced``: files taken back anyway, ``revert --force``). Every original is read and checked
    here, before the first write, so a damaged store stops the run with the install untouched."""
    targets: list[Path] = []
    steps: list[PutBack] = []
    left: list[str] = []
    same_release = record.release == install.release
    for entry in record.files if same_release else ():  # never write old files over another release
        path = install.package / PurePosixPath(entry.path)
        targets.append(path)
        digest = digest_of(path)
        if digest == entry.original_sha256:
            continue
        if digest not in (entry.patched_sha256, None) and entry.path not in forced:
            left.append(entry.path)
            continue
        steps.append(PutBack(entry.path, path, store.original(entry.path, entry.original_sha256)))
    for added in record.added:
        path = install.package / PurePosixPath(added.path)
        targets.append(path)
        if not path.is_file() or path.is_symlink():
            continue
        if digest_of(path) != added.sha256 and added.path not in forced:
            left.append(added.path)
            continue
        steps.append(PutBack(added.path, path, None))
    return Undo(steps=tuple(steps), folders=record.dirs, left=tuple(left), targets=tuple(targets))
