"""What every transform shares: the outcome vocabulary, the errors, and small CST helpers.

A transform is a ``libcst.CSTTransformer`` over one Ultralytics source file. It finds its target by
shape (module, class, function and statement structure, through ``libcst.matchers``), never by line
numbers or exact text, and touches nothing else. After ``run`` it reports one of three outcomes:

* ``PATCHED``: it found the pristine target and rewrote it (the returned module differs);
* ``APPLIED``: the target already has this transform's shape (running twice changes nothing);
* ``NOT_NEEDED``: this release already behaves correctly, so the file is left alone.

When the target cannot be found it raises :class:`TargetMissing` with what it looked for; the
orchestration in ``patcher`` adds the file and the release to the message and writes nothing.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Sequence

import libcst as cst
import libcst.matchers as m

MARK = "rtdetr-patch"


class Outcome(str, enum.Enum):
    PATCHED = "patched"
    APPLIED = "applied"
    NOT_NEEDED = "not-needed"


class TargetMissing(Exception):
    """The transform's target is not in the file (or not in the shape it knows)."""

    def __init__(self, looked_for: str):
        super().__init__(looked_for)
        self.looked_for = looked_for


class Transform(cst.CSTTransformer):
    """Base class: subclasses set the class attributes and ``self.outcome`` while visiting."""

    NAME: ClassVar[str]
    FILE: ClassVar[str]  # path inside the ``ultralytics`` package, with forward slashes
    SEED_STEP: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    LOOKED_FOR: ClassVar[str]
    OPT_IN: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.outcome: Outcome | None = None
        self.classes: list[str] = []
        self.functions: list[str] = []

    # Context tracking shared by the transforms that target ``Class.method``.
    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.classes.append(node.name.value)
        return True

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.BaseStatement:
        self.classes.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.functions.append(node.name.value)
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        self.functions.pop()
        return updated

    def in_method(self, cls: str, func: str) -> bool:
        return bool(self.classes) and self.classes[-1] == cls and bool(self.functions) and self.functions[-1] == func

    def run(self, module: cst.Module) -> tuple[cst.Module, Outcome]:
        new = module.visit(self)
        if self.outcome is None:
            raise TargetMissing(self.LOOKED_FOR)
        return new, self.outcome

    def settle(self, outcome: Outcome) -> None:
        """Record an outcome; a file with the target twice must agree on it."""
        if self.outcome is not None and self.outcome != outcome:
            raise TargetMissing(f"{self.LOOKED_FOR} (found it both patched and unpatched: the file looks hand-edited)")
        self.outcome = outcome


def statement(code: str) -> cst.BaseStatement:
    """Parse one statement written with four-space indentation; libcst re-indents it in place."""
    return cst.parse_statement(code)


def expression(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def is_simple(stmt: cst.CSTNode, matcher: m.BaseMatcherNode) -> bool:
    """True when ``stmt`` is a one-statement line whose statement matches ``matcher``."""
    return m.matches(stmt, m.SimpleStatementLine(body=[matcher]))


def block_of(node: cst.CSTNode) -> Sequence[cst.BaseStatement]:
    body = getattr(node, "body", None)
    if isinstance(body, cst.IndentedBlock):
        return body.body
    return ()


def with_block(node: cst.CSTNode, stmts: Sequence[cst.BaseStatement]) -> cst.CSTNode:
    return node.with_changes(body=node.body.with_changes(body=list(stmts)))


def trailing_comment(text: str) -> cst.TrailingWhitespace:
    return cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(f"# {text}"))
