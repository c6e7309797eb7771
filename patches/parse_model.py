"""Blog steps 4.4-4.6: ``parse_model`` builds list-returning backbones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, ClassVar

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type

from .base import (
    MARK,
    Outcome,
    TargetMissing,
    Transform,
    block_of,
    compound_statement,
    expression,
    is_simple,
    statement,
    with_block,
)

REGISTRY = "RTDETR_PATCH_BACKBONES"
SHIFT = "backbone_shift"
FLAG = "backbone_built"

SHIFT_INIT = f"{SHIFT} = 0  # {MARK}: index shift added by list-returning backbones (blog step 4.4)\n"
FLAG_SET = f"{FLAG} = m in {REGISTRY}  # {MARK}: this row builds a registered backbone (blog step 4.4)\n"
BRANCH = f"""\
if {FLAG}:  # {MARK}: a backbone that returns a list of feature maps (blog step 4.5)
    m_ = m(*args)
    m_.backbone = True
    c2 = rtdetr_patch_channels(m_)  # one channel entry per output, padded to five (blog step 4.6)
    {SHIFT} += len(c2) - 1
"""
# ``{line}``: the loop's own statement, spliced in by ``libcst.helpers.parse_template_statement``
GUARD = f"if not {FLAG}:  # {MARK}: the backbone was built above (blog step 4.6)\n    {{line}}\n"
CH_UPDATE = f"""\
if {FLAG}:  # {MARK}: each backbone output takes one index (blog step 4.6)
    ch.extend(c2)
    c2 = c2[-1]
else:
    {{line}}
"""

_M_ASSIGN = m.Assign(targets=[m.AssignTarget(target=m.Name("m_"))])
_C2_FROM_CH = m.Assign(
    targets=[m.AssignTarget(target=m.Name("c2"))],
    value=m.Subscript(value=m.Name("ch"), slice=[m.SubscriptElement(m.Index(m.Name("f")))]),
)
_ATTACH = m.Assign(
    targets=[
        m.AssignTarget(
            target=m.Tuple(elements=[m.Element(m.Attribute(value=m.Name("m_"), attr=m.Name("i"))), m.ZeroOrMore()])
        )
    ]
)
_SAVE = m.Expr(m.Call(func=m.Attribute(value=m.Name("save"), attr=m.Name("extend"))))
_CH_APPEND = m.Expr(m.Call(func=m.Attribute(value=m.Name("ch"), attr=m.Name("append")), args=[m.Arg(m.Name("c2"))]))
_SHIFT_INIT = m.Assign(targets=[m.AssignTarget(target=m.Name(SHIFT))])
_FLAG_SET = m.Assign(
    targets=[m.AssignTarget(target=m.Name(FLAG))],
    value=m.Comparison(
        left=m.Name("m"), comparisons=[m.ComparisonTarget(operator=m.In(), comparator=m.Name(REGISTRY))]
    ),
)
_OUR_TEST = m.Name(FLAG)
_GUARD_TEST = m.UnaryOperation(operator=m.Not(), expression=m.Name(FLAG))
_CH_TEST = m.Name(FLAG)
_SHIFTED_I = m.BinaryOperation(left=m.Name("i"), operator=m.Add(), right=m.Name(SHIFT))
_SAVE_MOD = m.BinaryOperation(left=m.Name("x"), operator=m.Modulo(), right=m.Name("i"))


def chain_else(node: cst.If) -> cst.Else | None:
    """The final ``else`` of an ``if/elif`` chain."""
    while isinstance(node.orelse, cst.If):
        node = node.orelse
    return node.orelse


def is_branch_chain(stmt: cst.CSTNode) -> bool:
    """The module-type chain: an ``if`` whose final ``else`` is ``c2 = ch[f]``."""
    if not isinstance(stmt, cst.If):
        return False
    tail = chain_else(stmt)
    return tail is not None and any(is_simple(s, _C2_FROM_CH) for s in block_of(tail))


def has_branch(chain: cst.If, test: m.BaseMatcherNode) -> bool:
    """Whether a branch of the ``if/elif`` chain tests ``test``."""
    node: cst.If | cst.Else | None = chain
    while isinstance(node, cst.If):
        if m.matches(node.test, test):
            return True
        node = node.orelse
    return False


def insert_before_else(chain: cst.If, branch: cst.If) -> cst.If:
    """``branch`` as an ``elif`` in front of the chain's final ``else``."""
    if not isinstance(chain.orelse, cst.If):
        return chain.with_changes(orelse=branch.with_changes(orelse=chain.orelse))
    return chain.with_changes(orelse=insert_before_else(chain.orelse, branch))


