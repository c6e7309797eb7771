"""Before/after cases of safe-load (blog step 5.2): the transform on small sources shaped like the real code."""

from __future__ import annotations

import libcst as cst
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.safe_load import SafeLoadAllow

SAFE_BEFORE = """\
class _SafeLoad:
    @classmethod
    def _build(cls):
        allow = []
        allow += [int]
        return {e: e for e in allow}
"""
SAFE_AFTER = """\
class _SafeLoad:
    @classmethod
    def _build(cls):
        allow = []
        allow += [int]
        allow += rtdetr_patch_safe_globals(allow)  # rtdetr-patch: the classes a checkpoint of an added backbone holds
        return {e: e for e in allow}
"""


def test_safe_load_before_after_and_not_needed():
    new, outcome = SafeLoadAllow().run(cst.parse_module(SAFE_BEFORE))
    assert outcome is Outcome.PATCHED and new.code == SAFE_AFTER
    again, outcome = SafeLoadAllow().run(cst.parse_module(SAFE_AFTER))
    assert outcome is Outcome.APPLIED and again.code == SAFE_AFTER
    plain = "class DetectionModel:\n    pass\n"
    same, outcome = SafeLoadAllow().run(cst.parse_module(plain))
    assert outcome is Outcome.NOT_NEEDED and same.code == plain
