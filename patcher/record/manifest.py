"""The record of an apply, typed: what was written, what was added, and with which options.

One schema for writing and reading. ``apply`` builds a :class:`Record` and the store writes
``Record.to_dict()`` as ``manifest.json`` (``store.py``); every reader gets ``Record.of()``, which
names the manifest and the key when one is missing or malformed. The JSON is the one 0.3.0 writes,
key for key and in the same order, so existing records read and rewrite unchanged.

It also answers the question the fast paths ask: is every file still exactly as the record says?
When it is (and the record is this tool version's, for this release), ``check --static`` and a
repeated ``apply`` answer from the record alone, without parsing any source.

Extending a module entry (or any entry) with a new optional key: add a field with a default and read
it in ``of()`` with ``_opt``; records without the key keep reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..disk.files import digest_of
from ..errors import Exit, PatchError
from ..install.locate import Install

FORMAT = 1
ADDED_PACKAGE = "nn/Addmodules"  # the package of added backbones inside ultralytics/


class _Reader:
    """Reads one manifest's keys, and names the manifest and the key in any failure."""

    def __init__(self, where: Path | str):
        self.where = where

    def fail(self, key: str, why: str) -> PatchError:
        return PatchError(
            Exit.STORE,
            f"The manifest {self.where} is unreadable: {why} ({key}).",
            f"Restore it from the store's history (git -C {Path(self.where).parent} checkout -- "
            "manifest.json) or reinstall Ultralytics and delete that folder.",
        )

    def get(self, data: Any, key: str, kind: type | tuple[type, ...], name: str, default: Any = ...) -> Any:
        if not isinstance(data, dict):
            raise self.fail(name.rpartition(".")[0] or "the top level", "not an object")
        if key not in data:
            if default is ...:
                raise self.fail(name, "a required key is missing")
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # True is an int too
            raise self.fail(name, f"expected {getattr(kind, '__name__', kind)}, found {type(value).__name__}")
        return value

    def strings(self, data: Any, key: str, name: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(data, key, list, name, default)
        if not all(isinstance(v, str) for v in values):
            raise self.fail(name, "expected a list of strings")
        return tuple(values)

    def rules(self, data: Any, name: str) -> tuple[tuple[str, str], ...]:
        """The optional ``rules`` mapping of a module entry: name -> rule, both strings."""
        found = self.get(data, "rules", dict, name, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
            raise self.fail(name, "must map names to rules (strings)")
        return tuple(found.items())

    def rows(self, data: Any, key: str, name: str, default: Any = ...) -> list[Any]:
        return list(self.get(data, key, list, name, default))

    def objects(self, data: Any, key: str, name: str) -> tuple[dict[str, Any], ...]:
        """An optional list of JSON objects, each kept as it is."""
        values = self.rows(data, key, name, [])
        if not all(isinstance(v, dict) for v in values):
            raise self.fail(name, "expected a list of objects")
        return tuple(values)


@dataclass(frozen=True)
class FileEntry:
    path: str  # inside the ultralytics package, forward slashes
    original_sha256: str
    patched_sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "original_sha256": self.original_sha256, "patched_sha256": self.patched_sha256}


@dataclass(frozen=True)
class AddedEntry:
    path: str
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256}


@dataclass(frozen=True)
class ModuleEntry:
    """A user's module: a file added with ``--module`` (or carried by ``adopt``) as ``nn/Addmodules/<name>.py``,
    and the names it registers. The one module type: the record holds it as it is, and a run's module
    (``modules.user_module.UserModule``) is one of these with the run's own facts added (the file's bytes, where
    it came from, the preflight's report). Optional keys default when a record lacks them.

    ``classes`` are the names a yaml row may use (classes or factory functions); ``rules`` holds (name, rule) for
    every name that is not a backbone (written only when there is one); ``safe_names`` the classes from other
    packages an instance holds, which restricted loading must accept.
    """

    name: str  # the file's stem; adopt: a dotted module under the added package (``extra_modules.block``)
    classes: tuple[str, ...]
    safe_names: tuple[str, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()

    @property
    def rel(self) -> str:
        """Its file inside the ultralytics package (a dotted name is a file in the folders it names)."""
        return f"{ADDED_PACKAGE}/{self.name.replace('.', '/')}.py"

    @property
    def backbones(self) -> tuple[str, ...]:
        """The names registered as backbones: those without a rule."""
        ruled = {name for name, _ in self.rules}
        return tuple(c for c in self.classes if c not in ruled)

    @property
    def entry(self) -> ModuleEntry:
        """The record's entry of it: these fields only (a run's module carries more)."""
        return ModuleEntry(self.name, self.classes, self.safe_names, self.rules)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "safe_names": list(self.safe_names),
            **({"rules": dict(self.rules)} if self.rules else {}),
        }


