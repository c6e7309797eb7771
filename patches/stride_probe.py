"""Blog step 4.8: the stride probe in ``DetectionModel.__init__`` runs at 640 for added backbones only."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import Outcome, TargetMissing, Transform, expression

HELPER = "rtdetr_patch_probe_size"
PRISTINE = "256"
_PROBE = m.Assign(targets=[m.AssignTarget(target=m.Name("s"))])
_OURS = m.Call(func=m.Name(HELPER))


class StrideProbe(Transform):
    """Probe the strides with a 640x640 image when the model holds an added backbone (blog step 4.8).

    ``DetectionModel.__init__`` learns the head's strides from one forward pass of an ``s x s``
    zero image, ``s = 256``. The blog raises ``s`` to 640 for every model, because some
    list-returning backbones only produce every stride at the training size; that makes every
    stock YOLO model build 2-5x slower. Here ``s = 256`` becomes
    ``s = rtdetr_patch_probe_size(self.model, 256)``: 640 when one of the model's layers is a
    registered backbone, the release's own 256 otherwise, so stock models probe exactly as before.
    RT-DETR models skip this probe altogether.
    """

    NAME = "stride-probe"
    FILE = "nn/tasks.py"
    BLOG_STEP = "4.8"
    LOOKED_FOR = "`s = 256` in DetectionModel.__init__"
    SCOPE = ("DetectionModel.__init__",)

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if not self.in_method("DetectionModel", "__init__") or not m.matches(updated, _PROBE):
            return updated
        value = updated.value
        if m.matches(value, _OURS):
            self.settle(Outcome.APPLIED)
        elif m.matches(value, m.Integer(PRISTINE)):
            self.settle(Outcome.PATCHED)
            return updated.with_changes(value=expression(f"{HELPER}(self.model, {PRISTINE})"))
        elif isinstance(value, cst.Integer):
            raise TargetMissing(f"{self.LOOKED_FOR} (found `s = {value.value}`: the file looks hand-edited)")
        return updated
