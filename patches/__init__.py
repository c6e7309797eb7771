"""The transforms, one per concern, in the order they are applied; installed as ``rtdetr_patch.patches``.

They need libcst (the engine imports this package only where a run plans) and import nothing of the
engine but the outcome vocabulary (``rtdetr_patch.patcher.states``).

Each transform is a small libcst class whose docstring names the blog step it implements
(the CSDN article "RT-DETR有效改进: 利用MobileNetV3替换Backbone").
"""

from __future__ import annotations

from .base import MARK, Outcome, TargetMissing, Transform
from .decoder_anchors import DecoderAnchors
from .fuse_deploy import FuseDeploy
from .get_flops import GetFlopsRealSize
from .iou_loss import DetrBoxIou, IouLossChoice, IouLossState, YoloBoxIou
from .layer_loops import LayerLoops
from .legacy_preds import LegacyHeadPreds
from .parse_model import ParseModelBackbones
from .parse_model_modules import ParseModelModules
from .registered_heads import RegisteredHeads
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
    RegisteredHeads,
    LegacyHeadPreds,
    SafeLoadAllow,
    RestrictedLayers,
    FuseDeploy,
    GetFlopsRealSize,
    RepC3Expansion,
    DecoderAnchors,
    ValRect,
    IouLossChoice,
    IouLossState,
    YoloBoxIou,
    DetrBoxIou,
)
OPTIONS: tuple[str, ...] = tuple(t.OPTION for t in ALL if t.OPTION)  # the opt-in transforms' options


def selected(options: frozenset[str] | set[str] = frozenset()) -> tuple[type[Transform], ...]:
    """The transforms an apply runs: all default ones, plus the opt-in ones whose option is asked for."""
    return tuple(t for t in ALL if t.OPTION is None or t.OPTION in options)


__all__ = [
    "FuseDeploy",
    "ParseModelModules",
    "ALL",
    "OPTIONS",
    "MARK",
    "Outcome",
    "TargetMissing",
    "Transform",
    "selected",
]
