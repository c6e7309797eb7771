"""The transforms, one per concern, in the order they are applied.

Each transform is a small libcst class whose docstring names the blog step it implements
(the CSDN article "RT-DETR有效改进: 利用MobileNetV3替换Backbone").
"""

from __future__ import annotations

from .base import MARK, Outcome, TargetMissing, Transform
from .fuse_deploy import FuseDeploy
from .get_flops import GetFlopsRealSize
from .layer_loops import LayerLoops
from .parse_model import ParseModelBackbones
from .parse_model_modules import ParseModelModules
from .repc3 import RepC3Expansion
from .restricted_layers import RestrictedLayers
from .safe_load import SafeLoadAllow
from .stride_probe import StrideProbe
from .tasks_import import TasksImport
from .val_rect import ValRect

ALL: tuple[type[Transform], ...] = (
    TasksImport,
    ParseModelBackbones,
    ParseModelModules,
    LayerLoops,
    StrideProbe,
    SafeLoadAllow,
    RestrictedLayers,
    FuseDeploy,
    GetFlopsRealSize,
    RepC3Expansion,
    ValRect,
)
BY_NAME = {t.NAME: t for t in ALL}


def selected(val_rect_fix: bool = False) -> tuple[type[Transform], ...]:
    """The transforms an apply runs: all default ones, plus the opt-in ones asked for."""
    return tuple(t for t in ALL if not t.OPT_IN or (t is ValRect and val_rect_fix))


__all__ = ["FuseDeploy", "ParseModelModules", "ALL", "BY_NAME", "MARK", "Outcome", "TargetMissing", "Transform", "selected"]
