"""Blog step 4.10 (opt-in): validation batches are not rectangular in ``DetectionTrainer``."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import Outcome, Transform

_RECT_VAL = m.Arg(
    keyword=m.Name("rect"),
    value=m.Comparison(
        left=m.Name("mode"), comparisons=[m.ComparisonTarget(operator=m.Equal(), comparator=m.SimpleString())]
    ),
)
_RECT_FALSE = m.Arg(keyword=m.Name("rect"), value=m.Name("False"))


class ValRect(Transform):
    """``DetectionTrainer.build_dataset`` passes ``rect=False`` instead of ``rect=mode == "val"`` (blog step 4.10).

    Some datasets make rectangular validation batches fail with a shape mismatch; the blog fixes
    the validation image size. Opt-in with ``--val-rect-fix``: it changes every YOLO detection
    training on the install, not only RT-DETR.
    """

    NAME = "val-rect"
    FILE = "models/yolo/detect/train.py"
    BLOG_STEP = "4.10"
    LOOKED_FOR = "the `rect=mode == 'val'` argument in DetectionTrainer.build_dataset"
    OPTION = "val_rect_fix"
    SCOPE = ("DetectionTrainer.build_dataset",)

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        if not self.in_method("DetectionTrainer", "build_dataset"):
            return updated
        if m.matches(updated, _RECT_FALSE):
            self.settle(Outcome.APPLIED)
        elif m.matches(updated, _RECT_VAL):
            self.settle(Outcome.PATCHED)
            return updated.with_changes(value=cst.Name("False"))
        return updated
