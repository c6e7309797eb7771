"""Where ``adopt`` carries a tree's files, and their imports pointed at the carried location.

A fork lays its modules out in folders of its own (``nn/extra_modules/block.py`` importing
``..backbone.repvit``, ``.ops_dcnv3.modules``, ``ultralytics.nn.extra_modules.afpn``). Each file is
carried at the path it has under the fork's ``nn/``, inside the added package:
``nn/extra_modules/block.py`` -> ``nn/Addmodules/extra_modules/block.py``; files of the fork's own
``nn/Addmodules/`` stay where they are (flat, as the series lays them out).

The folders adopt makes get an empty ``__init__.py``: importing one carried file never runs its
siblings, so a sibling that fails on the target costs only itself and the files that import it. An
import that went through a folder's ``__init__`` (``from .ops_dcnv3.modules import DCNv3``,
``from ..extra_modules import *``) is pointed at the file that defines each name instead.

The classes, functions and constants a fork added to Ultralytics' own files (``DSConv`` appended to
``nn/modules/conv.py``) are extracted into a file of their own,
``nn/Addmodules/added_in_ultralytics/modules/conv.py``, which imports what they use of the release's
file from the target's; an import of such a name is pointed there, stock names still come from the
target's module.
"""

from __future__ import annotations

import ast
import functools
import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import libcst as cst

ADDED = "ultralytics.nn.Addmodules"
ADDED_DIR = "nn/Addmodules"
EXTRACTED = "added_in_ultralytics"  # the folder of the added package holding what a fork added to Ultralytics' files


def carried_name(rel: str) -> str:
    """The dotted module name under the added package of a tree's file ``rel`` (inside ``ultralytics/``)."""
    path = PurePosixPath(rel)
    parts = list(path.with_suffix("").parts) if path.name != "__init__.py" else list(path.parent.parts)
    for prefix in (("nn", "Addmodules"), ("nn",)):
        if tuple(parts[: len(prefix)]) == prefix:
            return ".".join(parts[len(prefix) :])
    return ".".join(parts)


def extracted_name(rel: str) -> str:
    """The module holding what the tree added to Ultralytics' own file ``rel``: ``added_in_ultralytics.modules.conv``."""
    return f"{EXTRACTED}.{carried_name(rel)}"


def added_module(name: str) -> str:
    """The full module name of a dotted name under the added package (``""``: the package itself)."""
    return f"{ADDED}.{name}" if name else ADDED


def module_of(rel: str) -> str:
    """The dotted module of a file inside ``ultralytics/``: ``nn/modules/conv.py`` -> ``ultralytics.nn.modules.conv``."""
    path = PurePosixPath(rel)
    parts = list(path.parent.parts) if path.name == "__init__.py" else list(path.with_suffix("").parts)
    return ".".join(["ultralytics", *parts])


def package_inits(names: list[str]) -> list[str]:
    """The ``__init__.py`` files (inside ``ultralytics/``) the folders of these dotted module names need."""
    out = set()
    for name in names:
        parts = name.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            out.add(f"{ADDED_DIR}/{'/'.join(parts[:i])}/__init__.py")
    return sorted(out)


def _names_used(tree: ast.Module | None) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree is not None else set()


def _top_names(tree: ast.Module | None) -> dict[str, str]:
    """Top-level names a module binds by a definition (class, def, assignment): name -> kind."""
    out: dict[str, str] = {}
    for node in tree.body if tree is not None else ():
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = "def"
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, "assign")
    return out


@dataclass(frozen=True)
class Place:
    """Where a name imported by a carried file is found on the target: a module, and the tree file carried there
    (``dep``: a file of the tree, or an edited file of Ultralytics whose additions are extracted), if any."""

    module: str
    dep: str | None = None
    extracted: bool = False