class _ShiftModulo(cst.CSTTransformer):
    """``x % i`` becomes ``x % (i + backbone_shift)`` inside one statement; ``count`` says how many there were."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def leave_BinaryOperation(
        self, original_node: cst.BinaryOperation, updated_node: cst.BinaryOperation
    ) -> cst.BaseExpression:
        if m.matches(updated_node, _SAVE_MOD):
            self.count += 1
            return expression(f"x % (i + {SHIFT})")
        return updated_node


def _is_guarded_creation(stmt: cst.BaseStatement) -> bool:
    """Our guard around ``m_ = ...``: ``if not backbone_built:``."""
    return (
        isinstance(stmt, cst.If)
        and m.matches(stmt.test, _GUARD_TEST)
        and any(is_simple(x, _M_ASSIGN) for x in block_of(stmt))
    )


@dataclass
class LayerLoop:
    """``parse_model`` around its layer loop, and where in the loop each edit's statement is (an index of
    ``stmts``; None where the statement is there in the other shape, pristine or ours)."""

    head: list[cst.BaseStatement]  # parse_model's statements before the loop
    loop: cst.For
    tail: list[cst.BaseStatement]  # and after it
    stmts: list[cst.BaseStatement]  # the loop's own statements, edited in place
    chain: int  # the module-type if/elif chain
    attach: int  # `m_.i, m_.f, m_.type = ...`
    save: int  # `save.extend(...)`
    m_assign: int | None  # `m_ = ...` (pristine)
    guarded: int | None  # `if not backbone_built: m_ = ...` (ours)
    ch_append: int | None  # `ch.append(c2)` (pristine)
    ch_if: int | None  # `if backbone_built: ... else: ch.append(c2)` (ours)

    @classmethod
    def find(cls, body: list[cst.BaseStatement], at: int) -> LayerLoop:
        """The pieces of the loop ``body[at]``; TargetMissing names the first one that is not there."""
        loop = ensure_type(body[at], cst.For)
        stmts = list(block_of(loop))

        def find(pred: Callable[[cst.BaseStatement], bool]) -> int | None:
            return next((i for i, s in enumerate(stmts) if pred(s)), None)

        guarded, m_assign = find(_is_guarded_creation), find(lambda s: is_simple(s, _M_ASSIGN))
        ch_if = find(lambda s: isinstance(s, cst.If) and m.matches(s.test, _CH_TEST))
        ch_append = find(lambda s: is_simple(s, _CH_APPEND))
        chain = _needed("the module-type if/elif chain ending in `else: c2 = ch[f]`", find(is_branch_chain))
        attach = _needed("`m_.i, m_.f, m_.type = ...`", find(lambda s: is_simple(s, _ATTACH)))
        save = _needed("`save.extend(...)`", find(lambda s: is_simple(s, _SAVE)))
        _needed("`m_ = ...` (module creation)", guarded if m_assign is None else m_assign)
        _needed("`ch.append(c2)`", ch_if if ch_append is None else ch_append)
        return cls(body[:at], loop, body[at + 1 :], stmts, chain, attach, save, m_assign, guarded, ch_append, ch_if)

    def function_body(self) -> list[cst.BaseStatement]:
        return [*self.head, with_block(self.loop, self.stmts), *self.tail]

    def line(self, index: int | None) -> tuple[int, cst.SimpleStatementLine]:
        """The pristine one-line statement at ``index`` of the loop, where an edit goes (``find`` made sure that
        one of its two shapes is there, and the edits run only on a pristine loop)."""
        index = _needed("a pristine statement", index)
        return index, ensure_type(self.stmts[index], cst.SimpleStatementLine)


def _needed(name: str, index: int | None) -> int:
    if index is None:
        raise TargetMissing(f"{name} in the layer loop of parse_model")
    return index


class LoopEdit:
    """One edit of ``parse_model``: whether it is already there, and making it."""

    NAME: ClassVar[str]  # how a message about a partly patched parse_model names it
    INSERTS: ClassVar[bool] = False  # adds a statement (so it runs after the edits that replace one in place)

    def done(self, loop: LayerLoop) -> bool:
        raise NotImplementedError

    def apply(self, loop: LayerLoop) -> None:
        raise NotImplementedError


class ShiftCounter(LoopEdit):
    """Blog step 4.4: ``backbone_shift = 0`` before the loop, the index shift that list-returning backbones add."""

    NAME = "shift"
    INSERTS = True

    def done(self, loop: LayerLoop) -> bool:
        return any(is_simple(s, _SHIFT_INIT) for s in loop.head)

    def apply(self, loop: LayerLoop) -> None:
        loop.head.append(statement(SHIFT_INIT))


class RowFlag(LoopEdit):
    """Blog step 4.4: ``backbone_built = m in RTDETR_PATCH_BACKBONES`` right before the module-type chain."""

    NAME = "flag"
    INSERTS = True

    def done(self, loop: LayerLoop) -> bool:
        return any(is_simple(s, _FLAG_SET) for s in loop.stmts)

    def apply(self, loop: LayerLoop) -> None:
        chain = ensure_type(loop.stmts[loop.chain], cst.If)
        loop.stmts.insert(loop.chain, statement(FLAG_SET).with_changes(leading_lines=chain.leading_lines))
        loop.stmts[loop.chain + 1] = chain.with_changes(leading_lines=[])


class BackboneBranch(LoopEdit):
    """Blog step 4.5: an ``elif backbone_built:`` branch builds the backbone once, marks it ``backbone = True`` and
    takes its channels (step 4.6), right before the chain's final ``else``."""

    NAME = "branch"

    def done(self, loop: LayerLoop) -> bool:
        return has_branch(ensure_type(loop.stmts[loop.chain], cst.If), _OUR_TEST)

    def apply(self, loop: LayerLoop) -> None:
        chain = ensure_type(loop.stmts[loop.chain], cst.If)
        loop.stmts[loop.chain] = insert_before_else(chain, ensure_type(statement(BRANCH), cst.If))


