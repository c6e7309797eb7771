"""The series' head posts: a head registered with the rule ``head`` counts as a detection head in ``tasks.py``."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import Outcome, TargetMissing, Transform, block_of, expression, statement

HELPER = "rtdetr_patch_is_head"
_OURS = m.Call(func=m.Name(HELPER))
# (class or None, the function path) of each place, and how it reads in a message
SITES = {
    ("BaseModel", ("_apply",)): "BaseModel._apply",
    ("DetectionModel", ("__init__",)): "DetectionModel.__init__",
    (None, ("guess_model_task",)): "guess_model_task",
    (None, ("guess_model_task", "cfg2task")): "guess_model_task.cfg2task",
}
CFG2TASK = f'if {HELPER}(m):\n    return "detect"\n'


def _names_detect(node: cst.BaseExpression) -> bool:
    """``Detect`` or a tuple holding ``Detect``: the second argument of the release's head checks."""
    if isinstance(node, cst.Name):
        return node.value == "Detect"
    return isinstance(node, cst.Tuple) and any(m.matches(e.value, m.Name("Detect")) for e in node.elements)


def _is_detect_check(test: cst.BaseExpression) -> bool:
    return (
        isinstance(test, cst.Call)
        and m.matches(test, m.Call(func=m.Name("isinstance")))
        and len(test.args) == 2
        and m.matches(test.args[0].value, m.Name("m"))
        and _names_detect(test.args[1].value)
    )


class RegisteredHeads(Transform):
    """Let a head registered with ``--module FILE.py:NAME=head`` pass the ``isinstance(m, Detect)`` checks.

    The series' heads (Detect_DyHead, Detect_AFPN, Detect_LSCD, ...) are often plain ``nn.Module``
    classes. ``tasks.py`` only learns the head's strides in ``DetectionModel.__init__``, moves its
    ``stride``/``anchors`` with the model in ``BaseModel._apply`` (``.to(device)``, ``.half()``) and
    tells the task in ``guess_model_task`` for instances of ``Detect``, so each repository adds every
    new head to those three checks by hand. Here each check becomes ``isinstance(m, Detect) or
    rtdetr_patch_is_head(m)`` (and the yaml branch of ``guess_model_task``, ``cfg2task``, answers
    "detect" for a registered head's name last): the helper asks the registry of the added package,
    which holds no stock class, so stock models take the same branches as before.
    """

    NAME = "registered-heads"
    FILE = "nn/tasks.py"
    BLOG_STEP = "-"
    LOOKED_FOR = (
        "`if isinstance(m, Detect)` in BaseModel._apply, DetectionModel.__init__ and guess_model_task, "
        "and guess_model_task's cfg2task"
    )
    SCOPE = ("BaseModel._apply", "DetectionModel.__init__", "guess_model_task")
    STATEMENTS = False

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def _site(self) -> str | None:
        return SITES.get((self.classes[-1] if self.classes else None, tuple(self.functions)))

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If:
        site = self._site()
        if site is None or site.endswith("cfg2task"):
            return updated
        test = updated.test
        if isinstance(test, cst.BooleanOperation) and m.matches(test.right, _OURS) and _is_detect_check(test.left):
            self.seen.add(site)
            self.settle(Outcome.APPLIED)
        elif _is_detect_check(test):
            self.seen.add(site)
            self.settle(Outcome.PATCHED)
            return updated.with_changes(
                test=cst.BooleanOperation(left=test, operator=cst.Or(), right=expression(f"{HELPER}(m)"))
            )
        return updated

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        site = self._site()
        super().leave_FunctionDef(original, updated)
        if site is None or not site.endswith("cfg2task"):
            return updated
        body = list(block_of(updated))
        code = [s for s in body if not m.matches(s, m.SimpleStatementLine(body=[m.Expr(m.SimpleString())]))]
        if not code or not m.matches(
            code[0], m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(target=m.Name("m"))])])
        ):
            raise TargetMissing(f"{self.LOOKED_FOR} (cfg2task does not start with `m = ...`)")
        self.seen.add(site)
        if isinstance(body[-1], cst.If) and m.matches(body[-1].test, _OURS):
            self.settle(Outcome.APPLIED)
            return updated
        self.settle(Outcome.PATCHED)
        return updated.with_changes(body=updated.body.with_changes(body=body + [statement(CFG2TASK)]))

    def check_found(self) -> None:
        """Every site of ``SITES``."""
        super().check_found()
        missing = [s for s in SITES.values() if s not in self.seen]
        if missing:
            raise TargetMissing(f"{self.LOOKED_FOR} (not found in: {', '.join(missing)})")
