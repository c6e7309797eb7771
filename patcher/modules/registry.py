"""The lines that register the users' modules, appended to the added package's ``__init__.py``."""

from __future__ import annotations

from collections.abc import Sequence

from ..record.manifest import ModuleEntry
from .user_module import BRANCHES_STEM


def registry_block(modules: Sequence[ModuleEntry]) -> bytes:
    """The lines appended to the added package's __init__.py for the users' backbones and modules.

    The file's module is taken from ``sys.modules`` by its full name, never with ``from . import
    name``: when a file and a class share a name (``FasterNet.py`` holding ``class FasterNet``),
    the package attribute is the class, not the module. Only the names given are imported, so a
    file's other exports (its own ``Conv`` or ``DWConv``) never reach ``tasks.py``.
    """
    if not modules:
        return b""
    lines = [
        "",
        "",
        "# Users' backbones and modules (rtdetr-patch apply --module)",
        "import importlib as _importlib",
        "",
    ]
    for module in modules:
        if module.classes:  # (a sibling carried with a file registers no names: the file that imports it loads it)
            lines.append(f"from .{module.name} import {', '.join(module.classes)}")
    backbones = sorted(c for m in modules for c in m.backbones)
    if backbones:
        lines.append(f"RTDETR_PATCH_BACKBONES = RTDETR_PATCH_BACKBONES | {{{', '.join(backbones)}}}")
    ruled = sorted((name, rule) for m in modules for name, rule in m.rules if rule != "block")
    if ruled:
        lines.append("RTDETR_PATCH_MODULES.update({" + ", ".join(f"{n}: {r!r}" for n, r in ruled) + "})")
    blocks = sorted(name for m in modules for name, rule in m.rules if rule == "block")
    if blocks:
        lines.append("_resnet.BLOCKS.update({" + ", ".join(f"{n!r}: {n}" for n in blocks) + "})")
    if any(m.name == BRANCHES_STEM for m in modules):  # (adopt: a tree's branches, and its stride probe size)
        lines += [
            f"from . import {BRANCHES_STEM} as _adopted",
            "RTDETR_PATCH_BRANCHES.update({globals()[k]: v for k, v in _adopted.BRANCHES.items()})",
            "RTDETR_PATCH_PROBE_SIZES.update({globals()[k]: v for k, v in _adopted.PROBE_SIZES.items()})",
        ]
    for module in modules:
        lines.append(f"RTDETR_PATCH_SAFE_MODULES.append(_importlib.import_module(__name__ + {'.' + module.name!r}))")
    names = sorted({n for m in modules for n in m.safe_names})
    if names:
        lines.append(f"RTDETR_PATCH_SAFE_NAMES += {names!r}")
    exported = sorted(backbones + [n for n, _ in ruled])
    if exported:
        lines.append(f"__all__ += {exported!r}")
    return ("\n".join(lines) + "\n").encode("utf-8")
