"""The one place that changes an install: record the originals, write, roll back, undo, recover.

A :class:`Transaction` carries out what a command decided (``changeset.py``): ``apply`` a :class:`Changeset`
(originals recorded in the store and the journal set to "applying" before the first write; every write atomic
and synced; "applied" once all are written), ``revert`` an :class:`Undo` (journal "reverting" first), and
``recover`` what a killed run left (the journal says which). A write that fails (``OSError``) or a Ctrl-C rolls
the apply back. Rollback, revert and recovery take the same path (``_put_back``).

The kill points (``disk.killpoints.checkpoint``) sit where the crash-safety tests count them: after the
originals are recorded, inside each atomic write and after it, after each removal, and once more after the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from ..disk.files import atomic_write, clean_temporaries, remove_dir
from ..disk.killpoints import checkpoint
from ..errors import NOTHING_WRITTEN, WRITTEN_NOT_VERIFIED, Exit, Interrupted, PatchError, if_interrupted
from ..install.locate import Install
from ..record.store import Store
from .changeset import Changeset, FileWrite, PutBack, Undo, undo_of

REVERTED_INTERRUPTED = "Interrupted after reverting: the install is pristine again."


@dataclass(frozen=True)
class Written:
    """What an apply wrote: the files changed and the files added, in order."""

    written: tuple[str, ...] = ()
    added: tuple[str, ...] = ()


@dataclass(frozen=True)
class Undone:
    """What an undo did: files put back, files removed, files left (changed by someone else)."""

    restored: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    left: tuple[str, ...] = ()


class Transaction:
    """The writes to one install, inside the session that holds its lock."""

    def __init__(self, install: Install, store: Store) -> None:
        self.install = install
        self.store = store

    # -- apply ---------------------------------------------------------------------------------
    def apply(self, changes: Changeset) -> Written:
        """Record the originals (journal "applying"), write every file, then mark the record "applied"; on an
        ``OSError`` or Ctrl-C, put every file back and forget the record."""
        done: list[PutBack] = []  # each noted before it is written: a rollback may find it either way
        recorded = False
        try:
            self.store.record(
                changes.record.with_state("applying"),
                dict(changes.originals),
                dict(changes.modules),
                dict(changes.kept),
            )
            recorded = True
            checkpoint()
            try:
                written = Written(self._write(changes.writes, done), self._write(changes.adds, done, folders=True))
            except OSError as exc:
                self._roll_back(changes, done, f"apply rolled back: {exc}")
                raise PatchError(
                    Exit.WRITE,
                    f"Writing Ultralytics {self.install.release} at {self.install.package} failed: {exc}",
                    "Every file was put back as it was. Fix the cause (disk space, permissions) and run apply again.",
                )
            self.store.set_state("applied")
        except KeyboardInterrupt:
            raise self._after_ctrl_c(changes, done, recorded) from None
        with if_interrupted(WRITTEN_NOT_VERIFIED):
            checkpoint()
        return written

    def _write(self, files: tuple[FileWrite, ...], done: list[PutBack], folders: bool = False) -> tuple[str, ...]:
        out = []
        for file in files:
            done.append(PutBack(file.rel, file.path, file.before))
            if folders:
                file.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(file.path, file.after)
            checkpoint()
            out.append(file.rel)
        return tuple(out)

    def _roll_back(self, changes: Changeset, done: list[PutBack], why: str) -> None:
        """Put back what this apply wrote (``done``, last first), remove the folders it made, forget the record."""
        self._put_back(Undo(steps=tuple(reversed(done)), folders=changes.folders), count=False)
        self.store.forget(why)

    def _after_ctrl_c(self, changes: Changeset, done: list[PutBack], recorded: bool) -> Interrupted:
        """Roll back after a Ctrl-C; the interruption to raise says what state the install is in."""
        if not recorded:
            return Interrupted(NOTHING_WRITTEN)
        try:
            self._roll_back(changes, done, "apply interrupted (Ctrl-C) and rolled back")
        except BaseException:  # a second Ctrl-C, or a failing disk: the journal still says "applying"
            return Interrupted(
                "Interrupted while writing, and the rollback did not finish: the next rtdetr-patch "
                "command rolls the install back to as it was (run `rtdetr-patch check`)."
            )
        return Interrupted(
            "Interrupted while writing: every file was put back, the install is as it was. Run "
            "`rtdetr-patch apply` again."
        )

    # -- revert and recovery -------------------------------------------------------------------
    def revert(self, undo: Undo, message: str) -> Undone:
        """Journal "reverting", carry out ``undo``, then forget the record (committed with ``message``)."""
        self.store.set_state("reverting")
        checkpoint()
        done = self._put_back(undo)
        self.store.forget(message)
        with if_interrupted(REVERTED_INTERRUPTED):
            checkpoint()
        return done

    def recover(self) -> str | None:
        """Finish what a killed run left: roll an interrupted apply back, complete an interrupted revert."""
        record = self.store.read()
        if record is None or record.state == "applied":
            return None
        done = self._put_back(undo_of(self.install, self.store, record))
        if record.state == "applying":
            self.store.forget("recovered: an interrupted apply was rolled back")
            message = "An interrupted apply was found and rolled back: the install is pristine again."
        else:
            self.store.forget("recovered: an interrupted revert was completed")
            message = "An interrupted revert was found and completed: the install is pristine again."
        if done.left:
            message += f" Left untouched (changed by someone else): {', '.join(done.left)}."
        return message

    def _put_back(self, undo: Undo, count: bool = True) -> Undone:
        """The one undo path: each step in order (a kill point after each where ``count``), the temporaries of a
        killed write, then the folders this tool made, once empty."""
        restored, removed = [], []
        for step in undo.steps:
            if step.data is None:
                step.path.unlink(missing_ok=True)
                removed.append(step.rel)
            else:
                atomic_write(step.path, step.data)
                restored.append(step.rel)
            if count:
                checkpoint()
        clean_temporaries(list(undo.targets))
        for rel in sorted(undo.folders, reverse=True):
            remove_dir(self.install.package / PurePosixPath(rel))
        return Undone(restored=tuple(restored), removed=tuple(removed), left=undo.left)
