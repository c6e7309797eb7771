"""Small hand-edited Ultralytics trees for the adopt tests, made from a real release tree.

``blog_tree(root)`` edits the ``ultralytics/`` in ``root`` the way a reader of the series does by hand
(text edits of the release's own lines: this is the user's side, not the tool's): the blog's
backbone edits in ``parse_model`` (steps 4.4/4.5) and ``torch_utils.py`` (4.8), a module folder
``nn/Addmodules`` with the files in ``fixtures/adopt`` star-imported, module branches of several
rules plus one that no rule expresses, names added to Ultralytics' own conv and repeat sets (``nn.Conv2d`` among them), an
edit of RT-DETR's loss, and two yamls.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "adopt"
MODULE_FILES = ("__init__.py", "attention.py", "blocks.py", "needs_pkg.py", "MobileNetV3.py")
BRANCHES = """\
        elif m in {MobileNetV3}:
            m = m(*args)
            c2 = m.width_list  # the blog's backbone branch
            backbone = True
        elif m in {EMA, Absent}:
            c2 = ch[f]
            args = [c2, *args]
        elif m is Zoom_cat:
            c2 = sum(ch[x] for x in f)
        elif m is Weird:
            c2 = ch[f] * 3
            args = [ch[f], c2, 3]
"""


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def blog_tree(root: Path) -> Path:
    """Edit ``root/ultralytics`` by hand, as the series' readers do; returns the package folder."""
    package = root / "ultralytics"
    tasks = package / "nn" / "tasks.py"
    _edit(tasks, "import torch.nn as nn\n", "import torch.nn as nn\nfrom .Addmodules import *\n")
    _edit(
        tasks,
        "layers, save, c2 = [], [], ch[-1]  # layers, savelist, ch out\n",
        "layers, save, c2 = [], [], ch[-1]  # layers, savelist, ch out\n    backbone = False\n",
    )
    _edit(tasks, "DWConvTranspose2d, C3x, RepC3):", "DWConvTranspose2d, C3x, RepC3, C2f_EMA, nn.Conv2d):")
    _edit(tasks, "C3Ghost, C3x, RepC3):", "C3Ghost, C3x, RepC3, C2f_EMA):")
    _edit(tasks, "        elif m is AIFI:\n", BRANCHES + "        elif m is AIFI:\n")
    _edit(
        package / "utils" / "torch_utils.py",
        "stride = max(int(model.stride.max()), 32) if hasattr(model, 'stride') else 32",
        "stride = 640",
    )
    loss = package / "models" / "utils" / "loss.py"
    loss.write_bytes(loss.read_bytes() + b"\n# my loss tweak: a heavier GIoU term\n")
    folder = package / "nn" / "Addmodules"
    folder.mkdir()
    for name in MODULE_FILES:
        shutil.copyfile(FIXTURES / name, folder / name)
    for name in ("rtdetr-mine.yaml", "rtdetr-weird.yaml"):
        shutil.copyfile(FIXTURES / name, package / "cfg" / "models" / "rt-detr" / name)
    return package


def loss_flags(package: Path) -> None:
    """The series' loss edit, as forks make it: ``bbox_iou`` in ``utils/metrics.py`` takes the loss flags, and
    RT-DETR's box term passes some of them (Inner-EIoU at ratio 0.8). Only read by adopt, never run."""
    _edit(
        package / "utils" / "metrics.py",
        "def bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, eps=1e-7):",
        "def bbox_iou(box1, box2, xywh=True, GIoU=False, DIoU=False, CIoU=False, EIoU=False, SIoU=False,\n"
        "             WIoU=False, ShapeIoU=False, hw=1, mpdiou=False, Inner=False, alpha=1, ratio=0.7, eps=1e-7,\n"
        "             scale=0.0):",
    )
    _edit(
        package / "models" / "utils" / "loss.py",
        "bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)",
        "bbox_iou(pred_bboxes, gt_bboxes, xywh=True, EIoU=True, Inner=True, ratio=0.8)",
    )
