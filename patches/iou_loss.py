"""The model yaml's ``iou_loss`` choice: checked when the model is built, and used by the box-regression term."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type

from .base import MARK, Outcome, TargetMissing, Transform, block_of, expression, statement, trailing_comment

CHECK = "rtdetr_patch_iou_loss"
WRAP = "rtdetr_patch_criterion"
STATE = "rtdetr_patch_iou_state"
ATTR = "rtdetr_patch_iou"
_OURS = m.Call(func=m.Attribute(value=m.Name("self"), attr=m.Name(ATTR)))


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


class IouLossChoice(Transform):
    """Read ``iou_loss`` / ``iou_loss_args`` from the model yaml: refuse a bad choice when the model is built,
    and attach a good one to the criterion.

    Not a blog step: the series' loss column (the "IoU loss" posts that swap RT-DETR's GIoU and YOLO's CIoU
    for EIoU, SIoU, Wise-IoU, MPDIoU, Shape-IoU, Inner-/Focaler-IoU, NWD ...), chosen per model in its yaml so
    that the choice travels with ``model.yaml`` into a checkpoint. ``parse_model`` gains a first statement,
    ``rtdetr_patch_iou_loss(d)``, which checks the yaml's keys (unknown names and parameters are refused there,
    naming the key and the accepted values) and does nothing for a yaml without them. Every
    ``init_criterion`` returns its criterion through ``rtdetr_patch_criterion(self, ...)``, which attaches the
    chosen variant to the criterion's box term (RT-DETR's DETRLoss, YOLO's BboxLoss) and returns the very
    same object untouched when the yaml chooses nothing. The loss files read the attachment
    (``iou-loss-yolo``, ``iou-loss-detr``).
    """

    NAME = "iou-loss-choice"
    FILE = "nn/tasks.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "`def parse_model(d, ...)` and the `return ...` of each `init_criterion`"
    SCOPE = ("*.init_criterion",)  # parse_model is read at its leave_FunctionDef, without a walk into it

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        if self.functions != ["init_criterion"] or not self.classes or updated.value is None:
            return updated
        self.seen.add("criterion")
        if m.matches(updated.value, m.Call(func=m.Name(WRAP))):
            self.settle(Outcome.APPLIED)
            return updated
        self.settle(Outcome.PATCHED)
        return updated.with_changes(value=expression(f"{WRAP}(self, {_code(updated.value)})"))

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        if self.functions == ["parse_model"] and not self.classes and updated.params.params:
            updated = self._check_first(updated)
        return super().leave_FunctionDef(original, updated)

    def _check_first(self, func: cst.FunctionDef) -> cst.FunctionDef:
        self.seen.add("parse_model")
        body = list(block_of(func))
        ours = m.SimpleStatementLine(body=[m.Expr(m.Call(func=m.Name(CHECK)))])
        if any(m.matches(s, ours) for s in body):
            self.settle(Outcome.APPLIED)
            return func
        self.settle(Outcome.PATCHED)
        cfg = func.params.params[0].name.value
        line = statement(f"{CHECK}({cfg})").with_changes(
            trailing_whitespace=trailing_comment(f"{MARK}: the yaml's iou_loss is checked when the model is built")
        )
        docstring = body and m.matches(
            body[0], m.SimpleStatementLine(body=[m.Expr(m.SimpleString() | m.ConcatenatedString())])
        )
        at = 1 if docstring else 0
        return func.with_changes(body=func.body.with_changes(body=body[:at] + [line] + body[at:]))

    def check_found(self) -> None:
        """Both parts: ``parse_model``'s check and at least one ``init_criterion``."""
        if self.seen != {"parse_model", "criterion"}:
            raise TargetMissing(self.LOOKED_FOR)
        super().check_found()


