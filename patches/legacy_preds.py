"""Heads written for Ultralytics 8.0-8.3 (a list of maps in training) train and predict on 8.4."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import Outcome, TargetMissing, Transform, expression

HELPER = "rtdetr_patch_preds"
HEAD = "self.model[-1]"
_OURS = m.Call(func=m.Name(HELPER))
_FORWARD = m.Call(func=m.Attribute(value=m.Name("self"), attr=m.Name("forward")), args=[m.Arg(m.Name("x"))])
_CRITERION = m.Call(
    func=m.Attribute(value=m.Name("self"), attr=m.Name("criterion")), args=[m.Arg(), m.Arg(m.Name("batch"))]
)


class LegacyHeadPreds(Transform):
    """Hand the 8.4 detection loss and stride probe a dict where a head returns the 8.0-8.3 list of maps.

    Up to 8.3 a detection head returns, in training, its list of ``[b, 4*reg_max+nc, h, w]`` maps
    (and ``(y, maps)`` in eval), and ``v8DetectionLoss`` splits them itself. From 8.4.0
    ``Detect.forward_head`` makes a dict ``{"boxes", "scores", "feats"}``, which
    ``v8DetectionLoss`` (``preds["boxes"]``) and the stride probe of ``DetectionModel.__init__``
    (``output["feats"]``) read, so every head of the series' earlier posts builds nowhere or fails its
    first training step with ``list indices must be integers or slices, not str``. Here the two
    places where a model hands its head's raw output on pass it through
    ``rtdetr_patch_preds(self.model[-1], ...)``: ``BaseModel.loss`` (training and the validator's
    loss) and the probe's ``output = self.forward(x)``. The helper splits a list of maps into the
    dict (boxes first, as the 8.0-8.3 loss split them) and returns anything else, every stock
    head's dict included, as the very same object. Where the probe reads no ``output["feats"]``
    (up to 8.3), the release reads the maps itself and the transform is not needed.
    """

    NAME = "legacy-head-preds"
    FILE = "nn/tasks.py"
    BLOG_STEP = "-"
    LOOKED_FOR = (
        "`return self.criterion(preds, batch)` in BaseModel.loss and `output = self.forward(x)` in "
        "DetectionModel.__init__'s stride probe"
    )
    RELEASES = ((8, 4, 0), (8, 9999, 9999))  # the dict contract of Detect starts at 8.4.0
    SCOPE = ("BaseModel.loss", "DetectionModel.__init__")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.reads_feats = False  # the probe's `output["feats"]`: this release's Detect returns a dict

    def _wrap(self, value: cst.BaseExpression, where: str, pristine: m.Name | m.Call) -> cst.BaseExpression:
        if m.matches(value, m.Call(func=m.Name(HELPER), args=[m.Arg(), m.Arg(pristine)])):
            self.seen.add(where)
            self.settle(Outcome.APPLIED)
        elif m.matches(value, pristine):
            self.seen.add(where)
            self.settle(Outcome.PATCHED)
            return expression(f"{HELPER}({HEAD}, {cst.Module([]).code_for_node(value)})")
        return value

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if not self.in_method("BaseModel", "loss") or not m.matches(updated, _CRITERION):
            return updated
        first, second = updated.args
        return updated.with_changes(
            args=[first.with_changes(value=self._wrap(first.value, "loss", m.Name("preds"))), second]
        )

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if self.classes[-1:] != ["DetectionModel"] or self.functions != ["__init__", "_forward"]:
            return updated
        if not m.matches(updated, m.Assign(targets=[m.AssignTarget(target=m.Name("output"))])):
            return updated
        return updated.with_changes(value=self._wrap(updated.value, "probe", _FORWARD))

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript) -> cst.BaseExpression:
        if self.functions[-1:] == ["_forward"] and m.matches(
            updated,
            m.Subscript(
                value=m.Name("output"),
                slice=[m.SubscriptElement(m.Index(m.SimpleString('"feats"') | m.SimpleString("'feats'")))],
            ),
        ):
            self.reads_feats = True
        return updated

    def not_needed(self) -> bool:
        """The stride probe reads no dict: Detect returns its maps (up to 8.3)."""
        return not self.reads_feats and "probe" not in self.seen

    def check_found(self) -> None:
        """Both places: ``BaseModel.loss`` and the stride probe."""
        if self.seen != {"loss", "probe"}:
            raise TargetMissing(self.LOOKED_FOR)
        super().check_found()
