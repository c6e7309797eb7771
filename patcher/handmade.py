"""Recognise an install already patched by hand, by following the blog (partly or fully).

The blog's edits have their own shapes, different from ours: ``backbone = False`` before the
layer loop of ``parse_model`` (blog step 4.4), a branch ``elif m in {MobileNetV3}`` that sets
``backbone = True`` (4.5), ``hasattr(m, 'backbone')`` in a layer loop (4.7), an
``Addmodules`` import in ``tasks.py`` (4.3), and module files in ``nn/Addmodules`` (4.1, 4.2).
Without a record of ours, any of them means a person edited the install: it is reported as such
and not patched a second time.
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .locate import Install

_BACKBONE_FLAG = m.Assign(targets=[m.AssignTarget(target=m.Name("backbone"))],
                          value=m.Name("False") | m.Name("True"))
_HASATTR_BACKBONE = m.Call(func=m.Name("hasattr"), args=[m.Arg(m.Name("m")), m.Arg(m.SimpleString())])
_ADDMODULES_IMPORT = m.ImportFrom(module=m.Attribute(attr=m.Name("Addmodules")))


def blog_edits(install: Install, ours: set[str]) -> list[str]:
    """Descriptions of the hand edits found in tasks.py (and then the module files beside them).

    ``ours`` are the added files our record owns. Module files alone, with a pristine
    ``tasks.py``, are no hand patch: ``apply`` reports them as a conflict and never overwrites them.
    """
    found: list[str] = []
    tasks = install.package / "nn" / "tasks.py"
    try:
        module = cst.parse_module(tasks.read_bytes())
    except (OSError, cst.ParserSyntaxError, UnicodeDecodeError):
        module = None
    if module is not None:
        if m.findall(module, _BACKBONE_FLAG):
            found.append("`backbone = False/True` in parse_model (blog step 4.4/4.5)")
        hasattr_calls = [c for c in m.findall(module, _HASATTR_BACKBONE)
                         if "backbone" in c.args[1].value.value]
        if hasattr_calls:
            found.append(f"`hasattr(m, 'backbone')` in {len(hasattr_calls)} layer loop(s) (blog step 4.7)")
        ours_in_tasks = bool(m.findall(module, m.Name("RTDETR_PATCH_BACKBONES")))
        if m.findall(module, _ADDMODULES_IMPORT) and not ours_in_tasks:
            found.append("an `ultralytics.nn.Addmodules` import in tasks.py (blog step 4.3)")
    folder = install.package / "nn" / "Addmodules"
    if found and folder.is_dir() and not folder.is_symlink():  # files alone are a conflict, not a hand patch
        theirs = sorted(p.name for p in folder.iterdir()
                        if p.is_file() and p.suffix == ".py" and f"nn/Addmodules/{p.name}" not in ours)
        if theirs:
            found.append(f"module files in nn/Addmodules not made by rtdetr-patch: {', '.join(theirs)} (blog step 4.1/4.2)")
    return found