class IouLossState(Transform):
    """Give the model a place for the running mean of Wise-IoU v2/v3, so that the checkpoint saves it.

    Not a blog step: the series' loss column. Wise-IoU's v2 and v3 (Tong et al., 2023) scale each box's loss
    by its IoU loss over a running mean of it, a state of training. The trainer builds the criterion lazily,
    after it made the EMA copy of the model, and saves only the model (the EMA copy): a mean held by the
    loss is lost at every checkpoint and starts again at 1 on resume. ``parse_model``'s
    ``return nn.Sequential(*layers), sorted(save)`` hands its layers through ``rtdetr_patch_iou_state(d, ...)``,
    which registers a buffer for the means on them when the yaml chooses a Wise-IoU v2/v3 (under an inner- or
    focaler- modifier too), and returns them untouched otherwise: a model without that choice has the very
    state_dict of Ultralytics' own. ``rtdetr_patch_criterion`` then keeps the loss's mean in that buffer.
    """

    NAME = "iou-loss-state"
    FILE = "nn/tasks.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "`return nn.Sequential(*layers), sorted(save)` at the end of `def parse_model(d, ...)`"
    SCOPE = ("parse_model",)
    STATEMENTS = False  # the return is matched as a whole line

    def __init__(self) -> None:
        super().__init__()
        self.cfg = ""

    def on_visit(self, node: cst.CSTNode) -> bool:
        """The return is a statement of parse_model's own body: its loops and branches are not walked."""
        if isinstance(node, cst.BaseCompoundStatement) and not isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return False
        return super().on_visit(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if not self.functions and not self.classes and node.name.value == "parse_model" and node.params.params:
            self.cfg = node.params.params[0].name.value
        return super().visit_FunctionDef(node)

    def leave_SimpleStatementLine(self, original, updated):
        if self.functions != ["parse_model"] or self.classes or not self.cfg:
            return updated
        pair = m.Return(value=m.Tuple(elements=[m.Element(m.Call()), m.Element()]))
        if not m.matches(updated, m.SimpleStatementLine(body=[pair])):
            return updated
        ret = ensure_type(updated.body[0], cst.Return)
        first = ensure_type(ensure_type(ret.value, cst.Tuple).elements[0].value, cst.Call)
        if m.matches(first, m.Call(func=m.Name(STATE))):
            self.settle(Outcome.APPLIED)
            return updated
        if not m.matches(first, m.Call(func=m.Attribute(attr=m.Name("Sequential")))):
            return updated
        self.settle(Outcome.PATCHED)
        new = updated.deep_replace(first, expression(f"{STATE}({self.cfg}, {_code(first)})"))
        return new.with_changes(
            trailing_whitespace=trailing_comment(f"{MARK}: Wise-IoU's running mean, saved with the model")
        )


class _BoxTerm(Transform):
    """Shared: route one ``bbox_iou(...)`` call of a loss through the criterion's attached choice."""

    FLAG = ""  # the keyword the release's call passes (CIoU, GIoU)
    EXTRA = ""  # what else the site hands the choice
    KEEPS_EDITS = True  # the series' forks edit exactly this term by hand: theirs is left as it is

    def __init__(self) -> None:
        super().__init__()
        self.method = False  # the scope's method is in the file

    def leave_FunctionDef(self, original, updated):
        if len(self.functions) == 1 and self.classes and self._in_scope(self.classes[-1], self.functions[-1]):
            self.method = True
        return super().leave_FunctionDef(original, updated)

    def leave_SimpleStatementLine(self, original, updated):
        if len(self.functions) != 1 or not self.classes or not self._in_scope(self.classes[-1], self.functions[-1]):
            return updated
        if m.findall(updated, _OURS):
            self.settle(Outcome.APPLIED)
            return updated
        calls = m.findall(
            updated,
            m.Call(
                func=m.Name("bbox_iou"),
                args=[m.ZeroOrMore(), m.Arg(keyword=m.Name(self.FLAG), value=m.Name("True")), m.ZeroOrMore()],
            ),
        )
        if len(calls) != 1 or not self.fits(updated):
            return updated
        call = ensure_type(calls[0], cst.Call)
        positional = [a for a in call.args if a.keyword is None]
        xywh = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "xywh"), None)
        if len(positional) != 2 or xywh is None:
            return updated
        self.settle(Outcome.PATCHED)
        pred, target = (_code(a.value) for a in positional)
        routed = expression(
            f'({_code(call)} if getattr(self, "{ATTR}", None) is None else self.{ATTR}({pred}, {target}, '
            f"xywh={_code(xywh)}, release={_code(call.func)}{self.EXTRA}))"
        )
        new = updated.deep_replace(call, routed)
        return new.with_changes(trailing_whitespace=trailing_comment(f"{MARK}: the model yaml's iou_loss, if any"))

    def fits(self, line: cst.SimpleStatementLine) -> bool:
        return True

    def not_needed(self) -> bool:
        """The method is there, its box term edited by hand: left as it is."""
        return self.outcome is None and self.method


class YoloBoxIou(_BoxTerm):
    """YOLO's box term, ``iou = bbox_iou(pred, target, xywh=False, CIoU=True)`` in ``BboxLoss.forward``,
    uses the model yaml's ``iou_loss`` when ``init_criterion`` attached one (``self.rtdetr_patch_iou``), and
    the release's own call otherwise (the very same expression: stock training is unchanged bit for bit).
    The choice also gets the anchor points and the foreground mask, from which it knows each box's feature
    level (MPDIoU's image size and NWD's pixel scale). Not a blog step: the series' loss column. A box term
    already edited by hand (a fork's own loss) is left as it is ("not needed"); a yaml that then chooses
    ``iou_loss`` is refused when the criterion is built, naming the file.
    """

    NAME = "iou-loss-yolo"
    FILE = "utils/loss.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "`iou = bbox_iou(..., xywh=False, CIoU=True)` in BboxLoss.forward"
    SCOPE = ("BboxLoss.forward",)
    FLAG = "CIoU"
    EXTRA = ", anchors=anchor_points, fg=fg_mask"

    def fits(self, line):
        return m.matches(line, m.SimpleStatementLine(body=[m.Assign(targets=[m.AssignTarget(m.Name("iou"))])]))


class DetrBoxIou(_BoxTerm):
    """RT-DETR's box term, ``1.0 - bbox_iou(pred, gt, xywh=True, GIoU=True)`` in ``DETRLoss._get_loss_bbox``,
    uses the model yaml's ``iou_loss`` when ``init_criterion`` attached one (``self.rtdetr_patch_iou``), and
    the release's own call otherwise. The boxes are normalised (``size=1.0``). The Hungarian matcher and the
    IoU-aware classification target keep the release's ``bbox_iou``. Not a blog step: the series' loss column.
    A box term edited by hand is left as it is, as in ``iou-loss-yolo``.
    """

    NAME = "iou-loss-detr"
    FILE = "models/utils/loss.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "`loss[...] = 1.0 - bbox_iou(..., xywh=True, GIoU=True)` in DETRLoss._get_loss_bbox"
    SCOPE = ("DETRLoss._get_loss_bbox",)
    FLAG = "GIoU"
    EXTRA = ", size=1.0"
