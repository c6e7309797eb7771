"""What a tree's ``DetectionModel.__init__`` says about the models it builds, where it differs from the release's:
the image size the strides are probed at (``s = 256``; the ``extra_modules`` family writes 640).
"""

from __future__ import annotations

import ast


def _init(tasks_source: bytes | str) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(tasks_source)
    except (SyntaxError, ValueError):
        return None
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DetectionModel"), None)
    return next((n for n in (cls.body if cls else []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)


def probe_size(tasks_source: bytes | str) -> int | None:
    """The image size ``DetectionModel.__init__`` probes the strides at (``s = 256``; patched:
    ``s = rtdetr_patch_probe_size(self.model, 256)``), or None where it is not an int literal."""
    init = _init(tasks_source)
    for node in ast.walk(init) if init else ():
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "s"
        ):
            value = node.value.args[-1] if isinstance(node.value, ast.Call) and node.value.args else node.value
            if isinstance(value, ast.Constant) and type(value.value) is int:
                return value.value
    return None
