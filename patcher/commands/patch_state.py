"""What a record says, for apply, revert and check alike: which transforms, which users' modules, which
files are ours, what apply wrote, and the blog's hand edits found beside them.

Read-side only: nothing here writes. The transforms and the hand-edit search need libcst; they are
imported inside the functions that use them, so the record-only paths (which call none of them) never
load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..disk.files import sha256
from ..errors import Exit, PatchError
from ..install.locate import Install, start_again
from ..record.manifest import Record
from ..record.store import Store

if TYPE_CHECKING:
    from ..modules.user_module import UserModule


def transforms_for(record: Record | None, options: frozenset[str] = frozenset()) -> tuple:
    """The transforms to plan: the default ones, and the opt-in ones asked for now or recorded."""
    from ... import patches  # libcst: only a run that plans gets here

    return patches.selected(options | (record.options if record else frozenset()))


def recorded_modules(store: Store, record: Record | None) -> list[UserModule]:
    """The users' backbones an earlier apply added (their files come from the store)."""
    from ..modules.user_module import UserModule  # the --module machinery loads only where a record has modules

    return [
        UserModule(name=m.name, data=store.module(m.name), classes=m.classes, safe_names=m.safe_names, rules=m.rules)
        for m in (record.modules if record else ())
    ]


def hand_edits(install: Install, record: Record | None) -> list[str]:
    """The blog's hand edits found in the install (files of ours, by record or by content, excluded)."""
    from ..plan import (
        planner as plan,  # libcst, like handmade below; looked up at call time, so a test may stand in for it
    )
    from ..plan.hand_edits import blog_edits

    def ours() -> set[str]:  # asked for only when tasks.py shows the blog's edits
        owned = {a.path for a in record.added} if record else set()
        owned |= {m.rel for m in record.modules} if record else set()
        return owned | {
            rel
            for rel, data in plan.template_files(install)
            if (install.package / rel).is_file() and (install.package / rel).read_bytes() == data
        }

    return blog_edits(install, ours)


def refuse_hand_patched(install: Install, record: Record | None, *, reverting: bool = False) -> None:
    """Refuse an install the blog's edits were made in by hand. ``reverting``: said for ``revert``, which has
    nothing of its own to take back there (the edits are the user's, and stay)."""
    found = hand_edits(install, record)
    if found and reverting:
        raise PatchError(
            Exit.HAND_PATCHED,
            f"Ultralytics {install.release} at {install.package} was edited by hand (following the blog): "
            f"{'; '.join(found)}. rtdetr-patch has no record of patching it, so revert has nothing of its own "
            "to take back: your edits stay as they are.",
            "`rtdetr-patch adopt --dry-run` shows what adopt carries of them into a managed patch (which "
            "`rtdetr-patch revert` then takes back, giving your edited files back byte for byte). Nothing was "
            "written.",
        )
    if found:
        raise PatchError(
            Exit.HAND_PATCHED,
            f"Ultralytics {install.release} at {install.package} was already "
            f"edited by hand (following the blog): {'; '.join(found)}.",
            "It is not patched a second time. `rtdetr-patch adopt --dry-run` shows what adopt carries "
            "of it (your modules, by rule, and your yamls) into a managed patch, keeping every file you "
            f"edited; `rtdetr-patch adopt` does it. Or start again from the pristine release: {start_again(install)}. "
            "Nothing was written.",
        )


def applied_bytes(install: Install, store: Store, record: Record, rel: str) -> bytes | None:
    """The bytes apply wrote to ``rel``: rebuilt from the recorded original (or the recorded original itself
    when another rtdetr-patch release wrote the patch), or the added file's template; None if unknown."""
    from ..plan import planner as plan  # libcst: only an edited file's diff needs the transforms again

    entry = record.file(rel)
    if entry is not None:
        original = store.original(rel, entry.original_sha256)
        try:
            change = plan.plan_file(install, rel, [t for t in transforms_for(record) if rel == t.FILE], data=original)
            if sha256(change.after) == entry.patched_sha256:
                return change.after
        except PatchError:
            pass
        return original  # written by another rtdetr-patch release: compare with the original instead
    return dict(plan.template_files(install, tuple(recorded_modules(store, record)))).get(rel)
