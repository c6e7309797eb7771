"""adopt reads the box loss a fork chose by the flags of its own ``bbox_iou`` (``patcher/adopt/loss.py``).

Small trees written here in the shape of the release's files and of the series' forks: the release's
``bbox_iou`` signature and loss calls, and the fork's (flags added to ``bbox_iou``, the box term's call passing
some of them, a ``WIoU_Scale`` class holding the Wise-IoU version). No wheel: these are unit tests.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from rtdetr_patch.patcher.adopt import loss
from rtdetr_patch.patcher.adopt.survey import YamlRow

STOCK_METRICS = "def bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7):\n    pass\n"
FORK_METRICS = textwrap.dedent("""\
    class WIoU_Scale:
        iou_mean = 1.
        monotonous = {monotonous}
        _momentum = 1 - 0.5 ** (1 / 7000)

        @classmethod
        def _scaled_loss(cls, self, gamma=1.9, delta=3):
            return 1


    def bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, EIoU=False, SIoU=False, WIoU=False,
                 ShapeIoU=False, hw=1, mpdiou=False, Inner=False, alpha=1, ratio=0.7, eps=1e-7, scale=0.0):
        pass
""")
DETR = textwrap.dedent("""\
    class DETRLoss(nn.Module):
        def _get_loss_bbox(self, pred_bboxes, gt_bboxes, postfix=""):
            loss = {{}}
            loss[name_bbox] = self.loss_gain["bbox"] * F.l1_loss(pred_bboxes, gt_bboxes, reduction="sum")
            loss[name_giou] = 1.0 - {call}
            return loss

        def _get_loss_class(self, scores, gt_bboxes, pred_bboxes):
            gt_scores = bbox_iou(pred_bboxes.detach(), gt_bboxes, xywh=True)
""")
YOLO = textwrap.dedent("""\
    class BboxLoss(nn.Module):
        def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask):
            weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
            iou = {call}
            loss_iou = ((1.0 - iou) * weight).sum() / target_scores_sum
""")
DETR_STOCK = "bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)"
YOLO_STOCK = "bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True)"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def _trees(tmp_path, detr=DETR_STOCK, yolo=YOLO_STOCK, monotonous="False", metrics=None):
    """(fork, release, modified files): the release's three files, and the fork's with its box-term calls."""
    release = _write(
        tmp_path / "release",
        {
            "utils/metrics.py": STOCK_METRICS,
            "models/utils/loss.py": DETR.format(call=DETR_STOCK),
            "utils/loss.py": YOLO.format(call=YOLO_STOCK),
        },
    )
    fork = _write(
        tmp_path / "fork",
        {
            "utils/metrics.py": metrics if metrics is not None else FORK_METRICS.format(monotonous=monotonous),
            "models/utils/loss.py": DETR.format(call=detr),
            "utils/loss.py": YOLO.format(call=yolo),
        },
    )
    modified = sorted(r for r in ("utils/metrics.py", "models/utils/loss.py", "utils/loss.py")
                      if (fork / r).read_bytes() != (release / r).read_bytes())  # fmt: skip
    return fork, release, modified


def _read(tmp_path, **kw) -> dict[str, loss.LossRead]:
    fork, release, modified = _trees(tmp_path, **kw)
    return {r.family: r for r in loss.read(fork, release, modified)}


@pytest.mark.parametrize(
    ("flags", "name", "args"),
    [
        ("EIoU=True", "eiou", {}),
        ("GIoU=False, SIoU=True", "siou", {}),
        ("CIoU=True", "ciou", {}),
        ("mpdiou=True, hw=640", "mpdiou", {}),
        ("ShapeIoU=True, scale=0.5", "shape-iou", {"scale": 0.5}),
        ("ShapeIoU=True", "shape-iou", {}),  # bbox_iou's own default scale, 0.0: the paper's default
        ("CIoU=True, Inner=True, ratio=0.8", "inner-ciou", {"ratio": 0.8}),
        ("EIoU=True, Inner=True", "inner-eiou", {"ratio": 0.7}),  # the ratio of the fork's bbox_iou signature
        ("WIoU=True", "wiou-v3", {"momentum": 1 - 0.5 ** (1 / 7000)}),
        ("WIoU=True, Inner=True, ratio=1.2", "inner-wiou-v3", {"momentum": 1 - 0.5 ** (1 / 7000), "ratio": 1.2}),
        ("EIoU=True, alpha=1", "eiou", {}),
    ],
)
def test_an_rtdetr_call_maps_onto_the_vocabulary(tmp_path, flags, name, args):
    found = _read(tmp_path, detr=f"bbox_iou(pred_bboxes, gt_bboxes, xywh=True, {flags})")
    assert set(found) == {loss.RTDETR}
    read = found[loss.RTDETR]
    assert (read.name, read.args, read.why) == (name, pytest.approx(args), ""), read
    assert read.path == "models/utils/loss.py" and flags in read.code and read.code.startswith("loss[name_giou]")


def test_the_result_is_a_choice_rtdetr_patch_accepts(tmp_path):
    """Every name and parameter the reading gives is one the model yaml's check takes (it runs in Ultralytics)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "iou_losses_for_adopt", Path(__file__).parent.parent / "templates" / "Addmodules" / "iou_losses.py"
    )
    il = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(il)
    for flags in ("WIoU=True, Inner=True, ratio=1.2", "ShapeIoU=True, scale=0.5", "mpdiou=True, hw=640"):
        read = _read(tmp_path, yolo=f"bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, {flags})")
        key = yaml.safe_load(read[loss.YOLO].key.replace(", iou_loss_args", "\niou_loss_args"))
        assert il.rtdetr_patch_iou_loss(key) is not None, key


