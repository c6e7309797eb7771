"""Exit codes and the one error type the commands raise.

Every failure carries one message that names the file, the release and what to do, and a
distinct exit code (documented in the README). Nothing is written before a failure is known.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager


class Exit(enum.IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in rtdetr-patch: please report it
    USAGE = 2  # bad command-line arguments (click's own code)
    NOT_FOUND = 3  # no Ultralytics at the place given, or the --python interpreter does not run
    UNSUPPORTED = 4  # a release older than 8.0.136, or a layout without RT-DETR
    TRANSFORM = 5  # a transform's target is missing or the file does not parse: nothing written
    VERIFY = 6  # the smoke verification failed
    CHANGED = 7  # files changed since apply (hand edits, or Ultralytics upgraded/reinstalled)
    NOT_PATCHED = 8  # check: the patch is missing or incomplete
    CONFLICT = 9  # a file rtdetr-patch would add already exists and is not ours
    STORE = 10  # the manifest or the backup store is unreadable or cannot be written
    WRITE = 11  # a file of the install cannot be written (read-only, permissions)
    LOCKED = 12  # another rtdetr-patch run holds this install
    HAND_PATCHED = 13  # the install was already edited by hand (the blog's steps): not patched twice
    DIRTY_CHECKOUT = 14  # a git checkout with uncommitted changes in the files to patch (see --force)
    MODULE = 15  # a --module file does not import, build or keep the backbone contract
    ADOPT = 16  # adopt: the tree to adopt is not one, its pristine release cannot be had, or nothing can be carried
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); the message says what state the install is in


class PatchError(Exception):
    """A failure with its exit code; ``str()`` is the whole message shown to the user."""

    def __init__(self, code: Exit, message: str, hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.partial: object = None  # what the command had found when it stopped (adopt: its survey), or None

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


NOTHING_WRITTEN = "Interrupted before anything was written: the install is as it was."
WRITTEN_NOT_VERIFIED = (
    "Interrupted after writing: the patch is in place and recorded but not yet verified. Run "
    "`rtdetr-patch check` to verify it."
)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying the state the install is left in and what to run next.

    Still a ``KeyboardInterrupt`` (a notebook's interrupt stays one); the command line prints
    ``state`` as one line and exits 130.
    """

    def __init__(self, state: str):
        super().__init__(state)
        self.state = state


@contextmanager
def if_interrupted(state: str) -> Iterator[None]:
    """Within this block, Ctrl-C leaves the install in ``state``; an inner block's state wins."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(state) from None


def reinstall(release: str | None = None) -> str:
    """The command that puts Ultralytics' own files back (of ``release``, or of the release pip picks)."""
    return "pip install --force-reinstall --no-deps ultralytics" + (f"=={release}" if release else "")
