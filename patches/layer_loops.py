"""Blog step 4.7: every layer loop keeps each output of a list-returning backbone."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import MARK, Outcome, TargetMissing, Transform, block_of, compound_statement, is_simple, methods, statements

# ``for m in self.model:`` and ``for m in self.model[:-1]:``
_SELF_MODEL = m.Attribute(value=m.Name("self"), attr=m.Name("model"))
_LOOP = m.For(target=m.Name("m"), iter=_SELF_MODEL | m.Subscript(value=_SELF_MODEL))
# ``y.append(x if m.i in self.save else None)``
_SAVE_OUTPUT = m.Expr(
    m.Call(
        func=m.Attribute(value=m.Name("y"), attr=m.Name("append")),
        args=[m.Arg(m.IfExp(body=m.Name("x"), orelse=m.Name("None")))],
    )
)
_OUR_TEST = m.Call(func=m.Name("getattr"), args=[m.Arg(m.Name("m")), m.Arg(m.SimpleString()), m.ZeroOrMore()])

# ``{line}``: the loop's own statement, spliced in by ``libcst.helpers.parse_template_statement``
KEEP_OUTPUTS = f"""\
if getattr(m, "backbone", False):  # {MARK}: keep each output of a list-returning backbone (blog step 4.7)
    x = rtdetr_patch_outputs(x, y, self.save)
else:
    {{line}}
"""

# The loops the blog's yaml needs on every release: building, training and validating RT-DETR.
REQUIRED = (("BaseModel", "_predict_once"), ("RTDETRDetectionModel", "predict"))


class LayerLoops(Transform):
    """Keep every output of a backbone in each layer loop over ``self.model`` (blog step 4.7).

    The blog rewrites only ``BaseModel._predict_once``; ``RTDETRDetectionModel.predict`` has its
    own loop (used for RT-DETR training, validation and eval), and 8.3+ adds the World and YOLOE
    loops. In each, the statement ``y.append(x if m.i in self.save else None)`` that follows the
    layer call becomes a branch: a module marked ``backbone`` hands its list to
    ``rtdetr_patch_outputs``, which pads it like ``parse_model`` did, appends one entry per index
    to ``y`` and returns the last map as ``x``. The call itself, ``profile``, ``visualize`` and
    ``embed`` handling around it are untouched, so they see a tensor as before.
    """

    NAME = "layer-loops"
    FILE = "nn/tasks.py"
    BLOG_STEP = "4.7"
    LOOKED_FOR = "`y.append(x if m.i in self.save else None)` in the `for m in self.model` loops of " + " and ".join(
        f"{c}.{f}" for c, f in REQUIRED
    )
    SCOPE = ("*.*",)
    STATEMENTS = False

    def __init__(self) -> None:
        super().__init__()
        self.patched: list[tuple[str, str]] = []
        self.applied: list[tuple[str, str]] = []

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        if not m.matches(updated, _LOOP) or not self.classes or not self.functions:
            return updated
        where = (self.classes[-1], self.functions[-1])
        stmts = list(block_of(updated))
        for index, stmt in enumerate(stmts):
            if (
                isinstance(stmt, cst.If)
                and m.matches(stmt.test, _OUR_TEST)
                and isinstance(stmt.orelse, cst.Else)
                and any(is_simple(s, _SAVE_OUTPUT) for s in block_of(stmt.orelse))
            ):
                self.applied.append(where)
                return updated
            if isinstance(stmt, cst.SimpleStatementLine) and is_simple(stmt, _SAVE_OUTPUT):
                branch = compound_statement(KEEP_OUTPUTS, line=stmt.with_changes(leading_lines=[]))
                stmts[index] = branch.with_changes(leading_lines=stmt.leading_lines)
                self.patched.append(where)
                return updated.with_changes(body=updated.body.with_changes(body=stmts))
        return updated

    def outcome_before_walk(self, module: cst.Module) -> Outcome | None:
        """Walk only the methods that hold such a loop (found by a look at their statements)."""
        self.scope = tuple(
            f"{cls}.{func.name.value}"
            for cls, func in methods(module)
            if cls is not None
            and any(isinstance(s, cst.For) and m.matches(s, _LOOP) for s in statements(block_of(func)))
        )
        return None

    def check_found(self) -> None:
        """Every loop of ``REQUIRED``, and all of them patched or none: the outcome is the loops' own."""
        found = set(self.patched) | set(self.applied)
        missing = [f"{c}.{f}" for c, f in REQUIRED if (c, f) not in found]
        if missing:
            raise TargetMissing(f"{self.LOOKED_FOR} (not found in {', '.join(missing)})")
        if self.patched and self.applied:
            raise TargetMissing(
                f"{self.LOOKED_FOR} (some loops are patched and others not: "
                f"{', '.join(c + '.' + f for c, f in self.applied)} already patched; "
                "the file looks hand-edited)"
            )
        self.outcome = Outcome.PATCHED if self.patched else Outcome.APPLIED
