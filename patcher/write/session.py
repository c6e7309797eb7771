"""One command's hold on an install: its backup store, the install lock, and recovery first.

Every command that reads or writes an install runs inside ``session(install)``: it takes the
per-install lock, then finishes what a killed run left (rolls an interrupted apply back, completes
an interrupted revert) before it looks at anything, and says so in ``recovered``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..disk.files import atomic_write, clean_temporaries, digest_of, remove_dir
from ..disk.killpoints import checkpoint
from ..disk.lock import InstallLock
from ..install.locate import Install
from ..record.manifest import Record
from ..record.store import Store


@dataclass
class Session:
    install: Install
    store: Store
    recovered: str | None = None


@contextmanager
def session(install: Install) -> Iterator[Session]:
    store = Store(install)
    with InstallLock(store.dir, f"Ultralytics {install.release} at {install.package}"):
        yield Session(install, store, recover(install, store))


@dataclass
class Undone:
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # files neither ours nor original, not touched


def undo(install: Install, store: Store, record: Record, result, forced: frozenset[str] = frozenset(),
         journal: str | None = None) -> None:
    """Put back every recorded original and remove every added file that is still ours.

    ``result`` gathers ``restored``/``removed``/``left`` (an ``Undone`` or a revert's result).
    Every original is read and checked before the first write, so a damaged store stops the run
    with the install untouched; ``journal`` (a manifest state) is recorded right before that write.
    """
    same_release = record.release == install.release
    targets: list[Path] = []
    restore = []
    for entry in record.files if same_release else ():  # never write old files over another release
        path = install.package / PurePosixPath(entry.path)
        targets.append(path)
        digest = digest_of(path)
        if digest == entry.original_sha256:
            continue
        if digest not in (entry.patched_sha256, None) and entry.path not in forced:
            result.left.append(entry.path)
            continue
        restore.append((path, entry.path, store.original(entry.path, entry.original_sha256)))
    if journal is not None:
        store.set_state(journal)
        checkpoint()
    for path, rel, data in restore:
        atomic_write(path, data)
        checkpoint()
        result.restored.append(rel)
    for added in record.added:
        path = install.package / PurePosixPath(added.path)
        targets.append(path)
        if not path.is_file() or path.is_symlink():
            continue
        if digest_of(path) != added.sha256 and added.path not in forced:
            result.left.append(added.path)
            continue
        path.unlink()
        checkpoint()
        result.removed.append(added.path)
    clean_temporaries(targets)
    for rel in sorted(record.dirs, reverse=True):
        remove_dir(install.package / PurePosixPath(rel))


def recover(install: Install, store: Store) -> str | None:
    """Finish what a killed run left: roll an interrupted apply back, complete an interrupted revert."""
    record = store.read()
    if record is None or record.state == "applied":
        return None
    result = Undone()
    undo(install, store, record, result)
    if record.state == "applying":
        store.forget("recovered: an interrupted apply was rolled back")
        message = "An interrupted apply was found and rolled back: the install is pristine again."
    else:
        store.forget("recovered: an interrupted revert was completed")
        message = "An interrupted revert was found and completed: the install is pristine again."
    if result.left:
        message += f" Left untouched (changed by someone else): {', '.join(result.left)}."
    return message
