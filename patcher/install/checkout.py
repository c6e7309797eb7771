"""Editable installs from a git clone of Ultralytics: never patch over someone's uncommitted work.

rtdetr-patch only reads the user's repository (``git status`` through gitpython): it never
commits, stashes or resets there. A revert restores the files byte for byte and removes the
added ones, so ``git status`` ends as it was found.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import Exit, PatchError
from .locate import Install


def repository(install: Install):
    """The git work tree holding the package, or None (a plain site-packages install)."""
    folder = install.package
    while True:
        if (folder / ".git").exists():
            break
        if folder.parent == folder:
            return None
        folder = folder.parent
    try:
        import git  # gitpython: only a run that writes (or advises on) a checkout asks git

        return git.Repo(folder)
    except Exception:  # not a usable repository: treat as a plain folder
        return None


def refuse_uncommitted(install: Install, paths: list[Path]) -> None:
    """Stop before patching files that have uncommitted changes in the user's checkout."""
    repo = repository(install)
    if repo is None or not paths:
        return
    top = Path(repo.working_tree_dir).resolve()
    rels = [p.resolve().relative_to(top).as_posix() for p in paths]
    dirty = [r for r in rels if repo.git.status("--porcelain", "--", r).strip()]
    if dirty:
        raise PatchError(
            Exit.DIRTY_CHECKOUT,
            f"{', '.join(dirty)} in the git checkout {top} (Ultralytics {install.release}) have uncommitted changes.",
            "Commit or stash them yourself, or run apply --force to patch over them (revert "
            "then restores your uncommitted version). Nothing was written.",
        )
