"""The per-install lock: one rtdetr-patch at a time on an install.

An OS file lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) on a file in the install's
state folder. The OS drops it when the process dies, even by SIGKILL, so a crashed run never leaves a
stale lock behind. A second run waits for it, then stops clearly.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import BinaryIO

from ..errors import Exit, PatchError


class InstallLock:
    """Exclusive lock on one install; ``wait`` seconds before giving up with a clear message."""

    def __init__(self, folder: Path, what: str, wait: float = 30.0):
        self.path = folder / "lock"
        self.what, self.wait = what, wait
        self.handle: BinaryIO | None = None

    def _try(self, handle: BinaryIO) -> bool:
        try:
            if sys.platform == "win32":
                import msvcrt  # Windows only

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl  # POSIX only

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def __enter__(self) -> InstallLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = handle = open(self.path, "a+b")
        except OSError as exc:
            raise PatchError(
                Exit.STORE,
                f"Cannot create the lock {self.path}: {exc}",
                "Make the state folder writable, or move it with RTDETR_PATCH_HOME=<folder>.",
            )
        deadline = time.monotonic() + self.wait
        while not self._try(handle):
            if time.monotonic() >= deadline:
                handle.close()
                raise PatchError(
                    Exit.LOCKED,
                    f"Another rtdetr-patch is working on {self.what} (lock {self.path}); waited {self.wait:.0f} s.",
                    "Let it finish, then run the command again. Nothing was written.",
                )
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        handle = self.handle
        assert handle is not None  # entered
        try:
            if sys.platform == "win32":
                import msvcrt  # Windows only

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl  # POSIX only

                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()
