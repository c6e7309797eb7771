"""The files beside a ``--module`` file that it imports from its own folder, carried with it.

The series' ``extra_modules`` files import one another (``from .attention import EMA``): each such sibling
becomes ``nn/Addmodules/<stem>.py`` beside the file that imports it, so the import resolves there as it did
in the repository.
"""

from __future__ import annotations

import ast
from pathlib import Path

from ..target.target_common import ADDED_PACKAGE
from .names import SHIPPED, can_be_stem
from .user_module import UserModule, module_error


def sibling_imports(tree: ast.Module, folder: Path) -> list[tuple[str, Path | None]]:
    """(stem, file beside it or None) for every module a file imports from its own folder: relatively
    (``from .X import ...``, ``from .X.Y import ...``, ``from . import X``) or by the name it will have once
    copied (``from ultralytics.nn.Addmodules.X import ...``, the blog series' own spelling), at any depth of
    the file (inside ``try:`` blocks and functions too)."""
    found: dict[str, Path | None] = {}
    for node in ast.walk(tree):
        for stem in _imported_stems(node):
            path = folder / f"{stem}.py"
            found.setdefault(stem, path if path.is_file() else None)
    return list(found.items())


def _imported_stems(node: ast.AST) -> list[str]:
    """The stems of the added package (or of the file's own folder) one import statement reads."""
    package = ADDED_PACKAGE + "."
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        return [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith(package):
        return [node.module[len(package) :].split(".")[0]]  # `from ultralytics.nn.Addmodules.X import ...`
    if isinstance(node, ast.Import):
        return [a.name[len(package) :].split(".")[0] for a in node.names if a.name.startswith(package)]
    return []


def companions(given: list[UserModule]) -> list[UserModule]:
    """The files beside the given ones that they import relatively, and those files' own, copied with them.

    A sibling registers no names (only the files given with ``--module`` do). The shipped
    ``MobileNetV3``/``ResNet`` answer imports of those names; a sibling that is not there is left to the
    preflight, which names it.
    """
    seen = {m.source for m in given if m.source is not None}
    names = {m.name for m in given}
    queue = [m for m in given if m.source is not None]
    out: list[UserModule] = []
    while queue:
        importer = queue.pop(0)
        assert importer.source is not None  # (only files read from disk are queued)
        try:
            tree = ast.parse(importer.data, filename=str(importer.source))
        except (SyntaxError, ValueError):
            continue  # a given file that does not parse is refused by parse_spec; a sibling below
        for stem, path in sibling_imports(tree, importer.source.parent):
            if path is None or stem in SHIPPED or path.resolve() in seen:
                continue
            path = path.resolve()
            seen.add(path)
            where = f"--module {given[0].label if importer.carried_by else importer.label}"
            module = _sibling(where, importer.source, stem, path, names)
            names.add(stem)
            out.append(module)
            queue.append(module)
    return out


def _sibling(where: str, importer: Path, stem: str, path: Path, names: set[str]) -> UserModule:
    """The sibling ``path`` that ``importer`` imports as ``.stem``, checked: a name it can take, and it parses."""
    if not can_be_stem(stem) or stem in names:
        raise module_error(
            f"{where}: {importer.name} imports .{stem}, the file {path} beside it, which "
            f"cannot be carried into nn/Addmodules under that name (it is rtdetr-patch's own, or "
            f"another file's of this apply).",
            "Rename the sibling and its import. Nothing was written.",
        )
    data = path.read_bytes()
    try:
        ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise module_error(f"{where}: {importer.name} imports .{stem}, and {path} does not parse: {exc}")
    return UserModule(name=stem, data=data, classes=(), source=path, explicit=True, carried_by=str(importer))
