"""The words apply and check report, one enum per thing they describe; the JSON holds each member's value.

- ``Outcome``: what a transform found in a source (apply reports it, the record keeps it);
- ``TransformState``: a transform's state as check reports it (read off the record, or off a fresh plan);
- ``FileState``: a patched file's state (check);
- ``AddedState``: an added file's state (check);
- ``AdoptStatus``: what adopt does with a name or a module file of the tree.

Kept apart from ``patches/base.py`` (which needs libcst) so that the answers read off a record, which
never parse a source, can use the same vocabulary without importing libcst.
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    """A word of the vocabulary: a ``str`` (equal to its value, written as its value in JSON and in text)."""

    def __str__(self) -> str:
        return str(self.value)


class Outcome(State):
    """What a transform found in a source: apply's word for it, recorded per transform."""

    PATCHED = "patched"  # it found the pristine target and rewrote it
    APPLIED = "applied"  # the target already has this transform's shape
    NOT_NEEDED = "not-needed"  # this release already behaves correctly

    @classmethod
    def after_apply(cls, recorded: str) -> Outcome:
        """What a finished apply left, from the outcome its record keeps: a patched target is applied now."""
        outcome = cls(recorded)
        return cls.APPLIED if outcome is cls.PATCHED else outcome


class TransformState(State):
    """A transform's state as check reports it."""

    APPLIED = "applied"
    MISSING = "missing"  # a fresh plan would still patch it
    NOT_NEEDED = "not-needed"
    UNRECOGNISED = "unrecognised"  # the file has neither the pristine nor the patched shape

    @classmethod
    def recorded(cls, outcome: str) -> TransformState:
        """The state of a finished apply's transform, from the outcome its record keeps."""
        return cls(Outcome.after_apply(outcome).value)

    @classmethod
    def planned(cls, outcome: Outcome) -> TransformState:
        """The state of a transform planned again: one that would still patch is missing."""
        return {Outcome.APPLIED: cls.APPLIED, Outcome.PATCHED: cls.MISSING, Outcome.NOT_NEEDED: cls.NOT_NEEDED}[outcome]


class FileState(State):
    """A file the patch changed, as check finds it against its record."""

    PATCHED = "patched"
    PRISTINE = "pristine"
    CHANGED = "changed since apply"


class AddedState(State):
    """A file the patch adds, as check finds it."""

    PRESENT = "present"
    CHANGED = "changed since apply"
    NOT_OURS = "not ours"  # a file of someone else's where the patch adds one
    MISSING = "missing"


class AdoptStatus(State):
    """adopt: what becomes of a name parse_model gained in the tree, or of a module file of the tree."""

    CARRIED = "carried"
    OURS = "ours"  # rtdetr-patch's own module builds it
    NATIVE = "native"  # the target's Ultralytics has it already
    NOT_CARRIED = "not carried"
