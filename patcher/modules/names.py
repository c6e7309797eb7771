"""The names a user's module may not take: rtdetr-patch's own, and those ``tasks.py`` already binds.

A module's names are exported to ``tasks.py`` and its file becomes ``nn/Addmodules/<stem>.py``: neither may
shadow what is there already (Ultralytics' own names, the added package's helpers and registries, the files
rtdetr-patch ships beside it).
"""

from __future__ import annotations

import ast
import keyword
from importlib import resources
from pathlib import Path

from ..install.locate import Install

RESERVED = {
    "MobileNetV3",
    "ResNet",
    "ConvNormLayer",
    "Blocks",
    "RTDETR_PATCH_MODULES",
    "rtdetr_patch_module_args",
    "rtdetr_patch_deploy",
    "RTDETR_PATCH_BACKBONES",
    "RTDETR_PATCH_SAFE_MODULES",
    "RTDETR_PATCH_SAFE_NAMES",
    "rtdetr_patch_channels",
    "rtdetr_patch_outputs",
    "rtdetr_patch_module_classes",
    "rtdetr_patch_probe_size",
    "rtdetr_patch_safe_globals",
    "rtdetr_patch_deployable",
    "rtdetr_patch_is_head",
    "rtdetr_patch_preds",
    "rtdetr_patch_iou_loss",
    "rtdetr_patch_criterion",
    "rtdetr_patch_iou_state",
    "iou_losses",
    "RTDETR_PATCH_BRANCHES",
    "RTDETR_PATCH_PROBE_SIZES",
    "adopted_parse_model",
}
OURS = {"MobileNetV3", "ConvNormLayer", "Blocks"}  # rtdetr-patch's own modules: a user's may not take their names

# The files rtdetr-patch ships in nn/Addmodules (plan.add_files copies every one): a relative import of them finds
# ours, and a user's file may not take their names (RESERVED holds them)
TEMPLATES = Path(str(resources.files("rtdetr_patch.templates").joinpath("Addmodules")))
SHIPPED = tuple(sorted(p.stem for p in TEMPLATES.glob("*.py") if p.stem != "__init__"))


def can_be_stem(stem: str) -> bool:
    """Whether a file of this stem can be a module of the added package (``nn/Addmodules/<stem>.py``)."""
    return stem.isidentifier() and not keyword.iskeyword(stem) and not stem.startswith("_") and stem not in RESERVED


def taken_names(install: Install) -> set[str]:
    """Names already bound at module level in tasks.py: a backbone may not shadow any of them."""
    return bound_names(install.package / "nn" / "tasks.py")


def bound_names(tasks: Path) -> set[str]:
    """Names bound at module level of a ``tasks.py`` (imports, classes, functions, assignments)."""
    tree = ast.parse(tasks.read_bytes())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("Addmodules"):
                continue  # our own star import (on a patched install)
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names