@pytest.mark.parametrize(("monotonous", "name"), [("None", "wiou-v1"), ("True", "wiou-v2"), ("False", "wiou-v3")])
def test_the_wise_iou_version_comes_from_the_forks_class(tmp_path, monotonous, name):
    found = _read(tmp_path, yolo=YOLO_STOCK.replace("CIoU=True", "WIoU=True"), monotonous=monotonous)
    read = found[loss.YOLO]
    assert read.name == name and read.path == "utils/loss.py"
    assert ("momentum" in read.args) == (name != "wiou-v1")


def test_wise_iou_parameters_other_than_the_papers_are_carried(tmp_path):
    metrics = FORK_METRICS.format(monotonous="False").replace("gamma=1.9, delta=3", "gamma=2.5, delta=4")
    metrics = metrics.replace("_momentum = 1 - 0.5 ** (1 / 7000)", "_momentum = 1e-2")
    read = _read(tmp_path, detr=DETR_STOCK.replace("GIoU=True", "WIoU=True"), metrics=metrics)[loss.RTDETR]
    assert read.args == {"momentum": 0.01, "alpha": 2.5, "delta": 4.0}
    assert read.key == "iou_loss: wiou-v3, iou_loss_args: {momentum: 0.01, alpha: 2.5, delta: 4.0}"


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ("bbox_iou(pred_bboxes, gt_bboxes, xywh=True, EIoU=True, SIoU=True)", ["EIoU and SIoU at once"]),
        ("bbox_iou(pred_bboxes, gt_bboxes, xywh=True, CIoU=True, alpha=3)", ["`alpha`"]),
        ("bbox_iou(pred_bboxes, gt_bboxes, xywh=True, Focal=True)", ["`Focal` is not a parameter"]),
        ("bbox_iou(pred_bboxes, gt_bboxes, xywh=True, EIoU=self.use_eiou)", ["`EIoU=` is given by an expression"]),
        ("bbox_iou(pred_bboxes, gt_bboxes, xywh=True, **self.iou_flags)", ["`**`"]),
        ("bbox_iou(pred_bboxes, gt_bboxes, xywh=True, Inner=True)", ["no loss flag is set"]),
        ("my_focal_iou(pred_bboxes, gt_bboxes)", ["calls no bbox_iou"]),
    ],
)
def test_a_call_the_vocabulary_cannot_express_is_not_carried_with_its_code(tmp_path, call, words):
    read = _read(tmp_path, detr=call)[loss.RTDETR]
    assert read.name is None
    for word in words:
        assert word in read.why, (word, read.why)
    assert call in read.code


def test_an_unknown_flag_of_the_forks_own_signature_is_not_carried(tmp_path):
    metrics = FORK_METRICS.format(monotonous="False").replace("scale=0.0)", "scale=0.0, NWD=False)")
    read = _read(tmp_path, detr=DETR_STOCK.replace("GIoU=True", "NWD=True"), metrics=metrics)[loss.RTDETR]
    assert read.name is None and "no iou_loss expresses the flag NWD" in read.why


def test_the_release_call_and_untouched_files_read_nothing(tmp_path):
    assert _read(tmp_path) == {}  # only metrics.py edited: the loss calls are the release's
    fork, release, _ = _trees(tmp_path / "again", detr=DETR_STOCK.replace("GIoU=True", "EIoU=True"))
    assert loss.read(fork, release, ["utils/metrics.py"]) == []  # the loss file is not among the tree's edits


def _yaml(rel: str, uses: list[str], text: str = "nc: 2\nbackbone: []\nhead: []\n") -> YamlRow:
    return YamlRow(rel, text.encode(), uses)


