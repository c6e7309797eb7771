"""The one result type per command: built by the engine, completed and returned as is by the API,
printed by the CLI (tables, or ``to_dict()`` as JSON with ``--json``; the schema is in ``rtdetr_patch.api``).

Each fact is stored once. ``recovered`` (what a killed run left and this one finished) and, for revert,
``left`` (files changed by someone else) are fields of their own; ``warnings`` holds the other things to
act on; ``all_warnings`` (and the JSON's ``warnings``) gives them all, the stored facts first.

Each kind of row (a transform as apply or check reports it, a file, an added file, adopt's names, files,
yamls and edits) is a frozen type of its own, named after its command (``CheckFileRow``); its fields are
its JSON keys and their states are the enums of ``states``.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import PatchError
from .install.locate import Install
from .states import AddedState, AdoptStatus, FileState, Outcome, TransformState
from .version import __version__

if TYPE_CHECKING:  # the plan module needs libcst; a result only holds a plan that was made
    from .plan.planner import Plan

JSON_SCHEMA = 1
# check's problem for an install that holds nothing of the patch (the terminal says it in one line, with the
# command line that patches it; --json keeps every row and problem)
NOT_PATCHED_PROBLEM = "this install is not patched: run `rtdetr-patch apply`"


class Stage(str):
    """A stage of a command's progress (``on_stage``), as text; ``line``: worth a line of its own where no live
    line can show (output piped): adopt's stages and every hundredth yaml built, not each yaml."""

    line: bool

    def __new__(cls, text: str, line: bool = True) -> Stage:
        made = super().__new__(cls, text)
        made.line = line
        return made


def describe(install: Install | None) -> dict | None:
    if install is None:
        return None
    return {
        "release": install.release,
        "package": str(install.package),
        "python": install.python,
        "how": install.how,
        "tested": install.tested,
    }


def as_json(value: Any) -> Any:
    """A result's field as its JSON value: rows as their dicts, states as their words, tuples as lists."""
    if isinstance(value, Row):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return copy.deepcopy(value)


# -- rows: one frozen type per kind of row; ``to_dict()`` is its JSON object ----------------------------
@dataclass(frozen=True)
class Row:
    """A row of a result. Its fields are its JSON keys, in order (a row that leaves some out says so in its
    ``to_dict``). ``row["key"]`` and ``row.get("key")`` read the JSON value, as the dict rows of earlier
    releases of the Python API were read."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: as_json(getattr(self, f.name)) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)


@dataclass(frozen=True)
class ApplyTransformRow(Row):
    """apply: a transform and what it found (``patched``, ``applied``, ``not-needed``)."""

    name: str
    blog_step: str
    file: str
    state: Outcome


@dataclass(frozen=True)
class CheckTransformRow(Row):
    """check: a transform and its state (``applied``, ``missing``, ``not-needed``, ``unrecognised``)."""

    name: str
    file: str
    blog_step: str
    state: TransformState


@dataclass(frozen=True)
class ApplyAdditionRow(Row):
    """apply: a file the patch adds, its size, and whether it is there already."""

    path: str
    bytes: int
    present: bool


@dataclass(frozen=True)
class CheckFileRow(Row):
    """check: a file the patch changed, as it is now."""

    path: str
    state: FileState


@dataclass(frozen=True)
class CheckAddedRow(Row):
    """check: a file the patch adds, as it is now."""

    path: str
    state: AddedState


@dataclass(frozen=True)
class CheckModuleRow(Row):
    """check: a ``--module`` file, its names, and each name's rule ("backbone" for a backbone)."""

    file: str
    classes: tuple[str, ...]
    rules: dict[str, str]


@dataclass(frozen=True)
class AdoptNameRow(Row):
    """adopt: a name parse_model gained in the tree (``carried``, ``ours``, ``native``, ``not carried``).
    The JSON leaves out what is not known (a rule, a file, a reason, a branch's code)."""

    name: str
    status: AdoptStatus
    rule: str | None = None
    file: str | None = None
    why: str = ""
    code: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> AdoptNameRow:
        """The row ``to_dict`` gave (an adopt's record keeps them)."""
        return cls(**{**row, "status": AdoptStatus(row["status"])})


@dataclass(frozen=True)
class AdoptFileRow(Row):
    """adopt: a module file of the tree, the names registered from it, carried or not and why."""

    path: str
    stem: str
    names: tuple[str, ...]
    status: AdoptStatus
    why: str


@dataclass(frozen=True)
class AdoptYamlRow(Row):
    """adopt: a yaml the tree added, the names it uses, carried or not and why, built in the tree (``source``)
    and on the target (``target``): ``{"params"}`` or ``{"error"}`` each."""

    path: str
    uses: tuple[str, ...]
    carried: bool
    why: str
    source: dict[str, Any]
    target: dict[str, Any]


