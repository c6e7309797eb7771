"""Restricted loading (8.4.x ``ULTRALYTICS_SAFE_LOAD=1``) accepts checkpoints with the added backbones."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import MARK, Outcome, Transform, is_simple, statement

SAFE_GLOBALS = "rtdetr_patch_safe_globals"
ALLOW = f"allow += {SAFE_GLOBALS}(allow)  # {MARK}: the classes a checkpoint of an added backbone holds\n"

_OURS = m.AugAssign(target=m.Name("allow"), value=m.Call(func=m.Name(SAFE_GLOBALS)))
_ALLOW_LIST = m.Assign(targets=[m.AssignTarget(target=m.Name("allow"))])


class SafeLoadAllow(Transform):
    """Add the added package's classes to ``_SafeLoad``'s allow-list (blog step 5.2: training works).

    From 8.4.x, ``ULTRALYTICS_SAFE_LOAD=1`` loads checkpoints with ``weights_only=True`` and accepts
    only classes from Ultralytics' and torch's own module trees, so a trained ``best.pt`` with a
    MobileNetV3 backbone (``ultralytics.nn.Addmodules...`` and torchvision's blocks) is refused,
    and training under the flag fails at its final validation. ``_SafeLoad._build`` collects its
    extra globals in a list ``allow`` and returns a mapping built from it: the transform extends
    ``allow`` with ``rtdetr_patch_safe_globals(allow)`` right before that ``return``: a function, so the
    list (which imports torchvision for MobileNetV3's blocks) is computed only when a checkpoint is
    loaded under the flag, never when ``tasks.py`` is imported. Releases without
    ``_SafeLoad`` (up to 8.4.0 at least) do not need it.
    """

    NAME = "safe-load"
    FILE = "nn/tasks.py"
    BLOG_STEP = "5.2"
    LOOKED_FOR = "the `allow` list and its final `return` in _SafeLoad._build"
    SCOPE = ("_SafeLoad",)
    STATEMENTS = False

    def __init__(self) -> None:
        super().__init__()
        self.has_safe_load = False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        if node.name.value == "_SafeLoad":
            self.has_safe_load = True
        return super().visit_ClassDef(node)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        inside = self.in_method("_SafeLoad", "_build")
        super().leave_FunctionDef(original, updated)
        if not inside:
            return updated
        body = list(updated.body.body)
        if any(is_simple(s, _OURS) for s in body):
            self.settle(Outcome.APPLIED)
            return updated
        returns = [i for i, s in enumerate(body) if is_simple(s, m.Return())]
        if not returns or not any(is_simple(s, _ALLOW_LIST) for s in body[: returns[-1]]):
            return updated
        self.settle(Outcome.PATCHED)
        body.insert(returns[-1], statement(ALLOW))
        return updated.with_changes(body=updated.body.with_changes(body=body))

    def not_needed(self) -> bool:
        """No ``_SafeLoad`` class: the release has no restricted loading."""
        return not self.has_safe_load
