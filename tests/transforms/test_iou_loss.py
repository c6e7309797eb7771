"""Before/after cases of iou-loss-choice, iou-loss-state, iou-loss-yolo, iou-loss-detr (the model yaml's iou_loss): the transform on small sources shaped like the real code."""

from __future__ import annotations

import pytest
from helpers import assert_before_after, assert_missing, src, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.iou_loss import DetrBoxIou, IouLossChoice, IouLossState, YoloBoxIou

IOU_TASKS_BEFORE = src('''
    class DetectionModel(BaseModel):
        def init_criterion(self):
            """Initialize the loss criterion."""
            return v8DetectionLoss(self)


    class RTDETRDetectionModel(DetectionModel):
        def init_criterion(self):
            from ultralytics.models.utils.loss import RTDETRDetectionLoss

            return RTDETRDetectionLoss(nc=self.nc, use_vfl=True)


    def parse_model(d, ch, verbose=True):
        """Parse a model yaml."""
        import ast
''')
IOU_TASKS_AFTER = (
    IOU_TASKS_BEFORE.replace(
        "return v8DetectionLoss(self)", "return rtdetr_patch_criterion(self, v8DetectionLoss(self))"
    )
    .replace(
        "return RTDETRDetectionLoss(nc=self.nc, use_vfl=True)",
        "return rtdetr_patch_criterion(self, RTDETRDetectionLoss(nc=self.nc, use_vfl=True))",
    )
    .replace(
        '"""Parse a model yaml."""\n',
        '"""Parse a model yaml."""\n    rtdetr_patch_iou_loss(d)  # rtdetr-patch: the yaml\'s iou_loss is '
        "checked when the model is built\n",
    )
)
YOLO_LOSS_BEFORE = src("""
    class BboxLoss(nn.Module):
        def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask):
            weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
            iou = bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True)
            loss_iou = ((1.0 - iou) * weight).sum() / target_scores_sum


    class RotatedBboxLoss(BboxLoss):
        def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask):
            iou = probiou(pred_bboxes[fg_mask], target_bboxes[fg_mask])
""")
YOLO_LOSS_AFTER = YOLO_LOSS_BEFORE.replace(
    "iou = bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True)\n",
    "iou = (bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True) if getattr(self, "
    '"rtdetr_patch_iou", None) is None else self.rtdetr_patch_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], '
    "xywh=False, release=bbox_iou, anchors=anchor_points, fg=fg_mask))  # rtdetr-patch: the model yaml's iou_loss, "
    "if any\n",
)
STATE_TASKS_BEFORE = src('''
    def parse_model(d, ch, verbose=True):
        """Parse a model yaml."""
        layers, save = [], []

        def inner():
            return nn.Sequential(), []

        return torch.nn.Sequential(*layers), sorted(save)


    class Model:
        def build(self):
            return nn.Sequential(*self.layers), []
''')
STATE_TASKS_AFTER = STATE_TASKS_BEFORE.replace(
    "    return torch.nn.Sequential(*layers), sorted(save)\n",
    "    return rtdetr_patch_iou_state(d, torch.nn.Sequential(*layers)), sorted(save)  # rtdetr-patch: Wise-IoU's "
    "running mean, saved with the model\n",
)
DETR_LOSS_BEFORE = src("""
    class DETRLoss(nn.Module):
        def _get_loss_bbox(self, pred_bboxes, gt_bboxes, postfix=""):
            loss = {}
            loss[name_giou] = 1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)
            return loss

        def _get_loss_class(self, scores, gt_bboxes, pred_bboxes):
            gt_scores = bbox_iou(pred_bboxes.detach(), gt_bboxes, xywh=True, GIoU=True)
""")
DETR_LOSS_AFTER = DETR_LOSS_BEFORE.replace(
    "loss[name_giou] = 1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)\n",
    "loss[name_giou] = 1.0 - (bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True) if getattr(self, "
    '"rtdetr_patch_iou", None) is None else self.rtdetr_patch_iou(pred_bboxes, gt_bboxes, xywh=True, '
    "release=bbox_iou, size=1.0))  # rtdetr-patch: the model yaml's iou_loss, if any\n",
)


@pytest.mark.parametrize(
    ("cls", "before", "after"),
    [
        (IouLossChoice, IOU_TASKS_BEFORE, IOU_TASKS_AFTER),
        (IouLossState, STATE_TASKS_BEFORE, STATE_TASKS_AFTER),  # a nested function's and a method's return stay
        (YoloBoxIou, YOLO_LOSS_BEFORE, YOLO_LOSS_AFTER),
        (DetrBoxIou, DETR_LOSS_BEFORE, DETR_LOSS_AFTER),  # the matcher-side bbox_iou of another method is left alone
    ],
)
def test_iou_loss_transforms(cls, before, after):
    assert_before_after(cls, before, after)


def test_iou_loss_transforms_missing():
    assert_missing(IouLossChoice, IOU_TASKS_BEFORE.replace("def parse_model", "def build_model"), "parse_model")
    assert_missing(
        YoloBoxIou, YOLO_LOSS_BEFORE.replace("class BboxLoss", "class BoxLoss"), "CIoU=True", "BboxLoss.forward"
    )
    assert_missing(DetrBoxIou, DETR_LOSS_BEFORE.replace("def _get_loss_bbox", "def _bbox_loss"), "_get_loss_bbox")
    assert_missing(IouLossState, STATE_TASKS_BEFORE.replace("torch.nn.Sequential(*layers)", "layers"), "parse_model")
    half = IOU_TASKS_AFTER.replace(
        "return rtdetr_patch_criterion(self, v8DetectionLoss(self))", "return v8DetectionLoss(self)"
    )
    assert_missing(IouLossChoice, half, "hand-edited")


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (YoloBoxIou, YOLO_LOSS_BEFORE.replace("CIoU=True)", "WIoU=True)")),  # a fork's own loss, chosen by a flag
        (
            DetrBoxIou,
            DETR_LOSS_BEFORE.replace(
                "1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)", "my_loss(pred_bboxes, gt_bboxes)"
            ),
        ),
    ],
)
def test_iou_loss_leaves_a_box_term_edited_by_hand(cls, code):
    """The series' forks edit exactly this line: theirs is kept (not needed), the apply goes on."""
    assert cls.KEEPS_EDITS
    assert transform(cls, code) == (code, Outcome.NOT_NEEDED)