@dataclass(frozen=True)
class AdoptEditRow(Row):
    """adopt: an edit of the tree that is not carried (left where it is, or replaced), and why; ``defines``:
    the names a file of the release defines now (only where the tree defined new ones there)."""

    path: str
    why: str
    defines: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if k != "defines" or v is not None}

    @classmethod
    def from_dict(cls, edit: dict[str, Any]) -> AdoptEditRow:
        """A survey's edit, or the row ``to_dict`` gave (an adopt's record keeps them)."""
        defines = edit.get("defines")
        return cls(edit["path"], edit["why"], None if defines is None else tuple(defines))


@dataclass(frozen=True)
class AdoptSummary(Row):
    """adopt: how many names were carried, and how many yamls build in the tree and on the target."""

    names: int
    carried: int
    yamls: int
    build_in_source: int
    build_on_target: int
    same_params: int


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
    # apply's and check's own row types (their fields say which); revert and adopt leave it empty
    transforms: Sequence[ApplyTransformRow | CheckTransformRow] = field(default_factory=list)

    @property
    def all_warnings(self) -> list[str]:
        return list(self.warnings)

    def to_dict(self) -> dict:
        out: dict = {"schema": JSON_SCHEMA, "command": self.command, "tool": __version__}
        for f in fields(self):
            if f.metadata.get("json", True):
                out[f.name] = as_json(getattr(self, f.name))
        out["warnings"] = self.all_warnings
        return out

    @classmethod
    def failed(cls, exc: PatchError, install: Install | None = None) -> Result:
        """The result the command line prints (``--json``) for a command stopped by ``exc``."""
        return cls(
            ok=False,
            exit_code=int(exc.code),
            error={"message": exc.message, "hint": exc.hint},
            ultralytics=describe(install),
        )


@dataclass
class ApplyResult(Result):
    command: ClassVar[str] = "apply"
    transforms: list[ApplyTransformRow] = field(default_factory=list)
    dry_run: bool = False
    already: bool = False
    written: list[str] = field(default_factory=list)  # paths inside ultralytics/
    added: list[str] = field(default_factory=list)  # paths inside ultralytics/
    additions: list[ApplyAdditionRow] = field(default_factory=list)
    upgraded_from: str | None = None  # the rtdetr-patch release whose older patch this run replaced
    recovered: str | None = None
    modules: list[dict] = field(default_factory=list)  # --module preflight, one row per candidate
    store: str | None = None
    diff: str = ""
    verification: dict | None = None
    # The plan this run made; None when the answer came from the record (nothing parsed). Not in the JSON.
    plan: Plan | None = field(default=None, repr=False, compare=False, metadata={"json": False})

    @property
    def all_warnings(self) -> list[str]:
        return ([self.recovered] if self.recovered else []) + self.warnings


@dataclass
class RevertResult(Result):
    command: ClassVar[str] = "revert"
    nothing: bool = False
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # edited copies saved with --force (paths in the store)
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
    transforms: list[CheckTransformRow] = field(default_factory=list)
    static: bool = False
    files: list[CheckFileRow] = field(default_factory=list)
    added: list[CheckAddedRow] = field(default_factory=list)
    hand_patched: list[str] = field(default_factory=list)
    modules: list[CheckModuleRow] = field(default_factory=list)
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
    names: list[AdoptNameRow] = field(default_factory=list)
    files: list[AdoptFileRow] = field(default_factory=list)
    yamls: list[AdoptYamlRow] = field(default_factory=list)
    edits: list[AdoptEditRow] = field(default_factory=list)  # not carried, left where they are (or replaced)
    summary: AdoptSummary | None = None  # ``{}`` in the JSON until the plan is made
    written: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    kept: str | None = None  # the store folder holding every hand-edited or added file of the tree (in place)
    recovered: str | None = None
    store: str | None = None
    verification: dict | None = None
    built_with: dict | None = None  # the Ultralytics the tree's yamls were built with: {"release", "package", "python"}
    plan: Plan | None = field(default=None, repr=False, compare=False, metadata={"json": False})

    @property
    def all_warnings(self) -> list[str]:
        return ([self.recovered] if self.recovered else []) + self.warnings

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["summary"] = out["summary"] or {}
        return out

    @classmethod
    def failed(cls, exc: PatchError, install: Install | None = None) -> AdoptResult:
        """The failed result, with the survey as far as it went (names, files, yamls) beside the error."""
        out = cls(
            ok=False,
            exit_code=int(exc.code),
            error={"message": exc.message, "hint": exc.hint},
            ultralytics=describe(install),
        )
        found = exc.partial
        if isinstance(found, AdoptResult):
            for name in ("in_place", "source", "source_release", "names", "files", "yamls", "edits", "summary"):
                setattr(out, name, getattr(found, name))
            out.built_with = found.built_with
        return out
