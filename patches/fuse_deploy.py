"""The series' deploy-time fusion: ``model.fuse()`` also calls ``switch_to_deploy()`` of added modules."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import MARK, Outcome, TargetMissing, Transform, block_of, is_simple, statement, with_block

HELPER = "rtdetr_patch_deploy"
CALL = f"{HELPER}(self.model)  # {MARK}: switch_to_deploy() of the added modules (re-parameterised, folded BN)\n"
_MODULES_LOOP = m.For(
    iter=m.Call(func=m.Attribute(value=m.Attribute(value=m.Name("self"), attr=m.Name("model")), attr=m.Name("modules")))
)
_OURS = m.Expr(m.Call(func=m.Name(HELPER)))


class FuseDeploy(Transform):
    """Let ``BaseModel.fuse()`` switch the added modules to their deploy form.

    Ultralytics calls ``model.fuse()`` for predict, val and export; it folds the batch norms of its
    own ``Conv`` layers and re-parameterises ``RepConv``, and knows nothing of the series' modules.
    Seven of the sixteen repositories read add ``if hasattr(m, 'switch_to_deploy'):
    m.switch_to_deploy()`` to it by hand. Here ``rtdetr_patch_deploy(self.model)`` goes right before
    the release's own loop over ``self.model.modules()`` (under ``if not self.is_fused():`` in most
    releases, ``if True:`` in some), which calls ``switch_to_deploy()``
    only on modules whose class an added file defines (the shipped MobileNetV3 and ResNet base
    fold their batch norms this way), so stock models fuse exactly as before.
    """

    NAME = "fuse-deploy"
    FILE = "nn/tasks.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "the loop `for m in self.model.modules():` in BaseModel.fuse"
    SCOPE = ("BaseModel",)
    STATEMENTS = False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        super().leave_FunctionDef(original, updated)
        if self.classes != ["BaseModel"] or updated.name.value != "fuse":
            return updated
        new_body, outcome = self._insert(list(updated.body.body))
        if outcome is None:
            raise TargetMissing(self.LOOKED_FOR)
        self.settle(outcome)
        if outcome is Outcome.APPLIED:
            return updated
        return updated.with_changes(body=updated.body.with_changes(body=new_body))

    def _insert(self, body: list) -> tuple[list, Outcome | None]:
        """The block with our call before its modules loop (looking one ``if`` deep), and the outcome."""
        for i, stmt in enumerate(body):
            if m.matches(stmt, _MODULES_LOOP):
                if i > 0 and is_simple(body[i - 1], _OURS):
                    return body, Outcome.APPLIED
                return body[:i] + [statement(CALL)] + body[i:], Outcome.PATCHED
            if isinstance(stmt, cst.If):
                inner, outcome = self._insert(list(block_of(stmt)))
                if outcome is not None:
                    return body[:i] + [with_block(stmt, inner)] + body[i + 1 :], outcome
        return body, None
