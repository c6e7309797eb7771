"""What every transform shares: the outcome vocabulary, the errors, and small CST helpers.

A transform is a ``libcst.CSTTransformer`` over one Ultralytics source file. It finds its target by
shape (module, class, function and statement structure, through ``libcst.matchers``), never by line
numbers or exact text, and touches nothing else. After ``run`` it reports one of three outcomes:

* ``PATCHED``: it found the pristine target and rewrote it (the returned module differs);
* ``APPLIED``: the target already has this transform's shape (running twice changes nothing);
* ``NOT_NEEDED``: this release already behaves correctly, so the file is left alone.

When the target cannot be found it raises :class:`TargetMissing` with what it looked for; the
orchestration in ``patcher`` adds the file and the release to the message and writes nothing.

``run`` is the same for every transform; a transform declares what it decides beyond its walk through
three hooks: ``outcome_before_walk`` (a cheap look at the module's statements that can settle the
outcome, or narrow the scope, before any walk), ``not_needed`` (after the walk: this release already
behaves correctly, so the file is left alone) and ``check_found`` (after the walk: every part of the
target was found, else :class:`TargetMissing`).

Each transform is scoped: ``SCOPE`` names the functions and methods it may change
(``"parse_model"``, ``"DetectionModel.__init__"``, ``"*.*"`` for every method of every class) and
the walk descends nowhere else, so a transform costs what its target costs, not the whole file
(libcst rebuilds every node it visits). Module-level statements are left to ``leave_Module``.
One convention says "this is already ours" everywhere: the patched shape itself (our names, or a
comment carrying ``MARK``), found at the same place the pristine target would be.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar, TypeVar

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type, parse_template_statement

from ..patcher.states import Outcome  # the vocabulary lives where the record-only paths can read it

MARK = "rtdetr-patch"


class TargetMissing(Exception):
    """The transform's target is not in the file (or not in the shape it knows)."""

    def __init__(self, looked_for: str):
        super().__init__(looked_for)
        self.looked_for = looked_for


class Transform(cst.CSTTransformer):
    """Base class: subclasses set the class attributes and ``self.outcome`` while visiting."""

    NAME: ClassVar[str]
    FILE: ClassVar[str]  # path inside the ``ultralytics`` package, with forward slashes
    BLOG_STEP: ClassVar[str]
    LOOKED_FOR: ClassVar[str]
    # An opt-in transform runs only when asked: OPTION names the option that asks (the API keyword, the
    # CLI flag with dashes, the record's key); None for the transforms every apply runs.
    OPTION: ClassVar[str | None] = None
    # Where the walk descends: "func" (a module function's body), "Class.method", "Class.*", "*.*", or
    # "Class" (into the class, so leave_FunctionDef sees its methods, but not into their bodies).
    # leave_FunctionDef/leave_ClassDef see every top-level definition without any descent.
    SCOPE: ClassVar[tuple[str, ...]] = ()
    STATEMENTS: ClassVar[bool] = True  # descend into the simple statements (expressions) of the scope
    # The releases that can need it, as (first, last) keys of ``release_key``; None: every release.
    # Outside them the file is not even parsed for it; inside, the shape check still decides.
    RELEASES: ClassVar[tuple[tuple[int, ...], tuple[int, ...]] | None] = None
    # True where the transform edits a file that forks edit on purpose (the losses): an in-place ``adopt``
    # patches the tree's own copy instead of replacing it with the release's, and a target changed by hand is
    # left as it is (the transform says NOT_NEEDED) instead of stopping the apply.
    KEEPS_EDITS: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.outcome: Outcome | None = None
        self.classes: list[str] = []
        self.functions: list[str] = []
        self.scope: tuple[str, ...] = self.SCOPE  # a transform may narrow it once it has looked (see methods())

    # Context tracking shared by the transforms that target ``Class.method``, and the scope.
    def _in_scope(self, cls: str | None, func: str | None) -> bool:
        for entry in self.scope:
            owner, dot, name = entry.partition(".")
            if cls is None:
                if not dot and entry == func:
                    return True
            elif owner in (cls, "*") and (func is None or (dot and name in (func, "*"))):
                return True
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.classes.append(node.name.value)
        return bool(self.functions) or self._in_scope(node.name.value, None)

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.BaseStatement:
        self.classes.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        inside = bool(self.functions)  # a nested function: its enclosing one was in scope
        self.functions.append(node.name.value)
        return inside or self._in_scope(self.classes[-1] if self.classes else None, node.name.value)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return self.STATEMENTS and bool(self.functions)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        self.functions.pop()
        return updated

    def in_method(self, cls: str, func: str) -> bool:
        return bool(self.classes) and self.classes[-1] == cls and bool(self.functions) and self.functions[-1] == func

    def run(self, module: cst.Module) -> tuple[cst.Module, Outcome]:
        """The module (rewritten where PATCHED, the one given where a look before the walk decides or the
        release does not need the transform) and the outcome."""
        early = self.outcome_before_walk(module)
        if early is not None:
            return module, early
        new = module.visit(self)
        if self.not_needed():
            return module, Outcome.NOT_NEEDED
        self.check_found()
        if self.outcome is None:  # check_found settles or raises; this keeps the type honest
            raise TargetMissing(self.LOOKED_FOR)
        return new, self.outcome

    # The hooks ``run`` consults: a transform overrides the ones it needs, never ``run`` itself.
    def outcome_before_walk(self, module: cst.Module) -> Outcome | None:
        """A look at the module's statements before the walk: an outcome that needs no walk (the release does
        not need the transform, or it is already applied), or None to walk. It may narrow ``self.scope``."""
        return None

    def not_needed(self) -> bool:
        """After the walk: whether this release already behaves correctly, so the file is left alone."""
        return False

    def check_found(self) -> None:
        """After the walk: raise :class:`TargetMissing` unless every part of the target was found (by default,
        any part: the walk settled an outcome)."""
        if self.outcome is None:
            raise TargetMissing(self.LOOKED_FOR)

    def settle(self, outcome: Outcome) -> None:
        """Record an outcome; a file with the target twice must agree on it."""
        if self.outcome is not None and self.outcome != outcome:
            raise TargetMissing(f"{self.LOOKED_FOR} (found it both patched and unpatched: the file looks hand-edited)")
        self.outcome = outcome


