"""The IoU losses a model yaml chooses (``templates/Addmodules/iou_losses.py``), right by their papers.

Pure torch, no wheel: each variant's value on fixed boxes from the paper's equations, written out here with
``math`` (not the implementation's code); identical boxes give the minimum with finite gradients; disjoint,
nested, zero-width and very large boxes stay finite; xywh and xyxy agree; Ultralytics' batch shapes. Then the
choice through the real loss code of the installed Ultralytics: no key and ``giou`` (RT-DETR) / ``ciou``
(YOLO) give the release's own loss bit for bit, another name changes it; and the yaml checks' messages.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import libcst as cst
import pytest
import torch
from rtdetr_patch.patches.iou_loss import DetrBoxIou, YoloBoxIou

_FILE = Path(__file__).resolve().parent.parent / "templates" / "Addmodules" / "iou_losses.py"
_spec = importlib.util.spec_from_file_location("rtdetr_patch_iou_losses_under_test", _FILE)
il = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = il
_spec.loader.exec_module(il)

ALL = il.NAMES
# Fixed boxes (x1, y1, x2, y2): prediction A, target B.
A, B = (0.0, 0.0, 4.0, 2.0), (1.0, 1.0, 5.0, 4.0)
IOU = 3 / 17  # intersection [1,4]x[1,2] = 3; areas 8 and 12
CW, CH = 5.0, 4.0  # the enclosing box [0,0,5,4]
C2 = CW**2 + CH**2
DX, DY = 1.0, 1.5  # centres (2, 1) and (3, 2.5)
RHO2 = DX**2 + DY**2


def loss_of(name, a=A, b=B, ctx=None, **args):
    variant = il.make(name, args)
    ta, tb = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    return float(variant.loss(ta, tb, ctx or il.Context(size=(10.0, 8.0), scale=2.0)))


def _siou():
    sigma = math.sqrt(RHO2)
    lam = 1 - 2 * math.sin(math.asin(DY / sigma) - math.pi / 4) ** 2
    gamma = 2 - lam
    delta = (1 - math.exp(-gamma * (DX / CW) ** 2)) + (1 - math.exp(-gamma * (DY / CH) ** 2))
    omega = (1 - math.exp(-abs(4 - 4) / 4)) ** 4 + (1 - math.exp(-abs(2 - 3) / 3)) ** 4
    return 1 - IOU + (delta + omega) / 2


def _shape(scale):
    ww = 2 * 4**scale / (4**scale + 3**scale)  # target w = 4, h = 3
    hh = 2 * 3**scale / (4**scale + 3**scale)
    distance = hh * DX**2 / C2 + ww * DY**2 / C2
    omega = (1 - math.exp(-hh * 0 / 4)) ** 4 + (1 - math.exp(-ww * 1 / 3)) ** 4
    return 1 - IOU + distance + 0.5 * omega


_V1 = math.exp(RHO2 / C2) * (1 - IOU)
_CIOU_V = 4 / math.pi**2 * (math.atan(4 / 3) - math.atan(4 / 2)) ** 2
_EIOU = 1 - IOU + RHO2 / C2 + 0 / CW**2 + 1 / CH**2
_INNER_IOU = 0.75 / 10.5  # ratio 0.75: [0.5,0.25,3.5,1.75] and [1.5,1.375,4.5,3.625]
_GIOU = 1 - IOU + (20 - 17) / 20
_DIOU = 1 - IOU + RHO2 / C2
_NWD = math.exp(-math.sqrt(RHO2 + 0 + 0.5**2) * 2.0 / 12.8)  # scale 2 px per unit, C = 12.8

EXPECTED = [
    ("giou", {}, _GIOU),
    ("diou", {}, _DIOU),
    ("ciou", {}, _DIOU + _CIOU_V / (1 - IOU + _CIOU_V) * _CIOU_V),
    ("eiou", {}, _EIOU),
    ("focal-eiou", {}, IOU**0.5 * _EIOU),
    ("focal-eiou", {"gamma": 1.0}, IOU * _EIOU),
    ("siou", {}, _siou()),
    ("wiou-v1", {}, _V1),
    ("wiou-v2", {}, (1 - IOU) ** 0.5 * _V1),  # a fresh running mean is 1
    ("wiou-v3", {}, (1 - IOU) / (3 * 1.9 ** ((1 - IOU) - 3)) * _V1),
    ("mpdiou", {}, 1 - (IOU - 2 / (10**2 + 8**2) - 5 / (10**2 + 8**2))),  # image 10 x 8
    ("shape-iou", {}, _shape(0.0)),
    ("shape-iou", {"scale": 1.0}, _shape(1.0)),
    ("alpha-iou", {}, 1 - IOU**3),
    ("alpha-iou", {"alpha": 2}, 1 - IOU**2),
    ("nwd", {}, 0.5 * (1 - _NWD) + 0.5 * (1 - IOU)),
    ("nwd", {"ratio": 1.0}, 1 - _NWD),
    ("inner-giou", {}, _GIOU + IOU - _INNER_IOU),
    ("focaler-diou", {}, _DIOU + IOU - IOU / 0.95),
    ("focaler-diou", {"d": 0.2, "u": 0.9}, _DIOU + IOU - 0.0),  # IoU = 0.176 is below d
]


@pytest.mark.parametrize(("name", "args", "want"), EXPECTED, ids=[f"{n}-{a}" for n, a, _ in EXPECTED])
def test_value_by_the_paper(name, args, want):
    assert loss_of(name, **args) == pytest.approx(want, rel=1e-6, abs=1e-7)


def test_every_variant_has_an_expected_value():
    covered = {n for n, _, _ in EXPECTED}
    assert set(il.VARIANTS) <= covered
    assert {n.split("-")[0] + "-" for n in covered if n.startswith(("inner-", "focaler-"))} == set(il.MODIFIERS)


def test_wiou_running_mean_moves_with_training_batches_only():
    variant = il.make("wiou-v3", {"momentum": 0.5})
    a, b = torch.tensor([A]), torch.tensor([B])
    with torch.no_grad():
        variant.loss(a, b, il.Context())
    assert float(variant.mean) == 1.0  # a validation pass leaves it alone
    first = variant.loss(a, b, il.Context())
    assert float(variant.mean) == pytest.approx(0.5 + 0.5 * (1 - IOU))
    second = variant.loss(a, b, il.Context())
    beta = (1 - IOU) / float(0.5 + 0.5 * (1 - IOU))
    assert float(second) == pytest.approx(beta / (3 * 1.9 ** (beta - 3)) * _V1, rel=1e-5)
    assert float(first) != pytest.approx(float(second))


def _grad(name, a, b, **kw):
    pred = torch.tensor(a, dtype=torch.float32, requires_grad=True)
    choice = il.IouLossChoice(il.make(name), name, **kw)
    loss = 1.0 - choice(pred, torch.tensor(b, dtype=torch.float32), xywh=False, size=1.0)
    loss.sum().backward()
    return loss.detach(), pred.grad


@pytest.mark.parametrize("name", ALL)
def test_identical_boxes_give_the_minimum(name):
    box = [[10.0, 20.0, 50.0, 44.0], [0.1, 0.2, 0.4, 0.9]]
    loss, grad = _grad(name, box, box)
    assert torch.isfinite(grad).all()
    assert loss.abs().max() < 1e-3, loss  # every variant's minimum is 0 (NWD's sqrt keeps an epsilon)
    moved, _ = _grad(name, [[11.0, 20.0, 52.0, 47.0], [0.12, 0.2, 0.45, 0.8]], box)
    assert (moved > loss).all(), (moved, loss)


EDGES = {
    "disjoint": ([[0.0, 0.0, 1.0, 1.0]], [[5.0, 5.0, 7.0, 9.0]]),
    "nested": ([[0.0, 0.0, 10.0, 10.0]], [[2.0, 3.0, 4.0, 5.0]]),
    "same-centre": ([[0.0, 0.0, 4.0, 4.0]], [[1.0, 1.0, 3.0, 3.0]]),
    "zero-width": ([[3.0, 1.0, 3.0, 6.0]], [[2.0, 2.0, 5.0, 5.0]]),
    "both-zero-size": ([[3.0, 3.0, 3.0, 3.0]], [[3.0, 3.0, 3.0, 3.0]]),
    "very-large": ([[0.0, 0.0, 4.0e5, 3.0e5]], [[1.0e5, -2.0e5, 6.0e5, 9.0e5]]),
    "vertical-offset": ([[0.0, 0.0, 2.0, 2.0]], [[0.0, 5.0, 2.0, 7.0]]),
}


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("name", ALL)
def test_edge_boxes_stay_finite(name, edge):
    a, b = EDGES[edge]
    loss, grad = _grad(name, a, b)
    assert torch.isfinite(loss).all(), loss
    assert torch.isfinite(grad).all(), grad


@pytest.mark.parametrize("name", ALL)
def test_xywh_and_xyxy_agree(name):
    torch.manual_seed(0)
    xy = torch.rand(6, 2) * 10
    wh = torch.rand(6, 2) * 5 + 0.1
    xywh_a, xywh_b = torch.cat((xy, wh), -1), torch.cat((xy + torch.rand(6, 2), wh * 1.3), -1)
    xyxy = lambda t: torch.cat((t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2), -1)  # noqa: E731
    one = il.IouLossChoice(il.make(name), name)(xywh_a, xywh_b, xywh=True, size=1.0)
    two = il.IouLossChoice(il.make(name), name)(xyxy(xywh_a), xyxy(xywh_b), xywh=False, size=1.0)
    assert torch.allclose(one, two, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_shapes_as_ultralytics_passes_them(name):
    choice = il.IouLossChoice(il.make(name), name)
    rand = lambda *s: torch.cat((torch.rand(*s, 2), torch.rand(*s, 2) + 1), -1)  # noqa: E731
    assert choice(rand(7), rand(7), xywh=True, size=1.0).shape == (7, 1)  # RT-DETR: matched (N, 4)
    assert choice(rand(2, 5), rand(2, 5), xywh=True, size=1.0).shape == (2, 5, 1)
    assert choice(rand(0), rand(0), xywh=True, size=1.0).shape == (0, 1)  # a batch without boxes


def test_yolo_grid_context_from_anchor_points():
    """YOLO's boxes are in grid units of their level: the image is that level's grid, a unit its stride."""
    feats = [(4, 6), (2, 3)]  # (h, w) of two levels, strides 8 and 16: a 48 x 32 image
    points = []
    for h, w in feats:
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        points.append(torch.stack((xs, ys), -1).view(-1, 2))
    anchors = torch.cat(points)
    fg = torch.zeros(1, len(anchors), dtype=torch.bool)
    fg[0, [3, 25]] = True  # one box on each level
    choice = il.IouLossChoice(il.make("mpdiou"), "mpdiou", strides=[8, 16])
    ctx = choice._grid(anchors, fg, torch.zeros(2, 4))
    assert ctx.size[0].flatten().tolist() == [6.0, 3.0] and ctx.size[1].flatten().tolist() == [4.0, 2.0]
    assert ctx.scale.flatten().tolist() == [8.0, 16.0]
    same = choice._grid(anchors, fg.nonzero(as_tuple=True), torch.zeros(2, 4))  # 8.4's index tuple
    assert same.scale.flatten().tolist() == [8.0, 16.0]


# -- the yaml's key: refused with a message that says what to do ----------------------------------------------
@pytest.mark.parametrize(
    ("cfg", "words"),
    [
        ({"iou_loss": "fancy-iou"}, ["`iou_loss: fancy-iou`", "Accepted values", "siou", "inner-BASE", "remove it"]),
        ({"iou_loss": "inner-nwd"}, ["`iou_loss: inner-nwd`", "Accepted values"]),
        ({"iou_loss": "siou", "iou_loss_args": {"ratio": 0.7}}, ["`iou_loss_args`", "`ratio`", "theta (default 4.0)"]),
        ({"iou_loss": "inner-ciou", "iou_loss_args": {"ratio": "big"}}, ["`ratio: 'big'`", "finite number"]),
        ({"iou_loss": "focaler-giou", "iou_loss_args": {"d": 0.9, "u": 0.5}}, ["0 <= d < u <= 1", "iou_loss_args"]),
        ({"iou_loss": "giou", "iou_loss_args": [0.7]}, ["must be a mapping"]),
        ({"iou_loss_args": {"ratio": 0.7}}, ["no `iou_loss`", "remove `iou_loss_args`"]),
    ],
)
def test_bad_choices_are_refused(cfg, words):
    with pytest.raises(il.IouLossError) as info:
        il.rtdetr_patch_iou_loss(cfg)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_no_key_chooses_nothing_and_names_are_case_blind():
    assert il.rtdetr_patch_iou_loss({"nc": 80}) is None
    assert il.rtdetr_patch_iou_loss("yolo11n.yaml") is None
    assert il.rtdetr_patch_iou_loss({"iou_loss": "Inner-CIoU", "iou_loss_args": {"ratio": 0.8}}).ratio == 0.8


# -- through the installed Ultralytics' own loss code, patched in memory -----------------------------------------
def _patched(module_name: str, transform):
    """The installed release's loss module with the transform applied, executed as a sibling module."""
    real = pytest.importorskip(module_name)
    code, _ = transform().run(cst.parse_module(Path(real.__file__).read_text(encoding="utf-8")))
    mod = types.ModuleType(module_name + "_rtdetr_patch")
    mod.__package__ = module_name.rpartition(".")[0]
    exec(compile(code.code, real.__file__, "exec"), mod.__dict__)
    return real, mod


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy, wh = torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g) * 0.5 + 0.01
    return torch.cat((xy, wh), -1)


