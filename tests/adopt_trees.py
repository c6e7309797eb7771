"""Small hand-edited Ultralytics trees for the adopt tests, made from a real release tree.

``blog_tree(root)`` edits the ``ultralytics/`` in ``root`` the way a reader of the series does by hand
(text edits of the release's own lines: this is the user's side, not the tool's): the blog's
backbone edits in ``parse_model`` (steps 4.4/4.5) and ``torch_utils.py`` (4.8), a module folder
``nn/Addmodules`` with the files in ``fixtures/adopt`` star-imported, module branches of several
rules plus one that no rule expresses (carried as written) and one that reads parse_model's own list of layers, names added to Ultralytics' own conv and repeat sets (``nn.Conv2d`` among them), an
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
        elif m is Odd:
            c2 = ch[f] * (len(layers) % 2 + 1)
            args = [ch[f], c2, 1]
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


# -- the `extra_modules` family: module folders of the fork's own, and a class added to Ultralytics' conv.py --------
EXTRA_MODULES = {
    # the folder's __init__ star-imports every file, one of which cannot be imported (and no carried file needs it)
    "nn/extra_modules/__init__.py": (
        "from .block import *\nfrom .attention import *\n\ntry:\n    from .needs_absent import *\nexcept ImportError:\n"
        "    pass\n"
    ),
    "nn/extra_modules/block.py": '''\
"""Blocks of the fork (fixture for adopt: the extra_modules family)."""
import torch.nn as nn

from ..modules.conv import Conv, DSConv, autopad
from ..modules.block import *
from .attention import *
from .ops.modules import DeformLite
from ultralytics.nn.backbone.repvit import RepVGGDW
from ultralytics.utils.torch_utils import make_divisible

__all__ = ("C2f_DS",)


class C2f_DS(nn.Module):
    def __init__(self, c1, *args):
        super().__init__()
        c = make_divisible(c1, 8)
        self.ds = DSConv(c1, c)
        self.att = SEAttn(c)
        self.rep = RepVGGDW(c)
        self.deform = DeformLite(c)
        self.pad = autopad(3)

    def forward(self, x):
        return self.deform(self.rep(self.att(self.ds(x))))
''',
    "nn/extra_modules/attention.py": """\
import torch.nn as nn

from ..backbone.repvit import RepVGGDW  # noqa: F401 (a cross-folder import)

__all__ = ("SEAttn",)


class SEAttn(nn.Module):
    def __init__(self, c1, *args):
        super().__init__()
        self.fc = nn.Conv2d(c1, c1, 1)

    def forward(self, x):
        return x * self.fc(x).sigmoid()
""".replace("\n", "\r\n"),  # a file with CRLF line ends: carried byte for byte
    "nn/extra_modules/needs_absent.py": "import rtdetr_patch_absent_package  # noqa: F401\n\n\nclass Unused:\n    pass\n",
    "nn/extra_modules/ops/__init__.py": "from .modules import *\n",
    "nn/extra_modules/ops/modules/__init__.py": "from .deform import DeformLite\n",
    "nn/extra_modules/ops/modules/deform.py": """\
import torch.nn as nn

from ....modules.conv import Conv


class DeformLite(nn.Module):
    def __init__(self, c1):
        super().__init__()
        self.conv = Conv(c1, c1, 3)

    def forward(self, x):
        return self.conv(x) + x
""",
    "nn/backbone/repvit.py": """\
import torch.nn as nn
import yaml


def kernel(cfg='ultralytics/nn/backbone/repvit_cfg/k.yaml'):  # a data file, by a path from the checkout's root
    with open(cfg, encoding="utf-8") as f:
        return yaml.safe_load(f)["k"]


class RepVGGDW(nn.Module):
    def __init__(self, c1):
        super().__init__()
        k = kernel()
        self.conv = nn.Conv2d(c1, c1, k, padding=k // 2, groups=c1)

    def forward(self, x):
        return self.conv(x) + x
""",
    "nn/backbone/repvit_cfg/k.yaml": "k: 3\n",
}
DSCONV = '''

class DSConv(nn.Module):
    """Depthwise separable convolution, added to Ultralytics' own conv.py by the fork."""

    def __init__(self, c1, c2, k=1, s=1, d=1, act=True):
        super().__init__()
        self.dw = DWConv(c1, c1, k, s)
        self.pw = Conv(c1, c2, 1)

    def forward(self, x):
        return self.pw(self.dw(x))
'''
EXTRA_BRANCH = """\
        elif m in {C2f_DS}:
            c2 = ch[f]
            args = [c2, *args]
"""


def extra_modules_files(package: Path) -> None:
    """The fork's module folders (``nn/extra_modules`` with a sub-package, ``nn/backbone``) and ``DSConv`` appended to
    Ultralytics' own ``nn/modules/conv.py``, written into the ``ultralytics/`` folder ``package``."""
    for rel, text in EXTRA_MODULES.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    conv = package / "nn" / "modules" / "conv.py"
    conv.write_bytes(conv.read_bytes() + DSCONV.encode("utf-8"))


def extra_modules_tree(root: Path) -> Path:
    """Edit ``root/ultralytics`` into a fork of the ``extra_modules`` family: its module folders, ``DSConv`` in the
    release's conv.py and its conv set, a branch for ``C2f_DS``, ``tasks.py`` star-importing the folder by its
    absolute name, and a yaml that uses both; returns the package folder."""
    package = root / "ultralytics"
    extra_modules_files(package)
    tasks = package / "nn" / "tasks.py"
    _edit(
        tasks,
        "import torch.nn as nn\n",
        "import torch.nn as nn\nfrom ultralytics.nn.extra_modules import *\nfrom ultralytics.nn.modules.conv import DSConv\n",
    )
    _edit(tasks, "DWConvTranspose2d, C3x, RepC3):", "DWConvTranspose2d, C3x, RepC3, DSConv):")
    _edit(tasks, "        elif m is AIFI:\n", EXTRA_BRANCH + "        elif m is AIFI:\n")
    _edit(tasks, "s = 256  # 2x min stride", "s = 640  # 2x min stride")  # the family's stride probe size
    shutil.copyfile(FIXTURES / "rtdetr-extra.yaml", package / "cfg" / "models" / "rt-detr" / "rtdetr-extra.yaml")
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
