"""The series' deploy-time fusion: ``model.fuse()`` also calls ``switch_to_deploy()`` of added modules."""

from __future__ import annotations

import libcst as cst
from . import match as m

from .base import MARK, Outcome, TargetMissing, Transform, block_of, is_simple, statement, with_block

HELPER = "rtdetr_patch_deploy"
CALL = f"{HELPER}(self.model)  # {MARK}: switch_to_deploy() of the added modules (re-parameterised, folded BN)\n"
_NOT_FUSED = m.UnaryOperation(operator=m.Not(), expression=m.Call(
    func=m.Attribute(value=m.Name("self"), attr=m.Name("is_fused"))))
_OURS = m.Expr(m.Call(func=m.Name(HELPER)))


class FuseDeploy(Transform):
    """Let ``BaseModel.fuse()`` switch the added modules to their deploy form.

    Ultralytics calls ``model.fuse()`` for predict, val and export; it folds the batch norms of its
    own ``Conv`` layers and re-parameterises ``RepConv``, and knows nothing of the series' modules.
    Seven of the sixteen repositories read add ``if hasattr(m, 'switch_to_deploy'):
    m.switch_to_deploy()`` to it by hand. Here the first statement under ``if not
    self.is_fused():`` becomes ``rtdetr_patch_deploy(self.model)``, which calls ``switch_to_deploy()``
    only on modules whose class an added file defines (the shipped MobileNetV3 and ResNet base
    fold their batch norms this way), so stock models fuse exactly as before.
    """

    NAME = "fuse-deploy"
    FILE = "nn/tasks.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "`if not self.is_fused():` in BaseModel.fuse"
    SCOPE = ("BaseModel",)
    STATEMENTS = False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        super().leave_FunctionDef(original, updated)
        if self.classes != ["BaseModel"] or updated.name.value != "fuse":
            return updated
        body = list(updated.body.body)
        found = [i for i, s in enumerate(body) if isinstance(s, cst.If) and m.matches(s.test, _NOT_FUSED)]
        if len(found) != 1:
            raise TargetMissing(self.LOOKED_FOR)
        guard = body[found[0]]
        inner = list(block_of(guard))
        if inner and is_simple(inner[0], _OURS):
            self.settle(Outcome.APPLIED)
            return updated
        body[found[0]] = with_block(guard, [statement(CALL), *inner])
        self.settle(Outcome.PATCHED)
        return updated.with_changes(body=updated.body.with_changes(body=body))