def test_detr_box_term_bit_for_bit_and_routed():
    real, mod = _patched("ultralytics.models.utils.loss", DetrBoxIou)
    pred, gt = _boxes(50, 1).requires_grad_(), _boxes(50, 2)
    stock = real.DETRLoss(nc=3)._get_loss_bbox(pred, gt)
    plain = mod.DETRLoss(nc=3)
    assert all(torch.equal(stock[k], v) for k, v in plain._get_loss_bbox(pred, gt).items())  # no key: unchanged
    chosen = mod.DETRLoss(nc=3)
    chosen.rtdetr_patch_iou = il.IouLossChoice(il.make("giou"), "giou")
    got = chosen._get_loss_bbox(pred, gt)
    assert all(torch.equal(stock[k], v) for k, v in got.items())  # giou: the release's own, bit for bit
    assert chosen.rtdetr_patch_iou.calls == 1
    chosen.rtdetr_patch_iou = il.IouLossChoice(il.make("siou"), "siou")
    other = chosen._get_loss_bbox(pred, gt)
    assert not torch.equal(other["loss_giou"], stock["loss_giou"]) and torch.equal(
        other["loss_bbox"], stock["loss_bbox"]
    )
    own = il.GIoU().loss(il.to_xyxy(pred, True), il.to_xyxy(gt, True))
    release = real.bbox_iou(pred, gt, xywh=True, GIoU=True)
    assert torch.allclose(1 - own, release, atol=1e-6)  # our own GIoU is the same equation