def _survey(tmp_path, in_place=False, **kw):
    fork, release, modified = _trees(tmp_path, **kw)
    yamls = [
        _yaml("cfg/models/rt-detr/rtdetr-mine.yaml", ["RTDETRDecoder", "EMA"]),
        _yaml("cfg/models/rt-detr/rtdetr-crlf.yaml", ["RTDETRDecoder"], "nc: 2\r\nbackbone: []\r\nhead: []\r\n"),
        _yaml("cfg/models/rt-detr/rtdetr-own.yaml", ["RTDETRDecoder"], "nc: 2\niou_loss: siou\n"),
        _yaml("cfg/models/v8/yolov8-mine.yaml", ["C2f", "Detect"]),
        _yaml("cfg/models/v8/yolov8-cls-mine.yaml", ["C2f", "Classify"]),
    ]
    edits = [{"path": rel, "why": "not carried"} for rel in modified]
    return SimpleNamespace(
        source=fork, pristine=release, modified=modified, in_place=in_place, yamls=yamls, edits=edits
    )


def test_the_adopted_yamls_of_the_family_get_the_key_and_the_plan_says_so(tmp_path):
    survey = _survey(
        tmp_path,
        detr=DETR_STOCK.replace("GIoU=True", "CIoU=True, Inner=True, ratio=0.8"),
        yolo="bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True, alpha=3)",
    )
    before = {y.rel: y.data for y in survey.yamls}
    reads = loss.carry(survey)
    assert [r.family for r in reads] == [loss.RTDETR, loss.YOLO]
    ys = {y.rel.rsplit("/", 1)[-1]: y for y in survey.yamls}
    for name in ("rtdetr-mine.yaml", "rtdetr-crlf.yaml"):
        cfg = yaml.safe_load(ys[name].data)
        assert cfg["iou_loss"] == "inner-ciou" and cfg["iou_loss_args"] == {"ratio": 0.8} and cfg["nc"] == 2
        assert ys[name].data.startswith(before[ys[name].rel])  # the yaml's own bytes first, as they were
        assert "`iou_loss: inner-ciou, iou_loss_args: {ratio: 0.8}` added" in ys[name].why
        assert "models/utils/loss.py" in ys[name].why
    assert b"\n" not in ys["rtdetr-crlf.yaml"].data.replace(b"\r\n", b"")  # CRLF kept
    assert ys["rtdetr-own.yaml"].data == before[ys["rtdetr-own.yaml"].rel]
    assert "its own iou_loss" in ys["rtdetr-own.yaml"].why
    for name in ("yolov8-mine.yaml", "yolov8-cls-mine.yaml"):  # YOLO's call is not carried; a classifier never
        assert ys[name].data == before[ys[name].rel] and not ys[name].why
    edits = {e["path"]: e["why"] for e in survey.edits}
    assert (
        "carried as `iou_loss: inner-ciou, iou_loss_args: {ratio: 0.8}` into 2 adopted RT-DETR yamls"
        in (edits["models/utils/loss.py"])
    )
    assert "not carried: `alpha`" in edits["utils/loss.py"] and "alpha=3)" in edits["utils/loss.py"]
    assert "read where the loss calls it" in edits["utils/metrics.py"]


def test_the_key_reaches_a_yamls_copy_rewritten_for_the_target(tmp_path):
    """A yaml whose rows adopt rewrote (its variables substituted, a name carried as <name>_fork) is written from
    that copy: the loss key goes into it as well as into the tree's bytes."""
    survey = _survey(tmp_path, detr=DETR_STOCK.replace("GIoU=True", "EIoU=True"))
    mine = survey.yamls[0]
    mine.adopted = b"nc: 2\nbackbone: []\nhead: [[-1, 1, RepNCSPELAN4_fork, [256]]]\n"
    rewritten = mine.adopted
    loss.carry(survey)
    assert yaml.safe_load(mine.data)["iou_loss"] == "eiou"
    assert mine.adopted.startswith(rewritten) and yaml.safe_load(mine.adopted)["iou_loss"] == "eiou"
    assert survey.yamls[1].adopted is None  # (a yaml without a rewritten copy keeps none)


def test_in_place_the_trees_own_loss_stays_and_no_yaml_changes(tmp_path):
    survey = _survey(tmp_path, in_place=True, detr=DETR_STOCK.replace("GIoU=True", "EIoU=True"))
    before = [(y.data, y.why) for y in survey.yamls]
    edits = [dict(e) for e in survey.edits]
    assert [r.name for r in loss.carry(survey)] == ["eiou"]
    assert [(y.data, y.why) for y in survey.yamls] == before and survey.edits == edits


def test_a_float_reads_back_as_a_float():
    assert yaml.safe_load(f"a: {loss._number(1e-05)}")["a"] == 1e-05
    assert yaml.safe_load(f"a: {loss._number(0.7)}")["a"] == 0.7
