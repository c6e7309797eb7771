"""File-system primitives of a run: hashes, atomic writes, permission checks, clean-up of folders."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from ..errors import Exit, PatchError
from ..install.locate import Install
from .killpoints import checkpoint


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(path: Path) -> str | None:
    """The sha256 of a plain file, or None when there is none."""
    try:
        return sha256(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Windows cannot open a folder for ``fsync`` (NTFS orders its
    metadata itself), so it is skipped there; a file system that refuses it (some network mounts) too."""
    if os.name == "nt":
        return
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_synced(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())  # the bytes are on disk before the rename can be


def atomic_write(path: Path, data: bytes) -> None:
    """Write beside the file, then move it into place: a reader sees the old or the new file, never half.

    As pip's ``adjacent_tmp_file``: the temporary file is flushed and ``fsync``-ed before the rename and
    the folder after it, so after a power loss the journal's order (manifest state before the install's
    files) holds on disk too.
    """
    import shutil  # copymode only; shutil pulls in more than the record-only paths need
    import tempfile  # likewise: only a write needs it

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".rtdetr-patch", dir=str(path.parent))
    try:
        _write_synced(fd, data)
        if path.exists():
            shutil.copymode(path, tmp)
        checkpoint()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def replace_file(path: Path, data: bytes, tmp: Path) -> None:
    """``atomic_write`` through a fixed temporary name (the store's manifest), without a kill-point."""
    try:
        _write_synced(
            os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644), data
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder``, by making (and deleting) one. ``os.access`` answers from the
    mode bits only, which on Windows ignore the folder's ACL (and elsewhere ignore read-only mounts)."""
    import tempfile  # only a write needs it

    try:
        fd, probe = tempfile.mkstemp(prefix=".rtdetr-patch-probe.", dir=str(folder))
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):  # the probe file is ours; a failure to remove it changes nothing
        os.unlink(probe)
    return True


def _can_write(path: Path) -> bool:
    if not os.access(path, os.W_OK):
        return False
    if os.name == "nt":  # os.access only sees the read-only attribute there: open it for writing, write nothing
        try:
            with open(path, "ab"):
                pass
        except OSError:
            return False
    return True


def require_writable(paths: list[Path], install: Install) -> None:
    """Every path can be replaced: the file itself is writable, and a file can be made in its folder (one
    probe per folder; each costs a create and a delete, well under a millisecond)."""
    probed: dict[Path, bool] = {}
    for path in paths:
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if folder not in probed:
            probed[folder] = _can_create_in(folder)
        if (path.exists() and not _can_write(path)) or not probed[folder]:
            raise PatchError(
                Exit.WRITE,
                f"Cannot write {path} (Ultralytics {install.release}): permission denied.",
                "Run from an environment you own (a venv), or with the rights to change this install. "
                "Nothing was written.",
            )


def remove_dir(path: Path) -> None:
    """Remove a folder this tool made, once empty (its __pycache__ goes with it)."""
    import shutil  # rmtree only; kept off the record-only paths

    cache = path / "__pycache__"
    if cache.is_dir() and not cache.is_symlink():
        shutil.rmtree(cache)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


def clean_temporaries(paths: list[Path]) -> None:
    """Temporary files an atomic write killed half way left beside its target."""
    for path in paths:
        if path.parent.is_dir():
            for tmp in path.parent.glob(f".{path.name}.*.rtdetr-patch"):
                tmp.unlink(missing_ok=True)
