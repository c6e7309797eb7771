"""Blog steps 4.4-4.6: ``parse_model`` builds list-returning backbones."""

from __future__ import annotations

from typing import Sequence

import libcst as cst
import libcst.matchers as m

from .base import MARK, Outcome, TargetMissing, Transform, block_of, expression, is_simple, statement

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
GUARD = f"if not {FLAG}:  # {MARK}: the backbone was built above (blog step 4.6)\n    pass\n"
CH_UPDATE = f"""\
if {FLAG}:  # {MARK}: each backbone output takes one index (blog step 4.6)
    ch.extend(c2)
    c2 = c2[-1]
else:
    pass
"""

_M_ASSIGN = m.Assign(targets=[m.AssignTarget(target=m.Name("m_"))])
_C2_FROM_CH = m.Assign(targets=[m.AssignTarget(target=m.Name("c2"))],
                       value=m.Subscript(value=m.Name("ch"), slice=[m.SubscriptElement(m.Index(m.Name("f")))]))
_ATTACH = m.Assign(targets=[m.AssignTarget(target=m.Tuple(
    elements=[m.Element(m.Attribute(value=m.Name("m_"), attr=m.Name("i"))), m.ZeroOrMore()]))])
_SAVE = m.Expr(m.Call(func=m.Attribute(value=m.Name("save"), attr=m.Name("extend"))))
_CH_APPEND = m.Expr(m.Call(func=m.Attribute(value=m.Name("ch"), attr=m.Name("append")), args=[m.Arg(m.Name("c2"))]))
_SHIFT_INIT = m.Assign(targets=[m.AssignTarget(target=m.Name(SHIFT))])
_FLAG_SET = m.Assign(targets=[m.AssignTarget(target=m.Name(FLAG))],
                     value=m.Comparison(left=m.Name("m"), comparisons=[
                         m.ComparisonTarget(operator=m.In(), comparator=m.Name(REGISTRY))]))
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


def _has_our_branch(chain: cst.If) -> bool:
    node: cst.BaseSuite | cst.If | None = chain
    while isinstance(node, cst.If):
        if m.matches(node.test, _OUR_TEST):
            return True
        node = node.orelse
    return False


def insert_before_else(chain: cst.If, branch: cst.If) -> cst.If:
    """``branch`` as an ``elif`` in front of the chain's final ``else``."""
    if not isinstance(chain.orelse, cst.If):
        return chain.with_changes(orelse=branch.with_changes(orelse=chain.orelse))
    return chain.with_changes(orelse=insert_before_else(chain.orelse, branch))


