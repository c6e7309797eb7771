"""What a transform found, and the words apply and check use for it.

Kept apart from ``patches/base.py`` (which needs libcst) so that the answers read off a record, which
never parse a source, can use the same vocabulary without importing libcst.
"""

from __future__ import annotations

import enum


class Outcome(str, enum.Enum):
    PATCHED = "patched"  # it found the pristine target and rewrote it
    APPLIED = "applied"  # the target already has this transform's shape
    NOT_NEEDED = "not-needed"  # this release already behaves correctly


# A recorded outcome (the apply's) -> the state check reports once the apply is done.
STATES = {Outcome.PATCHED.value: "applied", Outcome.APPLIED.value: "applied", Outcome.NOT_NEEDED.value: "not-needed"}
# A fresh plan's outcome -> the state check reports: a transform that would still patch is missing.
CHECK_STATES = {Outcome.APPLIED: "applied", Outcome.PATCHED: "missing", Outcome.NOT_NEEDED: "not-needed"}
