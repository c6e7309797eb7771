"""The record of an apply: a manifest with hashes, and the original files in a git repository.

Location: ``$RTDETR_PATCH_HOME`` if set, else ``%LOCALAPPDATA%\\rtdetr-patch`` on Windows and
``${XDG_STATE_HOME:-~/.local/state}/rtdetr-patch`` elsewhere; one folder per install under
``installs/<hash of the package path>``. It lives outside the Ultralytics package, so a
``pip install --force-reinstall`` cannot wipe the backups. Each apply and revert is a commit,
made with gitpython, so the history of an install can be read with plain ``git log``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING

from ..disk.files import replace_file, sha256
from ..errors import Exit, PatchError
from ..install.folders import tool_folder
from ..install.locate import Install, start_again
from .manifest import FORMAT, Record

if TYPE_CHECKING:  # gitpython loads only where the store is written or its history read
    from git import Repo

ENV = "RTDETR_PATCH_HOME"


def state_home() -> Path:
    return tool_folder(ENV, "XDG_STATE_HOME", ".local/state")


def install_key(package: Path) -> str:
    text = str(package.resolve())
    if sys.platform == "win32":
        text = text.lower()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _git() -> ModuleType:
    try:
        import git  # gitpython: imported late, it needs a git executable and the record-only paths never commit
    except ImportError as exc:  # also raised when no git executable is found
        raise PatchError(
            Exit.STORE,
            f"The backup store needs git, which is not usable here: {exc}",
            "Install git (https://git-scm.com) and make sure `git --version` runs.",
        )
    return git


class Store:
    """The record of one install."""

    def __init__(self, install: Install):
        self.install = install
        self.dir = state_home() / "installs" / install_key(install.package)
        self.manifest_path = self.dir / "manifest.json"
        self.originals = self.dir / "originals"

    # -- reading -------------------------------------------------------------------------------
    def read(self) -> Record | None:
        """The record of the last apply, or None when there is none."""
        if not self.manifest_path.exists():
            return None
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PatchError(
                Exit.STORE,
                f"The manifest {self.manifest_path} is unreadable: {exc}",
                f"Restore it from the store's history (git -C {self.dir} checkout -- manifest.json) "
                "or reinstall Ultralytics and delete that folder.",
            )
        return Record.of(data, self.manifest_path)

    def original(self, rel: str, expected_sha: str) -> bytes:
        """An original file's bytes, checked against the manifest; from git history if the copy is damaged."""
        path = self.originals / PurePosixPath(rel)
        try:
            data = path.read_bytes()
            if sha256(data) == expected_sha:
                return data
        except OSError:
            pass
        try:
            repo: Repo = _git().Repo(self.dir)
            for commit in repo.iter_commits(paths=f"originals/{rel}"):
                blob = commit.tree / f"originals/{rel}"
                old: bytes = blob.data_stream.read()
                if sha256(old) == expected_sha:
                    return old
        except PatchError:
            raise
        except Exception:  # any git failure means the store cannot help
            pass
        raise PatchError(
            Exit.STORE,
            f"The backup of {rel} in {self.dir} is missing or damaged (no copy with sha256 {expected_sha[:12]}...).",
            f"To start again, {start_again(self.install, rel)}.",
        )

    def module(self, name: str) -> bytes:
        """A user's backbone file as recorded by ``apply --module``."""
        try:
            return (self.dir / "modules" / f"{name}.py").read_bytes()
        except OSError as exc:
            raise PatchError(
                Exit.STORE,
                f"The recorded copy of the --module file {name}.py is missing in {self.dir}: {exc}",
                "Run apply again with the same --module options.",
            )

    # -- writing -------------------------------------------------------------------------------
    def _repo(self) -> Repo:
        git = _git()
        repo: Repo
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if (self.dir / ".git").is_dir():
                repo = git.Repo(self.dir)
                return repo
            repo = git.Repo.init(self.dir)
            with repo.config_writer() as cfg:
                cfg.set_value("core", "autocrlf", "false")  # originals stay byte for byte, CRLF included
                cfg.set_value("user", "name", "rtdetr-patch")
                cfg.set_value("user", "email", "rtdetr-patch@localhost")
            return repo
        except (OSError, git.GitError) as exc:
            raise PatchError(
                Exit.STORE,
                f"Cannot write the backup store {self.dir}: {exc}",
                f"Make it writable, or move it with {ENV}=<folder>.",
            )

    def _commit(self, repo: Repo, message: str) -> None:
        stale = self.dir / ".git" / "index.lock"  # left by a git killed mid-commit; we hold the install lock
        stale.unlink(missing_ok=True)
        try:
            repo.git.add("--all")
            repo.git.commit("--allow-empty", "-q", "-m", message)
        except Exception as exc:
            raise PatchError(
                Exit.STORE,
                f"Cannot commit to the backup store {self.dir}: {exc}",
                f"Check that git works there, or move the store with {ENV}=<folder>.",
            )

    def _write(self, record: Record) -> None:
        data = json.dumps({"format": FORMAT, **record.to_dict()}, indent=2) + "\n"
        replace_file(self.manifest_path, data.encode("utf-8"), self.manifest_path.with_name("manifest.json.tmp"))

    def record(
        self,
        record: Record,
        originals: dict[str, bytes],
        modules: dict[str, bytes] | None = None,
        kept: dict[str, bytes] | None = None,
    ) -> None:
        """Save the originals (and users' module files, and with ``adopt`` every hand-edited or added file of the
        tree in ``adopted/``) and the manifest, then commit; called before any install file is written."""
        repo = self._repo()
        try:
            for folder, files in (
                (self.originals, originals),
                (self.dir / "modules", modules or {}),
                (self.dir / "adopted", kept or {}),
            ):
                for rel, data in files.items():
                    path = folder / PurePosixPath(rel)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)  # the commit below makes them durable (git fsyncs its objects)
            self._write(record)
        except OSError as exc:
            raise PatchError(
                Exit.STORE,
                f"Cannot write the backup store {self.dir}: {exc}",
                f"Make it writable, or move it with {ENV}=<folder>.",
            )
        self._commit(repo, f"apply: Ultralytics {self.install.release} at {self.install.package}")

    def keep_edited(self, files: list[tuple[str, bytes]]) -> list[str]:
        """``revert --force``: the user's edited copies (rel, bytes), kept under ``edited/<time>/``; their paths."""
        stamp = now().replace(":", "-")
        kept = []
        for rel, data in files:
            keep = self.dir / "edited" / stamp / PurePosixPath(rel)
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_bytes(data)
            kept.append(str(keep))
        return kept

    def set_state(self, state: str) -> None:
        """The journal: ``applying`` / ``applied`` / ``reverting``, written atomically and synced. It is not
        committed on its own (the originals it protects already are); the next commit of the store takes it
        along."""
        record = self.read()
        if record is None:
            raise PatchError(
                Exit.STORE,
                f"The manifest {self.manifest_path} vanished during the run.",
                "Run the command again; `rtdetr-patch check` shows the state.",
            )
        try:
            self._write(record.with_state(state))
        except OSError as exc:
            raise PatchError(
                Exit.STORE,
                f"Cannot update the manifest {self.manifest_path}: {exc}",
                f"Make it writable, or move the store with {ENV}=<folder>.",
            )

    def forget(self, message: str) -> None:
        """After a revert: the manifest goes (history keeps it)."""
        repo = self._repo()
        try:
            self.manifest_path.unlink(missing_ok=True)
        except OSError as exc:
            raise PatchError(
                Exit.STORE,
                f"Cannot update the backup store {self.dir}: {exc}",
                f"Make it writable, or move it with {ENV}=<folder>.",
            )
        self._commit(repo, message)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