class _Rewrite(cst.CSTTransformer):
    """Replace expressions matching ``pattern`` inside one statement."""

    def __init__(self, pattern: m.BaseMatcherNode, replacement: str):
        super().__init__()
        self.pattern, self.replacement, self.count = pattern, replacement, 0

    def on_leave(self, original, updated):
        if isinstance(updated, cst.BaseExpression) and m.matches(updated, self.pattern):
            self.count += 1
            return expression(self.replacement)
        return updated


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
    small ones at statement level, so the rest of ``parse_model`` (its module sets, the
    TorchVision/Index branches, 8.4's legacy SPPF block) stays untouched.
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
        body, at = found
        loop_body = list(block_of(body[at]))
        def find(pred) -> int | None:
            return next((i for i, s in enumerate(loop_body) if pred(s)), None)

        chain = find(is_branch_chain)
        attach = find(lambda s: is_simple(s, _ATTACH))
        save = find(lambda s: is_simple(s, _SAVE))
        guarded = find(lambda s: isinstance(s, cst.If) and m.matches(s.test, _GUARD_TEST)
                       and any(is_simple(x, _M_ASSIGN) for x in block_of(s)))
        m_assign = find(lambda s: is_simple(s, _M_ASSIGN))
        ch_if = find(lambda s: isinstance(s, cst.If) and m.matches(s.test, _CH_TEST))
        ch_append = find(lambda s: is_simple(s, _CH_APPEND))
        for name, index in (("the module-type if/elif chain ending in `else: c2 = ch[f]`", chain),
                            ("`m_.i, m_.f, m_.type = ...`", attach), ("`save.extend(...)`", save),
                            ("`m_ = ...` (module creation)", guarded if m_assign is None else m_assign),
                            ("`ch.append(c2)`", ch_if if ch_append is None else ch_append)):
            if index is None:
                raise TargetMissing(f"{name} in the layer loop of parse_model")

        def branch():
            loop_body[chain] = insert_before_else(loop_body[chain], statement(BRANCH))

        def guard():
            line = loop_body[m_assign]
            wrapper = statement(GUARD)
            loop_body[m_assign] = wrapper.with_changes(body=wrapper.body.with_changes(body=[line.with_changes(leading_lines=[])]),
                                                       leading_lines=line.leading_lines)

        def shift_save():
            rewriter = _Rewrite(_SAVE_MOD, f"x % (i + {SHIFT})")
            new = loop_body[save].visit(rewriter)
            if rewriter.count != 1:
                raise TargetMissing("`x % i` in `save.extend(...)` in the layer loop of parse_model")
            loop_body[save] = new

        def ch_update():
            line = loop_body[ch_append]
            wrapper = statement(CH_UPDATE)
            loop_body[ch_append] = wrapper.with_changes(
                orelse=wrapper.orelse.with_changes(body=wrapper.orelse.body.with_changes(body=[line.with_changes(leading_lines=[])])),
                leading_lines=line.leading_lines,
            )

        def shift_index():
            line = loop_body[attach]
            assign = line.body[0]
            first = assign.value.elements[0] if isinstance(assign.value, cst.Tuple) else None
            if first is None or not m.matches(first.value, m.Name("i")):
                raise TargetMissing("`m_.i, m_.f, m_.type = i, f, t` in the layer loop of parse_model")
            elements = [first.with_changes(value=expression(f"i + {SHIFT}")), *assign.value.elements[1:]]
            loop_body[attach] = line.with_changes(
                body=[assign.with_changes(value=assign.value.with_changes(elements=elements))])

        def attach_done() -> bool:
            return bool(m.findall(loop_body[attach], _SHIFTED_I))

        def save_done() -> bool:
            return bool(m.findall(loop_body[save], _SHIFTED_I))

        loop_edits = [
            ("branch", lambda: _has_our_branch(loop_body[chain]), branch),
            ("guard", lambda: guarded is not None and m_assign is None, guard),
            ("attach", attach_done, shift_index),
            ("save", save_done, shift_save),
            ("ch", lambda: ch_if is not None and ch_append is None, ch_update),
        ]
        done = (["shift"] if any(is_simple(s, _SHIFT_INIT) for s in body[:at]) else []) \
            + (["flag"] if any(is_simple(s, _FLAG_SET) for s in loop_body) else []) \
            + [name for name, is_done, _ in loop_edits if is_done()]
        if len(done) == len(loop_edits) + 2:
            self.settle(Outcome.APPLIED)
            return updated
        if done:
            raise TargetMissing(f"parse_model in its pristine shape (it is partly patched: {', '.join(done)} "
                                f"already present, the rest missing; the file looks hand-edited)")
        for _, _, apply in loop_edits:  # each edit replaces one statement in place: indices stay valid
            apply()
        flag = statement(FLAG_SET)  # then one insertion, right before the module-type chain
        loop_body.insert(chain, flag.with_changes(leading_lines=loop_body[chain].leading_lines))
        loop_body[chain + 1] = loop_body[chain + 1].with_changes(leading_lines=[])
        body[at] = body[at].with_changes(body=body[at].body.with_changes(body=loop_body))
        body.insert(at, statement(SHIFT_INIT))
        self.settle(Outcome.PATCHED)
        return updated.with_changes(body=updated.body.with_changes(body=body))


def layer_loop(func: cst.FunctionDef) -> tuple[list[cst.BaseStatement], int] | None:
    """``parse_model``'s statements and the index of its one layer loop (None unless there is exactly one)."""
    body = list(func.body.body)
    loops = [i for i, s in enumerate(body) if isinstance(s, cst.For) and is_layer_loop(s)]
    return (body, loops[0]) if len(loops) == 1 else None


def is_layer_loop(loop: cst.For) -> bool:
    """The ``for`` over the yaml's rows: it assigns ``m_`` (directly, or under our guard)."""
    stmts: Sequence[cst.BaseStatement] = block_of(loop)
    direct = any(is_simple(s, _M_ASSIGN) for s in stmts)
    guarded = any(isinstance(s, cst.If) and m.matches(s.test, _GUARD_TEST)
                  and any(is_simple(x, _M_ASSIGN) for x in block_of(s)) for s in stmts)
    return direct or guarded
