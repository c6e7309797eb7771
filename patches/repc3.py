"""``RepC3`` honours its expansion argument, so the blog's ``RepC3, [256, 0.5]`` rows (step 5.1) run."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type

from .base import MARK, Outcome, TargetMissing, Transform, trailing_comment

_CV = m.Assign(
    targets=[m.AssignTarget(target=m.Attribute(value=m.Name("self"), attr=m.Name("cv1") | m.Name("cv2")))],
    value=m.Call(func=m.Name("Conv")),
)


class RepC3Expansion(Transform):
    """Build ``RepC3.cv1``/``cv2`` with the hidden width ``c_`` instead of ``c2``.

    Up to 8.3.x, ``RepC3.__init__`` computes ``c_ = int(c2 * e)`` but builds ``cv1`` and ``cv2``
    with ``c2`` outputs, so any ``e != 1`` fails at the first forward with a channel mismatch; the
    blog's yaml uses ``e = 0.5``. Upstream fixed it the same way by 8.3.100. With ``e = 1`` (stock
    ``rtdetr-l``) ``c_ == c2``, so stock models and their checkpoints are unchanged. Detected
    structurally: where the second argument already is ``c_`` the transform is not needed.
    """

    NAME = "repc3-expansion"
    FILE = "nn/modules/block.py"
    BLOG_STEP = "5.1"  # what makes the blog's yaml (step 5.1) run where RepC3 ignores its expansion
    LOOKED_FOR = "`self.cv1 = Conv(c1, ...)` and `self.cv2 = Conv(c1, ...)` in RepC3.__init__"
    RELEASES = ((8, 0, 0), (8, 3, 99))  # fixed upstream by 8.3.100
    SCOPE = ("RepC3.__init__",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        if not self.in_method("RepC3", "__init__") or len(updated.body) != 1 or not m.matches(updated.body[0], _CV):
            return updated
        assign = ensure_type(updated.body[0], cst.Assign)
        call = ensure_type(assign.value, cst.Call)
        args = list(call.args)
        if len(args) < 2 or not isinstance(args[1].value, cst.Name):
            return updated
        self.seen.add(ensure_type(assign.targets[0].target, cst.Attribute).attr.value)
        width = args[1].value.value
        if width == "c_":
            comment = updated.trailing_whitespace.comment
            self.settle(Outcome.APPLIED if comment is not None and MARK in comment.value else Outcome.NOT_NEEDED)
        elif width == "c2":
            self.settle(Outcome.PATCHED)
            args[1] = args[1].with_changes(value=cst.Name("c_"))
            return updated.with_changes(
                body=[assign.with_changes(value=call.with_changes(args=args))],
                trailing_whitespace=trailing_comment(f"{MARK}: hidden width c_ (expansion honoured)"),
            )
        return updated

    def check_found(self) -> None:
        """Both convolutions, ``cv1`` and ``cv2``."""
        super().check_found()
        if self.seen != {"cv1", "cv2"}:
            raise TargetMissing(self.LOOKED_FOR)