def test_yolo_box_term_bit_for_bit_and_routed():
    real, mod = _patched("ultralytics.utils.loss", YoloBoxIou)
    import inspect

    torch.manual_seed(0)
    n, reg_max = 40, 16
    anchors = torch.rand(n, 2) * 20
    target = torch.cat((anchors - torch.rand(n, 2) * 3 - 0.1, anchors + torch.rand(n, 2) * 3 + 0.1), -1)[None]
    pred = (target + torch.randn_like(target) * 0.4).requires_grad_()
    fg = torch.rand(1, n) > 0.3
    kwargs = dict(
        pred_dist=torch.randn(1, n, 4 * reg_max),
        pred_bboxes=pred,
        anchor_points=anchors,
        target_bboxes=target,
        target_scores=torch.rand(1, n, 3),
        target_scores_sum=torch.tensor(7.0),
        fg_mask=fg,
    )
    if "imgsz" in inspect.signature(real.BboxLoss.forward).parameters:
        kwargs.update(imgsz=torch.tensor([640.0, 640.0]), stride=torch.ones(n, 1) * 8)
    stock = real.BboxLoss(reg_max)(**kwargs)
    assert all(torch.equal(a, b) for a, b in zip(stock, mod.BboxLoss(reg_max)(**kwargs)))
    chosen = mod.BboxLoss(reg_max)
    chosen.rtdetr_patch_iou = il.IouLossChoice(il.make("ciou"), "ciou")
    assert all(torch.equal(a, b) for a, b in zip(stock, chosen(**kwargs)))  # ciou: the release's own, bit for bit
    chosen.rtdetr_patch_iou = il.IouLossChoice(il.make("wiou-v3"), "wiou-v3")
    other = chosen(**kwargs)
    assert not torch.equal(other[0], stock[0]) and torch.equal(other[1], stock[1])  # only the IoU term moves
    own = il.CIoU().loss(pred[fg], target[fg])
    assert torch.allclose(1 - own, real.bbox_iou(pred[fg], target[fg], xywh=False, CIoU=True), atol=1e-5)


