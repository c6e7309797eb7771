"""Seed step 4.8: the stride probe in ``DetectionModel.__init__`` runs at 640 instead of 256."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import Outcome, Transform

_PROBE = m.Assign(targets=[m.AssignTarget(target=m.Name("s"))], value=m.Integer())
PRISTINE, PATCHED = "256", "640"


class StrideProbe(Transform):
    """Probe the strides of a detection model with a 640x640 image (seed 4.8).

    ``DetectionModel.__init__`` learns the head's strides from one forward pass of an ``s x s``
    zero image. The seed raises ``s`` from 256 to 640 because some list-returning backbones only
    produce every stride at the training size. RT-DETR models skip this probe, so their build
    time is unchanged; YOLO models pay one forward pass at 640 when they are built from a yaml.
    """

    NAME = "stride-probe"
    FILE = "nn/tasks.py"
    SEED_STEP = "4.8"
    DESCRIPTION = "DetectionModel stride probe uses a 640x640 image"
    LOOKED_FOR = "`s = 256` in DetectionModel.__init__"

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if not self.in_method("DetectionModel", "__init__") or not m.matches(updated, _PROBE):
            return updated
        value = updated.value.value
        if value == PATCHED:
            self.settle(Outcome.APPLIED)
        elif value == PRISTINE:
            self.settle(Outcome.PATCHED)
            return updated.with_changes(value=cst.Integer(PATCHED))
        return updated
