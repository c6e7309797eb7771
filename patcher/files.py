"""File-system primitives of a run: hashes, atomic writes, permission checks, clean-up of folders."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import Exit, PatchError
from .locate import Install
from .safety import checkpoint


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(path: Path) -> str | None:
    """The sha256 of a plain file, or None when there is none."""
    try:
        return sha256(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write beside the file, then move it into place: a reader sees the old or the new file, never half."""
    import shutil
    import tempfile

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


def require_writable(paths: list[Path], install: Install) -> None:
    for path in paths:
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if (path.exists() and not os.access(path, os.W_OK)) or not os.access(folder, os.W_OK):
            raise PatchError(Exit.WRITE, f"Cannot write {path} (Ultralytics {install.release}): permission denied.",
                             "Run from an environment you own (a venv), or with the rights to change this install. "
                             "Nothing was written.")


def remove_dir(path: Path) -> None:
    """Remove a folder this tool made, once empty (its __pycache__ goes with it)."""
    import shutil

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