def test_criterion_attachment():
    real, loss_module = _patched("ultralytics.models.utils.loss", DetrBoxIou)
    cls_loss = pytest.importorskip("ultralytics.utils.loss").v8ClassificationLoss
    model = types.SimpleNamespace(yaml={"nc": 2}, args={"imgsz": 320}, stride=torch.tensor([8.0, 16.0, 32.0]))
    crit = loss_module.RTDETRDetectionLoss(nc=2)
    assert il.rtdetr_patch_criterion(model, crit) is crit and not hasattr(crit, "rtdetr_patch_iou")
    model.yaml = {"nc": 2, "iou_loss": "nwd", "iou_loss_args": {"ratio": 0.3}}
    assert il.rtdetr_patch_criterion(model, crit) is crit
    assert crit.rtdetr_patch_iou.variant.ratio == 0.3 and crit.rtdetr_patch_iou.imgsz == 320
    assert il.rtdetr_patch_iou_in_use(crit) == {"name": "nwd", "args": {"ratio": 0.3}, "calls": 0}
    with pytest.raises(il.IouLossError, match="has no such term.*Remove `iou_loss`"):
        il.rtdetr_patch_criterion(model, cls_loss())
    # a loss file whose box term is not the release's (a fork's own edit, which apply leaves as it is)
    with pytest.raises(
        il.IouLossError,
        match=r"box term of models/utils/loss.py \(RTDETRDetectionLoss\) is not the "
        r"release's.*Remove `iou_loss`",
    ):
        il.rtdetr_patch_criterion(model, real.RTDETRDetectionLoss(nc=2))


