"""The one result type per command: built by the engine, completed and returned as is by the API,
printed by the CLI (tables, or ``to_dict()`` as JSON with ``--json``; the schema is in ``rtdetr_patch.api``).

Each fact is stored once. ``recovered`` (what a killed run left and this one finished) and, for revert,
``left`` (files changed by someone else) are fields of their own; ``warnings`` holds the other things to
act on; ``all_warnings`` (and the JSON's ``warnings``) gives them all, the stored facts first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

from .errors import PatchError
from .install.locate import Install
from .version import __version__

if TYPE_CHECKING:  # the plan module needs libcst; a result only holds a plan that was made
    from .plan.planner import Plan

JSON_SCHEMA = 1


def describe(install: Install | None) -> dict | None:
    if install is None:
        return None
    return {"release": install.release, "package": str(install.package), "python": install.python,
            "how": install.how, "tested": install.tested}


@dataclass
class Result:
    command: ClassVar[str] = ""
    ok: bool = True
    exit_code: int = 0
    error: dict | None = None
    ultralytics: dict | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    restart_needed: bool = False
    transforms: list[dict] = field(default_factory=list)

    @property
    def all_warnings(self) -> list[str]:
        return list(self.warnings)

    def to_dict(self) -> dict:
        out: dict = {"schema": JSON_SCHEMA, "command": self.command, "tool": __version__}
        for f in fields(self):
            if f.metadata.get("json", True):
                out[f.name] = copy.deepcopy(getattr(self, f.name))
        out["warnings"] = self.all_warnings
        return out

    @classmethod
    def failed(cls, exc: PatchError, install: Install | None = None) -> "Result":
        """The result the command line prints (``--json``) for a command stopped by ``exc``."""
        return cls(ok=False, exit_code=int(exc.code), error={"message": exc.message, "hint": exc.hint},
                   ultralytics=describe(install))


@dataclass
class ApplyResult(Result):
    command: ClassVar[str] = "apply"
    dry_run: bool = False
    already: bool = False
    written: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    additions: list[dict] = field(default_factory=list)  # {"path", "bytes", "present"} per added file
    upgraded_from: str | None = None  # the rtdetr-patch release whose older patch this run replaced
    recovered: str | None = None
    modules: list[dict] = field(default_factory=list)  # --module preflight, one row per candidate
    store: str | None = None
    diff: str = ""
    verification: dict | None = None
    # The plan this run made; None when the answer came from the record (nothing parsed). Not in the JSON.
    plan: "Plan | None" = field(default=None, repr=False, compare=False, metadata={"json": False})

    @property
    def all_warnings(self) -> list[str]:
        return ([self.recovered] if self.recovered else []) + self.warnings


@dataclass
class RevertResult(Result):
    command: ClassVar[str] = "revert"
    nothing: bool = False
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited copies saved with --force
    left: list[str] = field(default_factory=list)  # files neither ours nor original, not touched
    stale_release: str | None = None
    recovered: str | None = None
    left_as_edited: list[str] = field(default_factory=list)  # after adopt: files of the user's the tool never managed

    @property
    def all_warnings(self) -> list[str]:
        left = ["left untouched (changed by someone else): " + ", ".join(self.left)] if self.left else []
        return ([self.recovered] if self.recovered else []) + left + self.warnings


@dataclass
class CheckResult(Result):
    command: ClassVar[str] = "check"
    static: bool = False
    files: list[dict] = field(default_factory=list)
    added: list[dict] = field(default_factory=list)
    hand_patched: list[str] = field(default_factory=list)
    modules: list[dict] = field(default_factory=list)
    store: str | None = None
    recorded: bool = False
    recorded_release: str | None = None
    release_tested: bool = True
    tested_range: list[str] = field(default_factory=list)
    verification: dict | None = None
    adopted: dict | None = None  # what adopt carried: {"source", "source_release", "in_place", "names", "yamls", ...}


@dataclass
class AdoptResult(Result):
    """``adopt``: the plan (per name, file, yaml and edit, carried or not and why), then what was written."""

    command: ClassVar[str] = "adopt"
    dry_run: bool = False
    already: bool = False
    in_place: bool = False
    source: str | None = None  # the tree's ultralytics/ folder
    source_release: str | None = None
    names: list[dict] = field(default_factory=list)  # {"name", "status", "rule", "file", "why", "code"}
    files: list[dict] = field(default_factory=list)  # {"path", "stem", "names", "status", "why"}
    yamls: list[dict] = field(default_factory=list)  # {"path", "uses", "carried", "why", "source", "target"}
    edits: list[dict] = field(default_factory=list)  # {"path", "why"}: not carried, left where they are
    # {"names", "carried", "yamls", "build_in_source", "build_on_target", "same_params"}
    summary: dict = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    kept: str | None = None  # the store folder holding every hand-edited or added file of the tree (in place)
    recovered: str | None = None
    store: str | None = None
    verification: dict | None = None
    plan: "Plan | None" = field(default=None, repr=False, compare=False, metadata={"json": False})

    @property
    def all_warnings(self) -> list[str]:
        return ([self.recovered] if self.recovered else []) + self.warnings