def package_inits(modules: Sequence[ModuleEntry]) -> list[str]:
    """The ``__init__.py`` files (inside the ultralytics package) that the folders of dotted module names need: each
    empty, so that importing one carried file never runs its siblings."""
    out: set[str] = set()
    for module in modules:
        parts = module.name.split(".")[:-1]
        out.update(f"{ADDED_PACKAGE}/{'/'.join(parts[: i + 1])}/__init__.py" for i in range(len(parts)))
    return sorted(out)


@dataclass(frozen=True)
class StepEntry:
    name: str
    file: str
    blog_step: str
    outcome: str  # patched / applied / not-needed, as the apply found it

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.file, "blog_step": self.blog_step, "outcome": self.outcome}


@dataclass(frozen=True)
class AdoptedAccount:
    """What ``adopt`` carried, kept in the record (``adopted``): the tree it read, its release, whether it was
    adopted in place, and its rows as ``adopt`` reported them (names, yamls built, edits left as they are)."""

    source: str | None = None  # the tree's ultralytics/ folder
    source_release: str | None = None
    in_place: bool = False
    names: tuple[dict[str, Any], ...] = ()  # {"name", "status", "rule", "file", "why", "code"}
    yamls: tuple[dict[str, Any], ...] = ()  # {"path", "source", "target"}
    edits: tuple[dict[str, Any], ...] = ()  # {"path", "why"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "source_release": self.source_release,
            "in_place": self.in_place,
            "names": [dict(n) for n in self.names],
            "yamls": [dict(y) for y in self.yamls],
            "edits": [dict(e) for e in self.edits],
        }

    @classmethod
    def read(cls, r: _Reader, data: Any) -> AdoptedAccount | None:
        """The account in a manifest's ``adopted`` object; None where there is none (absent or empty)."""
        found = r.get(data, "adopted", dict, "adopted", {})
        if not found:
            return None
        return cls(
            source=r.get(found, "source", (str, type(None)), "adopted.source", None),
            source_release=r.get(found, "source_release", (str, type(None)), "adopted.source_release", None),
            in_place=r.get(found, "in_place", bool, "adopted.in_place", False),
            names=r.objects(found, "names", "adopted.names"),
            yamls=r.objects(found, "yamls", "adopted.yamls"),
            edits=r.objects(found, "edits", "adopted.edits"),
        )


