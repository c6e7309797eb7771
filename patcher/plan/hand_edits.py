"""Recognise an install already patched by hand, by following the blog (partly or fully).

The blog's edits have their own shapes, different from ours: ``backbone = False`` before the
layer loop of ``parse_model`` (blog step 4.4), a branch ``elif m in {MobileNetV3}`` that sets
``backbone = True`` (4.5), ``hasattr(m, 'backbone')`` in a layer loop (4.7), an
``Addmodules`` import in ``tasks.py`` (4.3), and module files in ``nn/Addmodules`` (4.1, 4.2).
Without a record of ours, any of them means a person edited the install: it is reported as such
and not patched a second time. The search is scoped like the transforms: the statements of
``parse_model``, the ``if`` tests of class methods and the module-level imports, on the one parse
of ``tasks.py`` the run shares.
"""

from __future__ import annotations

from typing import Callable

import libcst as cst
import libcst.matchers as m

from ...patches.base import MARK, block_of, methods, statements
from ..errors import PatchError
from ..install.locate import Install
from .source import parse

_BACKBONE_FLAG = m.Assign(targets=[m.AssignTarget(target=m.Name("backbone"))], value=m.Name("False") | m.Name("True"))
_HASATTR_BACKBONE = m.Call(func=m.Name("hasattr"), args=[m.Arg(m.Name("m")), m.Arg(m.SimpleString())])
_ADDMODULES_IMPORT = m.SimpleStatementLine(body=[m.ImportFrom(module=m.Attribute(attr=m.Name("Addmodules")))])


def blog_edits(install: Install, ours: Callable[[], set[str]]) -> list[str]:
    """Descriptions of the hand edits found in tasks.py (and then the module files beside them).

    ``ours()`` gives the added files that are ours (by record or by content). Module files alone, with a pristine
    ``tasks.py``, are no hand patch: ``apply`` reports them as a conflict and never overwrites them.
    """
    tasks = install.package / "nn" / "tasks.py"
    try:
        module = parse(tasks.read_bytes(), str(tasks))[0]
    except (OSError, PatchError):
        module = None
    found = edits_in_tasks(module) if module is not None else []
    folder = install.package / "nn" / "Addmodules"
    if found and folder.is_dir() and not folder.is_symlink():  # files alone are a conflict, not a hand patch
        owned = ours()
        theirs = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and p.suffix == ".py" and f"nn/Addmodules/{p.name}" not in owned
        )
        if theirs:
            found.append(
                f"module files in nn/Addmodules not made by rtdetr-patch: {', '.join(theirs)} (blog step 4.1/4.2)"
            )
    return found


def edits_in_tasks(module: cst.Module) -> list[str]:
    """The blog's edits of ``tasks.py`` (steps 4.3, 4.4/4.5 and 4.7) found in its module."""
    found: list[str] = []
    flags = hasattr_calls = 0
    for cls, func in methods(module):  # statements only: no expression is entered
        for stmt in statements(block_of(func)):
            if (
                cls is None
                and func.name.value == "parse_model"
                and isinstance(stmt, cst.SimpleStatementLine)
                and any(m.matches(s, _BACKBONE_FLAG) for s in stmt.body if isinstance(s, cst.Assign))
            ):
                flags += 1
            elif (
                cls is not None
                and isinstance(stmt, cst.If)
                and isinstance(stmt.test, cst.Call)
                and m.matches(stmt.test, _HASATTR_BACKBONE)
                and "backbone" in getattr(stmt.test.args[1].value, "value", "")
            ):
                hasattr_calls += 1
    if flags:
        found.append("`backbone = False/True` in parse_model (blog step 4.4/4.5)")
    if hasattr_calls:
        found.append(f"`hasattr(m, 'backbone')` in {hasattr_calls} layer loop(s) (blog step 4.7)")
    imports = [s for s in module.body if isinstance(s, cst.SimpleStatementLine) and m.matches(s, _ADDMODULES_IMPORT)]
    ours_in_tasks = any(s.trailing_whitespace.comment and MARK in s.trailing_whitespace.comment.value for s in imports)
    if imports and not ours_in_tasks:
        found.append("an `ultralytics.nn.Addmodules` import in tasks.py (blog step 4.3)")
    return found