def test_check_prints_the_loss_in_use():
    """`check` (tables) shows the smoke run's and the trainer's box IoU loss, as the JSON reports them."""
    from rich.console import Console

    from rtdetr_patch.cli import figures_table

    fig = {
        "yaml": "y.yaml",
        "seconds": 1,
        "torch": "2",
        "backbone_shapes": [],
        "output_shape": [1, 300, 5],
        "loss": 1.0,
        "backbone_grad_tensors": 3,
        "loss_after_step": 0.9,
        "params": 10,
        "imgsz": 640,
        "gflops": 1.0,
        "rtdetr_l_params": 32_970_476,
        "iou_loss": {"name": "inner-ciou", "args": {"ratio": 0.8}, "calls": 13, "source": "model yaml"},
        "trainer": {
            "integrations": [],
            "iterations": 2,
            "imgsz": 320,
            "nc": 1,
            "losses": [1.0],
            "seconds": 3,
            "iou_loss": {"name": "giou", "args": {}, "calls": None, "source": "Ultralytics"},
        },
    }
    console = Console(width=200, record=True)
    console.print(figures_table(fig))
    text = console.export_text()
    assert "box IoU loss" in text and "inner-ciou {'ratio': 0.8} (model yaml, 13 calls)" in text
    assert "box IoU loss in the trainer" in text and "giou (Ultralytics)" in text


def test_attachment_reaches_both_branches_and_skips_rotated_boxes():
    """An end-to-end head's criterion holds two detection losses: each BboxLoss gets its own instance (its own
    Wise-IoU mean). OBB's RotatedBboxLoss computes probiou: a yaml that chooses a loss for it is refused."""
    _, losses = _patched("ultralytics.utils.loss", YoloBoxIou)
    model = types.SimpleNamespace(yaml={"iou_loss": "wiou-v3"}, args=None, stride=torch.tensor([8.0, 16.0, 32.0]))
    branch = lambda: types.SimpleNamespace(bbox_loss=losses.BboxLoss(16), hyp={})  # noqa: E731
    e2e = types.SimpleNamespace(one2many=branch(), one2one=branch())
    assert il.rtdetr_patch_criterion(model, e2e) is e2e
    first, second = e2e.one2many.bbox_loss.rtdetr_patch_iou, e2e.one2one.bbox_loss.rtdetr_patch_iou
    assert first.name == second.name == "wiou-v3" and first.variant is not second.variant
    assert first.strides == [8.0, 16.0, 32.0] and first.imgsz == 640
    obb = types.SimpleNamespace(bbox_loss=losses.RotatedBboxLoss(16))
    with pytest.raises(il.IouLossError, match="no such term"):
        il.rtdetr_patch_criterion(model, obb)