def statements(body: Sequence[cst.BaseStatement]) -> Iterator[cst.BaseStatement]:
    """Every statement of a block and of the blocks nested in it, without entering expressions or
    nested definitions: a cheap look at a function's shape before (or instead of) a libcst walk."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            continue
        blocks = [getattr(stmt, "body", None), getattr(stmt, "orelse", None), getattr(stmt, "finalbody", None)]
        blocks += [h.body for h in getattr(stmt, "handlers", ())]
        for block in blocks:
            if isinstance(block, (cst.Else, cst.Finally, cst.If)):
                yield from statements([block] if isinstance(block, cst.If) else block_of(block))
            elif isinstance(block, cst.IndentedBlock):
                yield from statements(block.body)


def methods(module: cst.Module) -> Iterator[tuple[str | None, cst.FunctionDef]]:
    """(class name or None, function) for the module's functions and its classes' methods."""
    for node in module.body:
        if isinstance(node, cst.FunctionDef):
            yield None, node
        elif isinstance(node, cst.ClassDef):
            for item in block_of(node):
                if isinstance(item, cst.FunctionDef):
                    yield node.name.value, item


def statement(code: str) -> cst.BaseStatement:
    """Parse one statement written with four-space indentation; libcst re-indents it in place."""
    return cst.parse_statement(code)


def simple_statement(code: str) -> cst.SimpleStatementLine:
    """``statement`` for a one-line statement."""
    return ensure_type(cst.parse_statement(code), cst.SimpleStatementLine)


_CONFIG = cst.PartialParserConfig()  # parse_template_statement's own default


def compound_statement(code: str, **parts: cst.BaseStatement | cst.BaseSuite) -> cst.BaseCompoundStatement:
    """A compound statement (``if``, ``try``) from a template whose ``{name}`` placeholders, each on a line of its
    own, ``parts`` fill: a statement of the file, or a whole block (``libcst.helpers.parse_template_statement``)."""
    stmt = parse_template_statement(code, _CONFIG, **parts)
    if not isinstance(stmt, cst.BaseCompoundStatement):
        raise TypeError(f"not a compound statement: {code!r}")
    return stmt


def expression(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def is_simple(stmt: cst.CSTNode, matcher: m.BaseSmallStatement) -> bool:
    """True when ``stmt`` is a one-statement line whose statement matches ``matcher``."""
    return m.matches(stmt, m.SimpleStatementLine(body=[matcher]))


def block_of(node: cst.CSTNode) -> Sequence[cst.BaseStatement]:
    body = getattr(node, "body", None)
    if isinstance(body, cst.IndentedBlock):
        return body.body
    return ()


_Compound = TypeVar("_Compound", cst.If, cst.For, cst.FunctionDef)


def with_block(node: _Compound, stmts: Sequence[cst.BaseStatement]) -> _Compound:
    """``node`` with the statements of its indented block replaced."""
    return node.with_changes(body=node.body.with_changes(body=list(stmts)))


def trailing_comment(text: str) -> cst.TrailingWhitespace:
    return cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(f"# {text}"))