class Layout:
    """The tree's files as carried: their modules on the target, and what the tree added to Ultralytics' files.

    ``resolver`` is the survey's (it follows the tree's imports); ``theirs`` the pristine release's files,
    ``modified`` those the tree edited, ``added`` the tree's own files.
    """

    def __init__(
        self,
        resolver,
        pristine: Path,
        theirs: dict[str, Path],
        modified: list[str],
        added: list[str],
        target=None,
    ):
        self.resolver = resolver
        self.pristine = pristine
        self.theirs = theirs
        self.modified = set(modified)
        self.added = set(added)
        self.target = target  # a resolver of the target's package: a stock name it moved is imported from its file

    @functools.cached_property
    def _defined_on_target(self) -> dict[str, list[str]]:
        """Each top-level class and function of the target's package: name -> the files that define it."""
        out: dict[str, list[str]] = {}
        package = self.target.package
        for path in sorted(package.rglob("*.py")):
            try:
                tree = ast.parse(path.read_bytes())
            except (OSError, SyntaxError, ValueError):
                continue
            for node in tree.body:
                if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                    out.setdefault(node.name, []).append(path.relative_to(package).as_posix())
        return out

    def stock(self, target: str, name: str | None) -> Place:
        """Where a name of Ultralytics' file ``target`` is on the target: the same module, or, where the target no
        longer binds it there, the one file of the target that defines it (``make_divisible``, which moved from
        ``utils/torch_utils.py`` to ``utils/ops.py``)."""
        if name is not None and self.target is not None and self.target.define(target, name) is None:
            found = self._defined_on_target.get(name, [])
            if len(found) == 1:
                return Place(module_of(found[0]))
        return Place(module_of(target))

    # -- what the tree added to Ultralytics' own files ------------------------------------------------------------
    @functools.cache  # noqa: B019 (one Layout per survey)
    def additions(self, rel: str) -> tuple[str, ...]:
        """Top-level names the tree's copy of Ultralytics' file ``rel`` defines and the release's does not."""
        if rel not in self.modified or not rel.endswith(".py"):
            return ()
        theirs = self.stock_names(rel)
        if theirs is None:
            return ()
        mine = _top_names(self.resolver.tree(rel))
        return tuple(n for n in mine if n not in theirs and n != "__all__")

    @functools.cache  # noqa: B019 (one Layout per survey)
    def stock_names(self, rel: str) -> frozenset[str] | None:
        """Top-level names the release's own file ``rel`` binds (definitions and imports); None where it cannot be
        read or parsed."""
        try:
            stock = ast.parse((self.pristine / PurePosixPath(rel)).read_bytes())
        except (OSError, SyntaxError, ValueError):
            return None
        return frozenset(_bound(stock))

    # -- where an imported name is on the target ------------------------------------------------------------------
    def place(self, target: str, name: str | None) -> Place | None:
        """Where ``name`` as imported from the tree's file ``target`` is on the target (None: not a file of the tree
        adopt knows where to put). ``name`` None: the module itself (a star import)."""
        if target in self.added:
            if target.endswith("__init__.py") and name is not None:
                return self._through_init(target, name)
            return Place(added_module(carried_name(target)), target)
        if target not in self.theirs:
            return None
        if name is not None:
            where = self.resolver.define(target, name)
            if where and where in self.modified and name in self.additions(where):
                return Place(added_module(extracted_name(where)), where, extracted=True)
            if where and where in self.added:
                return Place(added_module(carried_name(where)), where)
        return self.stock(target, name)

    def _through_init(self, init: str, name: str) -> Place | None:
        folder = PurePosixPath(init).parent
        if (self.resolver.package / folder / f"{name}.py").is_file() or (
            self.resolver.package / folder / name / "__init__.py"
        ).is_file():  # a submodule (`from . import x`): the module is the carried folder's
            sub = f"{folder}/{name}.py"
            return Place(added_module(carried_name(init)), sub if sub in self.added else None)
        where = self.resolver.define(init, name)
        if where is None or where.startswith("<"):  # bound by a plain import, or taken from another package
            return None
        if where == init or where.endswith("__init__.py"):
            return Place(added_module(carried_name(where)), where if where in self.added else None)
        return self.place(where, None if where in self.added else name)

    def redirect(self, rel: str, carried: str, module: str | None, level: int, names: list[str] | None):
        """How the import ``from <level dots><module> import <names>`` (None: ``*``) of the tree's file ``rel``,
        carried as the module ``carried``, reads on the target: a list of (module, names or None for ``*``), or None
        where it stays as written; and the tree files it reaches. None: not an import of the tree's files."""
        target = self.resolver.module_file(rel, ast.ImportFrom(module=module, names=[], level=level))
        if target is None:
            return None
        fallback = Place(added_module(carried_name(target)) if target in self.added else module_of(target))
        groups: dict[str, list[str] | None] = {}
        deps: set[str] = set()
        for name, place in self._places(rel, target, names):
            place = place or fallback
            if place.dep:
                deps.add(place.dep)
            if name is None:
                groups[place.module] = None
            elif groups.get(place.module, []) is not None:
                groups.setdefault(place.module, []).append(name)  # type: ignore[union-attr]
        here = _absolute(carried, module, level)
        return (None if list(groups) == [here] else list(groups.items())), deps

    def _places(self, rel: str, target: str, names: list[str] | None) -> list[tuple[str | None, Place | None]]:
        """Each name an import of ``target`` in ``rel`` binds, and where it is on the target (name None: ``*``)."""
        if names is not None:
            return [(name, self.place(target, name)) for name in names]
        tree = self.resolver.tree(rel)
        used = sorted(self.resolver.public(target) & (_names_used(tree) - _bound(tree)))
        if target in self.added and target.endswith("__init__.py"):  # the names the file uses, each from its file
            return [(name, place) for name in used if (place := self.place(target, name)) is not None]
        out: list[tuple[str | None, Place | None]] = [(None, self.place(target, None))]
        if target in self.theirs:  # names the tree added to Ultralytics' files, reached through this star
            out += [(name, place) for name in used if (place := self.place(target, name)) and place.extracted]
        return out