class GuardCreation(LoopEdit):
    """Blog step 4.6: the row's ``m_ = ...`` runs under ``if not backbone_built:`` (the branch built it)."""

    NAME = "guard"

    def done(self, loop: LayerLoop) -> bool:
        return loop.guarded is not None and loop.m_assign is None

    def apply(self, loop: LayerLoop) -> None:
        at, line = loop.line(loop.m_assign)
        guard = compound_statement(GUARD, line=line.with_changes(leading_lines=[]))
        loop.stmts[at] = guard.with_changes(leading_lines=line.leading_lines)


class ShiftIndex(LoopEdit):
    """Blog step 4.6: each later layer's index is shifted, ``m_.i, m_.f, m_.type = i + backbone_shift, f, t``."""

    NAME = "attach"

    def done(self, loop: LayerLoop) -> bool:
        return bool(m.findall(loop.stmts[loop.attach], _SHIFTED_I))

    def apply(self, loop: LayerLoop) -> None:
        _, line = loop.line(loop.attach)
        assign = ensure_type(line.body[0], cst.Assign)
        value = assign.value
        if not isinstance(value, cst.Tuple) or not m.matches(value.elements[0].value, m.Name("i")):
            raise TargetMissing("`m_.i, m_.f, m_.type = i, f, t` in the layer loop of parse_model")
        elements = [value.elements[0].with_changes(value=expression(f"i + {SHIFT}")), *value.elements[1:]]
        loop.stmts[loop.attach] = line.with_changes(
            body=[assign.with_changes(value=value.with_changes(elements=elements))]
        )


class ShiftSave(LoopEdit):
    """Blog step 4.6: the save list is shifted the same way, ``x % (i + backbone_shift)``."""

    NAME = "save"

    def done(self, loop: LayerLoop) -> bool:
        return bool(m.findall(loop.stmts[loop.save], _SHIFTED_I))

    def apply(self, loop: LayerLoop) -> None:
        rewriter = _ShiftModulo()
        new = loop.stmts[loop.save].visit(rewriter)
        if rewriter.count != 1:
            raise TargetMissing("`x % i` in `save.extend(...)` in the layer loop of parse_model")
        loop.stmts[loop.save] = ensure_type(new, cst.SimpleStatementLine)