# -- Wise-IoU v2/v3's running mean: held by the model, so the EMA copy and the checkpoint keep it -------------
def _tiny(cfg, base=torch.nn.Module):
    """A model shaped as Ultralytics' for what the loss reads: parse_model's layers as ``model``, its yaml, args."""

    class Tiny(base):
        def __init__(self):
            torch.nn.Module.__init__(self)
            self.yaml, self.args, self.stride = cfg, {"imgsz": 64}, torch.tensor([8.0, 16.0, 32.0])
            self.model = il.rtdetr_patch_iou_state(cfg, torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)))

    return Tiny()


def test_the_running_mean_buffer_only_where_a_wise_iou_needs_it():
    stock = set(_tiny({"nc": 2}).state_dict())
    assert stock == {"model.0.weight", "model.0.bias"}
    for name in ("giou", "wiou-v1", "inner-ciou", "nwd"):
        assert set(_tiny({"iou_loss": name}).state_dict()) == stock, name
    for name in ("wiou-v2", "wiou-v3", "inner-wiou-v3", "focaler-wiou-v2"):
        state = _tiny({"iou_loss": name}).state_dict()
        assert set(state) == stock | {"model." + il.STATE}, name
        assert state["model." + il.STATE].tolist() == [1.0] * il.SLOTS


def _xywh(box):
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def test_the_running_mean_is_saved_with_the_checkpoint_and_restored_on_resume():
    """As the trainer does it: the EMA copy is made before the criterion exists; training batches move the mean
    in the model's buffer; the EMA averages it like any buffer; the checkpoint holds the EMA copy in half
    precision; resuming builds the model from its yaml and loads that state (BaseModel.load), and the next
    batch's loss divides by the restored mean, not by 1."""
    import io
    from copy import deepcopy

    tasks = pytest.importorskip("ultralytics.nn.tasks")
    ema_module = pytest.importorskip("ultralytics.utils.torch_utils")
    _, losses = _patched("ultralytics.models.utils.loss", DetrBoxIou)
    cfg = {"nc": 2, "iou_loss": "wiou-v3", "iou_loss_args": {"momentum": 0.5}}
    model = _tiny(cfg, tasks.BaseModel)
    ema = ema_module.ModelEMA(model)
    crit = il.rtdetr_patch_criterion(model, losses.DETRLoss(nc=2))
    pred, gt = torch.tensor([_xywh(A)], requires_grad=True), torch.tensor([_xywh(B)])
    crit._get_loss_bbox(pred, gt)
    moved = 0.5 + 0.5 * (1 - IOU)  # (1 - m) 1 + m L_IoU
    assert float(model.model.rtdetr_patch_iou_mean[0]) == pytest.approx(moved, rel=1e-6)
    assert float(model.model.rtdetr_patch_iou_mean[1]) == 1.0  # the slot of a second box term (end-to-end heads)
    assert il.rtdetr_patch_iou_in_use(crit)["running_mean"] == [pytest.approx(moved, rel=1e-5)]
    ema.update(model)
    kept = float(ema.ema.model.rtdetr_patch_iou_mean[0])
    assert kept == pytest.approx(moved, abs=1e-3) and kept < 1.0

    buffer = io.BytesIO()
    torch.save({"model": None, "ema": deepcopy(ema.ema).half().state_dict()}, buffer)  # as save_model (its state)
    buffer.seek(0)
    saved = _tiny(cfg).half()
    saved.load_state_dict(torch.load(buffer)["ema"])
    resumed = _tiny(cfg, tasks.BaseModel)
    resumed.load(saved, verbose=False)  # what resuming runs: the yaml's model, then the checkpoint's state
    restored = float(resumed.model.rtdetr_patch_iou_mean[0])
    assert restored == pytest.approx(kept, abs=1e-3) and restored != 1.0
    again = il.rtdetr_patch_criterion(resumed, losses.DETRLoss(nc=2))
    loss = again._get_loss_bbox(pred, gt)
    beta = (1 - IOU) / restored
    want = beta / (3 * 1.9 ** (beta - 3)) * _V1
    gain = 2.0  # DETRLoss's loss_gain for the giou term
    assert float(loss["loss_giou"].detach()) == pytest.approx(want * gain, rel=1e-4)