def _bound(tree: ast.Module | None) -> set[str]:
    """Names a module binds itself at top level (definitions and its own named imports)."""
    return set(_top_names(tree)) | (_imported(tree) if tree is not None else set())


def _imported(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
    return out


def _absolute(carried: str, module: str | None, level: int) -> str:
    """The module an import names, read in the carried module ``carried`` (of the added package)."""
    if not level:
        return module or ""
    parts = f"{ADDED}.{carried}".split(".")[:-level]
    return ".".join(parts + ([module] if module else []))


def _dotted(node: cst.BaseExpression | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return None


_STATEMENTS = (
    cst.Module,
    cst.BaseCompoundStatement,
    cst.BaseSuite,
    cst.Else,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
    cst.MatchCase,
)


class RedirectImports(cst.CSTTransformer):
    """Points each ``from X import ...`` of a carried file at where X's names are on the target.

    The file was written to sit at ``rel`` in the tree and is carried as the module ``carried`` of the
    added package. An import of a file carried with it reads the carried file (relative where it still
    resolves, else ``ultralytics.nn.Addmodules.<folder>.<file>``); one that left the tree's module folders
    (``from ..modules.conv import Conv``) becomes the target's absolute module; one through a folder's
    ``__init__`` names the files that define its names; a name the tree added to one of Ultralytics' own
    files comes from its extraction, split off the same statement (``from ..modules.conv import Conv,
    DSConv`` -> ``from ultralytics.nn.modules.conv import Conv; from ultralytics.nn.Addmodules.
    added_in_ultralytics.modules.conv import DSConv``: the same line, so tracebacks keep their line numbers).
    An import that already reads the right module is left byte for byte. ``deps`` collects the tree files the
    rewritten imports reach; ``tried`` those reached only inside a ``try`` (a fallback such as
    ``try: from .X_cuda import * / except ImportError: from .X_native import *``: carried, but a file that
    fails there does not cost this one).
    """

    def __init__(self, layout: Layout, rel: str, carried: str):
        super().__init__()
        self.layout, self.rel, self.carried = layout, rel, carried
        self.deps: set[str] = set()
        self.tried: set[str] = set()
        self._in_try = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        """Statements only: an import is never inside an expression (the walk of a fork's 8,000-line block.py)."""
        return isinstance(node, _STATEMENTS) and super().on_visit(node)

    def visit_Try(self, node: cst.Try) -> bool:
        self._in_try += 1
        return True

    def leave_Try(self, original_node: cst.Try, updated_node: cst.Try) -> cst.Try:
        self._in_try -= 1
        return updated_node

    def leave_SimpleStatementSuite(
        self, original_node: cst.SimpleStatementSuite, updated_node: cst.SimpleStatementSuite
    ) -> cst.SimpleStatementSuite:
        return self.leave_SimpleStatementLine(original_node, updated_node)  # type: ignore[arg-type,return-value]

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine:
        body: list[cst.BaseSmallStatement] = []
        changed = False
        for small in updated_node.body:
            new = self._redirected(small) if isinstance(small, cst.ImportFrom) else None
            if new is None:
                body.append(small)
                continue
            changed = True
            body.extend(new)
        return updated_node.with_changes(body=body) if changed else updated_node

    def _redirected(self, node: cst.ImportFrom) -> list[cst.BaseSmallStatement] | None:
        module = _dotted(node.module)
        if module == "__future__":
            return None
        star = isinstance(node.names, cst.ImportStar)
        aliases = [] if star else list(node.names)  # type: ignore[arg-type]
        names = None if star else [_dotted(a.name) or "" for a in aliases]
        answer = self.layout.redirect(self.rel, self.carried, module, len(node.relative), names)
        if answer is None:
            return None
        groups, deps = answer
        if self._in_try:
            self.tried |= deps
        else:
            self.deps |= deps
        if groups is None:
            return None
        by_name = dict(zip(names or [], aliases))
        if not groups:  # a star import of a folder none of whose names the file uses: the line stays, empty
            return [cst.Pass(semicolon=node.semicolon)]
        out: list[cst.BaseSmallStatement] = []
        for i, (target, group) in enumerate(groups):
            semicolon = node.semicolon if i == len(groups) - 1 else cst.MaybeSentinel.DEFAULT
            where = cst.parse_expression(target)
            assert isinstance(where, (cst.Name, cst.Attribute))
            if group is None:
                out.append(cst.ImportFrom(module=where, names=cst.ImportStar(), relative=[], semicolon=semicolon))
            elif len(groups) == 1 and not star:  # the same names: only the module changes (the names keep their layout)
                out.append(node.with_changes(module=where, relative=[], semicolon=semicolon))
            else:
                chosen = [
                    by_name[n].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                    if n in by_name
                    else cst.ImportAlias(name=cst.Name(n))
                    for n in group
                ]
                out.append(cst.ImportFrom(module=where, names=chosen, relative=[], semicolon=semicolon))
        return out


def carried_data(rel: str) -> str:
    """Where a data file of the tree (``nn/backbone/faster_cfg/t0.yaml``) is carried, inside ``ultralytics/``: beside
    the modules of its folder (``nn/Addmodules/backbone/faster_cfg/t0.yaml``)."""
    parts = PurePosixPath(rel).parts
    for prefix in (("nn", "Addmodules"), ("nn",)):
        if parts[: len(prefix)] == prefix:
            return "/".join((ADDED_DIR, *parts[len(prefix) :]))
    return f"{ADDED_DIR}/{rel}"


DATA_PREFIXES = ("ultralytics/", "./ultralytics/")


class RedirectDataPaths(cst.CSTTransformer):
    """Points a path to one of the tree's own data files, written relative to the folder training starts in
    (``cfg='ultralytics/nn/backbone/faster_cfg/fasternet_t0.yaml'``: it only resolves from the fork's checkout), at
    the carried copy, relative to the carried file itself:
    ``__import__("os").path.join(__import__("os").path.dirname(__file__), "faster_cfg", "fasternet_t0.yaml")``, on
    the same line. A path to a file of the release, or to none, stays as written. ``data`` collects the tree's data
    files so named, which are carried with the file (``carried_data``).
    """

    def __init__(self, layout: Layout, carried: str):
        super().__init__()
        self.layout, self.carried = layout, carried
        self.data: set[str] = set()

    def leave_SimpleString(self, original_node: cst.SimpleString, updated_node: cst.SimpleString) -> cst.BaseExpression:
        value = updated_node.evaluated_value
        if not isinstance(value, str) or not value.startswith(DATA_PREFIXES):
            return updated_node
        rel = value.split("ultralytics/", 1)[1]
        if rel not in self.layout.added or rel.endswith(".py"):
            return updated_node
        self.data.add(rel)
        here = PurePosixPath(f"{ADDED_DIR}/{self.carried.replace('.', '/')}.py").parent
        parts = posixpath.relpath(carried_data(rel), here.as_posix()).split("/")
        os_path = '__import__("os").path'
        return cst.parse_expression(f"{os_path}.join({os_path}.dirname(__file__), {', '.join(repr(p) for p in parts)})")


def carry_data_paths(layout: Layout, data: bytes, carried: str) -> tuple[bytes, set[str]]:
    """A carried file's bytes with its paths to the tree's data files pointed at their carried copies
    (``RedirectDataPaths``), and those files; as they were where it names none."""
    if not any(f"{q}{p}".encode() in data for q in "'\"" for p in DATA_PREFIXES):
        return data, set()
    try:
        module = cst.parse_module(data)
    except cst.ParserSyntaxError:
        return data, set()
    redirect = RedirectDataPaths(layout, carried)
    out = module.visit(redirect)
    return (out.bytes, redirect.data) if redirect.data else (data, set())


def carry_file(layout: Layout, rel: str, data: bytes, carried: str) -> tuple[bytes, set[str], set[str]]:
    """The tree's file ``rel`` (its bytes ``data``) as carried to the module ``carried``: its imports pointed at the
    carried location (``RedirectImports``), the tree files they reach, and those reached only inside a ``try``."""
    try:
        module = cst.parse_module(data)
    except cst.ParserSyntaxError:
        return data, set(), set()
    redirect = RedirectImports(layout, rel, carried)
    out = module.visit(redirect)
    return out.bytes, redirect.deps, redirect.tried - redirect.deps


class ExtractAdditions(cst.CSTTransformer):
    """Keeps, of a fork's copy of one of Ultralytics' own files, what the fork added to it.

    The top-level classes, functions and assignments of names the release's file does not define stay,
    with the file's own top-level import lines (and ``try`` blocks of imports); every other statement (the release's classes, edited in
    place or not) goes. What the kept code uses of the release's file is imported from the target's
    module, on one line after the imports (``extract`` adds it).
    """

    def __init__(self, added: set[str]):
        super().__init__()
        self.added = added

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(body=[s for s in updated_node.body if self._keeps(s)])

    def _keeps(self, statement: cst.BaseStatement) -> bool:
        if isinstance(statement, (cst.ClassDef, cst.FunctionDef)):
            return statement.name.value in self.added
        if isinstance(statement, cst.Try):  # an optional import (try: import x / except ImportError: ...)
            return all(_is_import_line(s) for s in statement.body.body)
        if _is_import_line(statement):
            return True
        if isinstance(statement, cst.SimpleStatementLine):
            smalls = statement.body
            targets = [t.target for s in smalls if isinstance(s, cst.Assign) for t in s.targets]
            targets += [s.target for s in smalls if isinstance(s, cst.AnnAssign)]
            return bool(targets) and all(isinstance(t, cst.Name) and t.value in self.added for t in targets)
        return False


def extract(layout: Layout, rel: str) -> tuple[bytes, set[str], set[str]]:
    """What the tree added to Ultralytics' file ``rel``, as a module of its own (bytes, and the tree files its
    imports reach): the added statements (``ExtractAdditions``), the file's import lines pointed at the target
    (``RedirectImports``), and the names of the release's file that the added code uses, from the target's."""
    data = (layout.resolver.package / PurePosixPath(rel)).read_bytes()
    module = cst.parse_module(data)
    added = set(layout.additions(rel))
    kept = module.visit(ExtractAdditions(added))
    kept_tree = ast.parse(kept.code)
    uses = _names_used(kept_tree) - added
    stock = sorted((uses & (layout.stock_names(rel) or frozenset())) - _imported(kept_tree))
    body = list(kept.body)
    if stock:
        last = max((i for i, s in enumerate(body) if _is_import_line(s)), default=-1)
        line = cst.parse_statement(f"from {module_of(rel)} import {', '.join(stock)}\n")
        body.insert(last + 1, line)
    kept = kept.with_changes(body=body)
    redirect = RedirectImports(layout, rel, extracted_name(rel))
    out = kept.visit(redirect)
    return out.bytes, redirect.deps, redirect.tried - redirect.deps


def _is_import_line(statement: cst.BaseStatement | cst.BaseSmallStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body
    )