class ExtendChannels(LoopEdit):
    """Blog step 4.6: ``ch`` is extended by each backbone output's channels, ``ch.append(c2)`` otherwise."""

    NAME = "ch"

    def done(self, loop: LayerLoop) -> bool:
        return loop.ch_if is not None and loop.ch_append is None

    def apply(self, loop: LayerLoop) -> None:
        at, line = loop.line(loop.ch_append)
        update = compound_statement(CH_UPDATE, line=line.with_changes(leading_lines=[]))
        loop.stmts[at] = update.with_changes(leading_lines=line.leading_lines)


# In the order a message about a partly patched parse_model names them.
EDITS: tuple[LoopEdit, ...] = (
    ShiftCounter(),
    RowFlag(),
    BackboneBranch(),
    GuardCreation(),
    ShiftIndex(),
    ShiftSave(),
    ExtendChannels(),
)


class ParseModelBackbones(Transform):
    """Teach ``parse_model`` to build list-returning backbones (blog steps 4.4, 4.5 and 4.6).

    Each row first records whether its module is a registered backbone, in a variable of its own:
    ``backbone_built = m in RTDETR_PATCH_BACKBONES`` (the registry of the added package, so a new
    backbone needs no new edit here). Every later edit keys on that flag and never on the type of
    ``c2``: stock modules whose ``c2`` is a list (``CBLinear`` in YOLOv9) build exactly as before.
    A backbone is built once in its own ``elif`` branch, marked ``backbone = True``, and its
    ``width_list`` (or ``channel``) becomes the channel entries of the following indices: one
    leading placeholder pads four outputs to five, so the blog's yaml finds the outputs at indices
    1-4. Every later layer's index (``m_.i``) and the save list are shifted by the same amount
    (``i + 4`` in the blog), and ``ch`` is extended by the backbone's channels. The edits are
    small ones at statement level (``EDITS``, one class each), so the rest of ``parse_model`` (its
    module sets, the TorchVision/Index branches, 8.4's legacy SPPF block) stays untouched.
    """

    NAME = "parse-model"
    FILE = "nn/tasks.py"
    BLOG_STEP = "4.4-4.6"
    LOOKED_FOR = "def parse_model(...) with its layer loop (the `for` that assigns `m_`)"
    SCOPE = ()
    STATEMENTS = False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        super().leave_FunctionDef(original, updated)
        if self.classes or self.functions or updated.name.value != "parse_model":
            return updated
        found = layer_loop(updated)
        if found is None:
            return updated
        loop = LayerLoop.find(*found)
        done = [edit.NAME for edit in EDITS if edit.done(loop)]
        if len(done) == len(EDITS):
            self.settle(Outcome.APPLIED)
            return updated
        if done:
            raise TargetMissing(
                f"parse_model in its pristine shape (it is partly patched: {', '.join(done)} "
                f"already present, the rest missing; the file looks hand-edited)"
            )
        for edit in sorted(EDITS, key=lambda e: e.INSERTS):  # each in-place edit keeps the indices valid
            edit.apply(loop)
        self.settle(Outcome.PATCHED)
        return with_block(updated, loop.function_body())


def layer_loop(func: cst.FunctionDef) -> tuple[list[cst.BaseStatement], int] | None:
    """``parse_model``'s statements and the index of its one layer loop (None unless there is exactly one)."""
    body = list(block_of(func))
    loops = [i for i, s in enumerate(body) if isinstance(s, cst.For) and is_layer_loop(s)]
    return (body, loops[0]) if len(loops) == 1 else None


def is_layer_loop(loop: cst.For) -> bool:
    """The ``for`` over the yaml's rows: it assigns ``m_`` (directly, or under our guard)."""
    stmts: Sequence[cst.BaseStatement] = block_of(loop)
    return any(is_simple(s, _M_ASSIGN) for s in stmts) or any(_is_guarded_creation(s) for s in stmts)
