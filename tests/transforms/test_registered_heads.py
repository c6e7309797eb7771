"""Before/after cases of registered-heads: the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import HEADS_BEFORE, assert_before_after, assert_missing
from rtdetr_patch.patches.registered_heads import RegisteredHeads

HEADS_AFTER = (
    HEADS_BEFORE.replace("        ):  # includes", "        ) or rtdetr_patch_is_head(m):  # includes")
    .replace("if isinstance(m, (Detect, Segment)):", "if isinstance(m, (Detect, Segment)) or rtdetr_patch_is_head(m):")
    .replace(
        "elif isinstance(m, (Detect, WorldDetect)):",
        "elif isinstance(m, (Detect, WorldDetect)) or rtdetr_patch_is_head(m):",
    )
    .replace(
        '            return "detect"\n\n',
        '            return "detect"\n        if rtdetr_patch_is_head(m):\n            return "detect"\n\n',
    )
)


def test_registered_heads_before_after_and_missing():
    assert HEADS_AFTER.count("rtdetr_patch_is_head(m)") == 4 and "isinstance(m, Segment):" in HEADS_AFTER
    assert_before_after(RegisteredHeads, HEADS_BEFORE, HEADS_AFTER)
    no_apply = HEADS_BEFORE.replace("m, Detect\n", "m, Segment\n")
    assert_missing(RegisteredHeads, no_apply, "not found in: BaseModel._apply")
    no_cfg2task = HEADS_BEFORE.replace("def cfg2task(cfg):", "def cfg_to_task(cfg):")
    assert_missing(RegisteredHeads, no_cfg2task, "not found in: guess_model_task.cfg2task")
    half = HEADS_AFTER.replace(
        "elif isinstance(m, (Detect, WorldDetect)) or rtdetr_patch_is_head(m):",
        "elif isinstance(m, (Detect, WorldDetect)):",
    )
    assert_missing(RegisteredHeads, half, "found it both patched and unpatched")