@dataclass(frozen=True)
class Record:
    tool: str
    release: str
    package: str
    applied_at: str = ""
    # The opt-in transforms' options (``Transform.OPTION``, e.g. ``val_rect_fix``) -> whether that apply ran them.
    flags: dict[str, bool] = field(default_factory=dict)
    modules: tuple[ModuleEntry, ...] = ()
    transforms: tuple[StepEntry, ...] = ()
    files: tuple[FileEntry, ...] = ()
    added: tuple[AddedEntry, ...] = ()
    dirs: tuple[str, ...] = ()
    state: str = "applied"  # the journal: applying / applied / reverting
    # What ``adopt`` carried (source, release, names, yamls, edits left as they are); written only after an adopt.
    adopted: AdoptedAccount | None = None

    @property
    def options(self) -> frozenset[str]:
        """The opt-in options this record's apply ran with."""
        return frozenset(name for name, on in self.flags.items() if on)

    def with_state(self, state: str) -> Record:
        return replace(self, state=state)

    def to_dict(self) -> dict:
        """The manifest, as written to disk (the store puts ``format`` first)."""
        return {
            "tool": self.tool,
            "release": self.release,
            "package": self.package,
            "applied_at": self.applied_at,
            "options": {**self.flags, "modules": [m.to_dict() for m in self.modules]},
            "transforms": [t.to_dict() for t in self.transforms],
            "files": [f.to_dict() for f in self.files],
            "added": [a.to_dict() for a in self.added],
            "dirs": list(self.dirs),
            "state": self.state,
            **({"adopted": self.adopted.to_dict()} if self.adopted else {}),
        }

    @classmethod
    def of(cls, data: Any, where: Path | str) -> Record:
        """The record in a manifest's JSON; ``PatchError`` (exit 10) naming ``where`` and the key otherwise.

        Required: ``format`` (this schema's), ``release`` and ``files``, and each entry's own keys; the rest
        default as records of earlier releases lacked them.
        """
        r = _Reader(where)
        if r.get(data, "format", int, "format") != FORMAT:
            raise r.fail("format", f"unknown format {data['format']!r}")
        options = r.get(data, "options", dict, "options", {})
        flags = _flags(r, options)
        modules = tuple(
            ModuleEntry(
                name=r.get(m, "name", str, f"options.modules[{i}].name"),
                classes=r.strings(m, "classes", f"options.modules[{i}].classes"),
                safe_names=r.strings(m, "safe_names", f"options.modules[{i}].safe_names", []),
                rules=r.rules(m, f"options.modules[{i}].rules"),
            )
            for i, m in enumerate(r.rows(options, "modules", "options.modules", []))
        )
        transforms, files, added = _steps(r, data), _files(r, data), _added(r, data)
        return cls(
            tool=r.get(data, "tool", str, "tool", ""),
            release=r.get(data, "release", str, "release"),
            package=r.get(data, "package", str, "package", ""),
            applied_at=r.get(data, "applied_at", str, "applied_at", ""),
            flags=flags,
            modules=modules,
            transforms=transforms,
            files=files,
            added=added,
            dirs=r.strings(data, "dirs", "dirs", []),
            state=r.get(data, "state", str, "state", "applied"),
            adopted=AdoptedAccount.read(r, data),
        )

    def file(self, rel: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == rel), None)

    def intact(self, install: Install, tool: str) -> bool:
        """This tool's finished record of this release, and every file it names has the recorded bytes."""
        if self.tool != tool or self.release != install.release or self.state != "applied" or not self.files:
            return False
        here = install.package
        return all(digest_of(here / PurePosixPath(f.path)) == f.patched_sha256 for f in self.files) and all(
            digest_of(here / PurePosixPath(a.path)) == a.sha256 for a in self.added
        )


# -- reading a manifest's rows (in this order, so the first bad key named is the same) --------------
def _flags(r: _Reader, options: dict[str, Any]) -> dict[str, bool]:
    return {key: r.get(options, key, bool, f"options.{key}") for key in options if key != "modules"}


def _steps(r: _Reader, data: Any) -> tuple[StepEntry, ...]:
    return tuple(
        StepEntry(
            name=r.get(t, "name", str, f"transforms[{i}].name"),
            file=r.get(t, "file", str, f"transforms[{i}].file"),
            blog_step=r.get(t, "blog_step", str, f"transforms[{i}].blog_step", ""),
            outcome=r.get(t, "outcome", str, f"transforms[{i}].outcome"),
        )
        for i, t in enumerate(r.rows(data, "transforms", "transforms", []))
    )


def _files(r: _Reader, data: Any) -> tuple[FileEntry, ...]:
    return tuple(
        FileEntry(
            path=r.get(f, "path", str, f"files[{i}].path"),
            original_sha256=r.get(f, "original_sha256", str, f"files[{i}].original_sha256"),
            patched_sha256=r.get(f, "patched_sha256", str, f"files[{i}].patched_sha256"),
        )
        for i, f in enumerate(r.rows(data, "files", "files"))
    )


def _added(r: _Reader, data: Any) -> tuple[AddedEntry, ...]:
    return tuple(
        AddedEntry(path=r.get(a, "path", str, f"added[{i}].path"), sha256=r.get(a, "sha256", str, f"added[{i}].sha256"))
        for i, a in enumerate(r.rows(data, "added", "added", []))
    )
