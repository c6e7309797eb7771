"""The record of an apply, typed: what was written, what was added, and with which options.

It is stored as ``manifest.json`` in the install's backup store (``store.py``); this module reads it
into dataclasses and answers the question the fast paths ask: is every file still exactly as the
record says? When it is (and the record is this tool version's, for this release), ``check
--static`` and a repeated ``apply`` answer from the record alone, without parsing any source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .files import digest_of
from .locate import Install

ADDED_PACKAGE = "nn/Addmodules"  # the package of added backbones inside ultralytics/


@dataclass(frozen=True)
class FileEntry:
    path: str  # inside the ultralytics package, forward slashes
    original_sha256: str
    patched_sha256: str


@dataclass(frozen=True)
class AddedEntry:
    path: str
    sha256: str


@dataclass(frozen=True)
class ModuleEntry:
    name: str
    classes: tuple[str, ...]
    safe_names: tuple[str, ...] = ()

    @property
    def rel(self) -> str:
        return f"{ADDED_PACKAGE}/{self.name}.py"


@dataclass(frozen=True)
class StepEntry:
    name: str
    file: str
    blog_step: str
    outcome: str  # patched / applied / not-needed, as the apply found it


@dataclass
class Record:
    tool: str
    release: str
    package: str
    state: str = "applied"
    val_rect_fix: bool = False
    modules: list[ModuleEntry] = field(default_factory=list)
    transforms: list[StepEntry] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    added: list[AddedEntry] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, manifest: dict | None) -> "Record | None":
        if manifest is None:
            return None
        options = manifest.get("options", {})
        return cls(tool=manifest.get("tool", ""), release=manifest["release"], package=manifest.get("package", ""),
                   state=manifest.get("state", "applied"), val_rect_fix=bool(options.get("val_rect_fix")),
                   modules=[ModuleEntry(m["name"], tuple(m["classes"]), tuple(m.get("safe_names", ())))
                            for m in options.get("modules", [])],
                   transforms=[StepEntry(t["name"], t["file"], t.get("blog_step", ""), t["outcome"])
                               for t in manifest.get("transforms", [])],
                   files=[FileEntry(f["path"], f["original_sha256"], f["patched_sha256"]) for f in manifest["files"]],
                   added=[AddedEntry(a["path"], a["sha256"]) for a in manifest.get("added", [])],
                   dirs=list(manifest.get("dirs", [])))

    def intact(self, install: Install, tool: str) -> bool:
        """This tool's finished record of this release, and every file it names has the recorded bytes."""
        if self.tool != tool or self.release != install.release or self.state != "applied" or not self.files:
            return False
        here = install.package
        return all(digest_of(here / PurePosixPath(f.path)) == f.patched_sha256 for f in self.files) and \
            all(digest_of(here / PurePosixPath(a.path)) == a.sha256 for a in self.added)
