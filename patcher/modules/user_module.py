"""A user's module on this run: the record's :class:`ModuleEntry` with the run's own facts added.

What is persisted (the file's stem, the names it registers, their rules, the names restricted loading must
accept) and the path logic (``rel``: ``nn/Addmodules/<name>.py``) are ``record.manifest.ModuleEntry``'s; a
``UserModule`` adds what only this run knows: the file's bytes, the user's file it was read from, whether its
names were given (``FILE.py:NAME``), the file that carries it (a sibling), and the preflight's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Exit, PatchError
from ..record.manifest import ModuleEntry

# torch layers registered by a rule (``--module torch.nn:Conv2d=conv``, or carried by ``adopt`` from a tree whose
# parse_model gives them a branch): one generated file that imports them, so that rows naming ``nn.Conv2d`` build
# by that rule on this install
TORCH_SPEC = "torch.nn"
TORCH_STEM = "adopted_torch_layers"  # adopt in place: replaced by the pristine release, then patched (module folder)
BRANCHES_STEM = "adopted_parse_model"  # adopt: a tree's parse_model branches no rule expresses (adopt.branch_file)


@dataclass(frozen=True)
class UserModule(ModuleEntry):
    """A module as this run has it: its record entry (``.entry``), its file's bytes and where they came from."""

    data: bytes = b""
    source: Path | None = field(default=None, compare=False)  # the user's file, when given on this run
    explicit: bool = field(default=False, compare=False)  # NAME given as FILE.py:NAME
    report: tuple[dict[str, Any], ...] = field(default=(), compare=False)  # per candidate, from the preflight
    carried_by: str = field(default="", compare=False)  # a sibling file a given file imports (`from .X import`)

    @property
    def label(self) -> str:
        """How messages name it: the user's file, or ``torch.nn`` for torch layers given a rule."""
        return str(self.source) if self.source is not None else TORCH_SPEC if self.name == TORCH_STEM else self.name


def module_error(message: str, hint: str = "Fix the file or the option; nothing was written.") -> PatchError:
    """A ``--module`` refusal (exit code MODULE)."""
    return PatchError(Exit.MODULE, message, hint)
