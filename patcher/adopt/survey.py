"""``adopt``: read a hand-edited Ultralytics tree against its own pristine release, and plan what to carry.

The tree is an install edited by following the series (adopted in place) or a fork's
``ultralytics/`` folder (carried onto the target with ``--from DIR``). Read, never imported:

* the files that differ from the pristine release of the tree's own version (``pristine.py``);
* every name the tree's ``parse_model`` gained: the names its branches list that the release's
  do not, and the names its yamls use that only its own imports provide (those reach the chain's
  final ``else``). Each gets the rule its branch runs as (``branches.classify``), and the file that
  defines it, found by following ``tasks.py``'s imports (star imports included);
* the yamls it added under ``cfg/models``, with the names their rows use.

What this module decides is a :class:`Survey`: per name carried (with its rule and file) or not
and why, per file its names, where it is carried and the files it imports (``carry.py``), per yaml what it needs. The probes
(import each file, build each yaml, in the target interpreter) and the writing are in
``commands.adopt``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import keyword
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import Exit, PatchError
from ..install.locate import Install, read_release
from ..install.pristine import pristine_package
from ..modules.names import SHIPPED, bound_names, can_be_stem, taken_names
from ..modules.torch_layers import torch_layers_data
from ..modules.user_module import TORCH_STEM, UserModule
from ..record.manifest import ADDED_PACKAGE
from . import branch_file, branches, model_init, yaml_rows
from .carry import ADDED_DIR, Layout, carried_data, carried_name, carry_data_paths, carry_file, extract, extracted_name

MODEL_DIR = "cfg/models"
SKIP_PARTS = {"__pycache__", ".git", ".ipynb_checkpoints"}
# rtdetr-patch's own modules build the rows that use these names (the blog's backbone, the series' ResNet base)
OURS = {
    "MobileNetV3": "rtdetr-patch's own MobileNetV3 (the blog's backbone)",
    "Blocks": "rtdetr-patch's own ResNet base (Blocks, the series' ResNet stages)",
    "ConvNormLayer": "rtdetr-patch's own ResNet base (ConvNormLayer)",
}
OUR_FILES = {"__init__.py", *(f"{stem}.py" for stem in SHIPPED)}  # the added package's own files
MANAGED = ("nn/tasks.py",)
# torch layers the tree's parse_model gives a branch of its own (``nn.Conv2d`` in the conv set): registered by
# their rule from one generated file, so that rows using them build as in the tree
TORCH_FILE = "<torch.nn>"


@dataclass
class NameRow:
    name: str
    status: str  # carried / ours / native / not carried
    rule: str | None = None
    file: str | None = None  # where the tree defines it (inside ultralytics/)
    why: str = ""
    code: str = ""  # the branch, where no rule expresses it
    registered: str | None = None  # the name it is registered as, where the target defines one of its own
    drops_args: bool = False  # its branch never reads the row's arguments: the adopted rows give none

    def to_dict(self) -> dict:  # (the record's row: what is registered and rewritten, ``why`` says in words)
        return {k: v for k, v in vars(self).items() if v not in (None, "") and k not in ("registered", "drops_args")}


@dataclass
class FileRow:
    rel: str  # in the tree
    stem: str
    data: bytes
    names: list[str] = field(default_factory=list)  # registered from it (ruled or backbones)
    deps: list[str] = field(default_factory=list)  # stems of the carried files it imports
    status: str = "carried"
    why: str = ""
    extracted: bool = False  # what the tree added to Ultralytics' own file ``rel``, carried as a file of its own
    data_files: list[str] = field(default_factory=list)  # the tree's data files it names by path, carried with it

    @property
    def module(self) -> str:
        return f"ultralytics.nn.Addmodules.{self.stem}"

    @property
    def target(self) -> str:
        """Where it is carried, inside ``ultralytics/`` (``stem`` is a dotted module name under the added package)."""
        return f"{ADDED_PACKAGE}/{self.stem.replace('.', '/')}.py"

    @property
    def label(self) -> str:
        """How messages name it: the tree's file, or what the tree added to one of Ultralytics' files."""
        return f"the names the tree added to Ultralytics' {self.rel}" if self.extracted else self.rel


@dataclass
class YamlRow:
    rel: str
    data: bytes
    uses: list[str]
    stock_edit: bool = False  # a yaml of the release, edited in the tree
    carried: bool = True
    why: str = ""
    source: dict = field(default_factory=dict)  # {"params"} or {"error"} in the tree, on its own release
    target: dict = field(default_factory=dict)  # the same on the target, patched
    variables: dict = field(default_factory=dict)  # yaml-level variables its rows name, which the fork substitutes
    renamed: dict = field(default_factory=dict)  # module names its rows use, carried under another name
    adopted: bytes | None = None  # the copy written on the target, where its rows are rewritten (else ``data``)

    def to_dict(self) -> dict:
        return {
            "path": self.rel,
            "uses": self.uses,
            "carried": self.carried,
            "why": self.why,
            "source": self.source,
            "target": self.target,
        }


@dataclass
class Survey:
    source: Path  # the tree's ultralytics/ folder
    release: str
    pristine: Path
    in_place: bool
    modified: list[str]
    added: list[str]
    names: list[NameRow]
    files: dict[str, FileRow]  # stem -> file
    yamls: list[YamlRow]
    edits: list[dict]  # {"path", "why"}: edits outside parse_model and the module files, not carried
    chain: branches.Chain | None = None  # the tree's parse_model chain (the branches carried as written)
    probe_size: int | None = None  # the tree's stride probe size, where the release's is another

    def edited_cause(self, error: str) -> str:
        """Where an import failed on a name of one of Ultralytics' files that the tree edited: which file and name
        ("" otherwise), to add to the reason a file is not carried."""
        found = re.search(r"cannot import name '(\w+)' from '(ultralytics(?:\.\w+)*)'", error)
        if not found:
            return ""
        name, module = found.groups()
        base = "/".join(module.split(".")[1:])
        for rel in (f"{base}.py", f"{base}/__init__.py"):
            if rel in self.modified:
                return (
                    f" ({name} comes from {rel}, a file of Ultralytics the tree edited: Ultralytics' own "
                    f"{module} has no {name})"
                )
        return ""

    def modules(self) -> list[UserModule]:
        """The carried files as the registry takes them: ruled names, backbones, and files only imported."""
        by_name = {
            (n.registered or (n.name[3:] if n.file == TORCH_FILE else n.name)): n
            for n in self.names
            if n.status == "carried"
        }
        out = []
        for row in self.files.values():
            if row.status != "carried":
                continue
            names = tuple(n for n in row.names if n in by_name)
            ruled = [(n, by_name[n].rule) for n in names]
            rules = tuple((n, rule) for n, rule in ruled if rule is not None and rule != "backbone")
            out.append(
                UserModule(
                    name=row.stem,
                    data=row.data,
                    classes=names,
                    rules=rules,
                    source=self.source / PurePosixPath(row.rel),
                    explicit=True,
                )
            )
        adopted = self._parse_model_file(by_name)
        return out + ([adopted] if adopted else [])

    def data_files(self) -> dict[str, bytes]:
        """The tree's data files that carried files name by path, where they are carried (inside ``ultralytics/``)
        -> their bytes."""
        named = sorted({rel for row in self.files.values() if row.status == "carried" for rel in row.data_files})
        return {carried_data(rel): (self.source / PurePosixPath(rel)).read_bytes() for rel in named}

    def _parse_model_file(self, by_name: dict[str, NameRow]) -> UserModule | None:
        """The generated file of the branches carried as written and the tree's stride probe size (None: neither)."""
        carried = {
            registered: branch
            for registered, row in by_name.items()
            if row.rule == "branch" and self.chain and (branch := self.chain.branch_of(row.name) or self.chain.fallback)
        }
        sizes = (
            dict.fromkeys((n for n, row in by_name.items() if row.file != TORCH_FILE), self.probe_size)
            if self.probe_size
            else {}
        )
        if not carried and not sizes:
            return None
        renamed = {row.name: row.registered for row in self.names if row.status == "carried" and row.registered}
        origin = f"{self.source.parent.name}/ultralytics (Ultralytics {self.release})"
        data = branch_file.source(carried, self.chain or branches.Chain([]), renamed, sizes, origin)
        return UserModule(name=branch_file.STEM, data=data, classes=(), rules=(), explicit=True)


# -- the tree against its release ------------------------------------------------------------------------------
def _files(package: Path) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*"):
        rel = path.relative_to(package)
        if path.is_file() and not SKIP_PARTS & set(rel.parts) and path.suffix != ".pyc":
            out[rel.as_posix()] = path
    return out


def source_package(source: str | Path) -> Path:
    """The ``ultralytics/`` folder of ``--from DIR``: DIR itself, or the one folder below it that holds one."""
    given = Path(source).expanduser()
    if not given.is_dir():
        raise PatchError(
            Exit.ADOPT,
            f"--from {given} is not a folder.",
            "Give the fork's `ultralytics/` folder, or the checkout that holds it. Nothing was written.",
        )
    given = given.resolve()
    for candidate in (given, given / "ultralytics", *sorted(given.glob("*/ultralytics"))):
        if (candidate / "__init__.py").is_file() and (candidate / "nn" / "tasks.py").is_file():
            return candidate
    raise PatchError(
        Exit.ADOPT,
        f"--from {given} holds no Ultralytics tree (looked for ultralytics/__init__.py and "
        "ultralytics/nn/tasks.py there and one folder below).",
        "Give the fork's `ultralytics/` folder, or the checkout that holds it. Nothing was written.",
    )


# -- names and where they are defined ----------------------------------------------------------------------------
def _top(tree: ast.Module | None) -> list[ast.stmt]:
    """A module's statements run at import: its body, and the bodies of its top-level ``try``/``if`` blocks."""
    out: list[ast.stmt] = []
    stack = list(reversed(tree.body)) if tree is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Try):
            inner = node.body + [s for h in node.handlers for s in h.body] + node.orelse + node.finalbody
            stack.extend(reversed(inner))
        elif isinstance(node, ast.If):
            stack.extend(reversed(node.body + node.orelse))
        else:
            out.append(node)
    return out


class Resolver:
    """Follows a tree's imports to the file that defines a name (``from .X import *`` chains included)."""

    def __init__(self, package: Path):
        self.package = package
        self.trees: dict[str, ast.Module | None] = {}
        self.added: list[str] = []  # the tree's own .py files (not in its release)

    def tree(self, rel: str) -> ast.Module | None:
        if rel not in self.trees:
            try:
                self.trees[rel] = ast.parse((self.package / PurePosixPath(rel)).read_bytes())
            except (OSError, SyntaxError, ValueError):
                self.trees[rel] = None
        return self.trees[rel]

    def module_file(self, rel: str, node: ast.ImportFrom) -> str | None:
        """The file (inside the package) an ``from X import`` in ``rel`` reads, or None (another package)."""
        if node.level:
            parts = list(PurePosixPath(rel).parent.parts)
            if node.level > 1:
                parts = parts[: len(parts) - (node.level - 1)]
            dotted = parts + (node.module.split(".") if node.module else [])
        elif node.module and (node.module == "ultralytics" or node.module.startswith("ultralytics.")):
            dotted = node.module.split(".")[1:]
        else:
            return None
        base = "/".join(dotted)
        for candidate in (f"{base}.py", f"{base}/__init__.py" if base else "__init__.py"):
            if (self.package / PurePosixPath(candidate)).is_file():
                return candidate
        return None

    def define(self, rel: str, name: str, seen: frozenset = frozenset()) -> str | None:
        """The file that defines ``name`` as seen from ``rel``'s namespace (the last binding wins, as at import)."""
        if (rel, name) in seen or len(seen) > 40:
            return None
        seen = seen | {(rel, name)}
        tree = self.tree(rel)
        if tree is None:
            return None
        found = None
        for node in _top(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
                found = rel
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                found = found or rel  # (a fallback such as `X = None` after a failed import does not define X)
            elif isinstance(node, ast.ImportFrom):
                target = self.module_file(rel, node)
                for alias in node.names:
                    if alias.name == "*" and target is not None and name in self.public(target):
                        found = self.define(target, name, seen) or found
                    elif (alias.asname or alias.name) == name:
                        found = (self.define(target, alias.name, seen) if target else f"<{node.module}>") or found
        return found

    def public(self, rel: str) -> set[str]:
        """What ``from rel import *`` binds: ``__all__`` where set, else every public top-level name."""
        tree = self.tree(rel)
        if tree is None:
            return set()
        for node in _top(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                try:
                    return set(ast.literal_eval(node.value))
                except ValueError:
                    break
        names: set[str] = set()
        for node in _top(tree):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.ImportFrom):
                target = self.module_file(rel, node)
                for alias in node.names:
                    if alias.name == "*":
                        names |= self.public(target) if target else set()
                    else:
                        names.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
        return {n for n in names if not n.startswith("_")}


# -- yamls ------------------------------------------------------------------------------------------------------
def _rows_in(cfg: dict) -> list:
    rows = list(cfg.get("backbone") or []) + list(cfg.get("head") or [])
    return [r for r in rows if isinstance(r, (list, tuple)) and len(r) >= 3]


def _row_of(raw: list, values: dict | None = None, cfg: dict | None = None) -> branches.Row | None:
    """A yaml row as the branch sees it, with parse_model's own argument evaluation; ``values`` are the yaml-level
    variables the fork substitutes (the rule gets them substituted, the fork's branch reads them from ``cfg``)."""
    f, n, _, args = (list(raw) + [[]])[:4]
    if not isinstance(f, (int, list)) or not isinstance(n, int):
        return None
    values_ = []
    for a in args if isinstance(args, list) else [args]:
        if isinstance(a, str):
            local = {"nc": branches.NC, "width": branches.WIDTH, "max_channels": branches.MAX_CHANNELS}.get(a)
            if local is not None:
                a = local
            elif not (values and a in values):  # (a yaml-level variable: the fork reads it from the yaml's dict)
                with contextlib.suppress(ValueError, SyntaxError):  # a name or text: kept as the string
                    a = ast.literal_eval(a)
        values_.append(a)
    if not values:
        return branches.Row(f, n, values_)
    substituted = yaml_rows.args_of(values_, values)
    return branches.Row(f, n, substituted, d=cfg, given=values_ if substituted != values_ else None)


# -- the survey -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tree:
    """The tree being read, against its release: what the judges of its names look up."""

    resolver: Resolver
    mine: dict[str, Path]  # the tree's files (inside ultralytics/)
    theirs: dict[str, Path]  # the release's
    modified: list[str]  # the release's files the tree edited
    target: Install
    layout: Layout  # where each file is carried
    in_place: bool = False


def survey(
    source: Path, target: Install, *, in_place: bool, wheel: str | None = None, ours: Collection[str] = frozenset()
) -> Survey:
    """Everything adopt carries or not, read from the tree ``source`` (an ``ultralytics/`` folder).

    ``ours`` are files of the tree rtdetr-patch itself wrote (in place, after an earlier apply or adopt).
    """
    release = read_release(source)
    pristine = pristine_package(release, wheel)
    mine, theirs = _files(source), _files(pristine)
    modified = sorted(
        r for r in mine if r in theirs and r not in ours and mine[r].read_bytes() != theirs[r].read_bytes()
    )
    added = sorted(r for r in mine if r not in theirs and r not in ours)
    mine_tasks = (source / "nn" / "tasks.py").read_bytes()
    chain = branches.parse_model_chain(mine_tasks)
    stock = branches.parse_model_chain((pristine / "nn" / "tasks.py").read_bytes())
    if chain is None:
        raise PatchError(
            Exit.ADOPT,
            f"{source / 'nn' / 'tasks.py'} (Ultralytics {release}) has no parse_model "
            "with its module-type if/elif chain, so its module branches cannot be read.",
            "Point --from at a tree whose nn/tasks.py still has Ultralytics' parse_model. Nothing was written.",
        )
    resolver = Resolver(source)
    resolver.added = [r for r in added if r.endswith(".py")]
    stock_names = set(stock.names() if stock else ()) | bound_names(pristine / "nn" / "tasks.py")
    # the release's own names (in place the target's tasks.py is the tree's, whose imports bind the tree's names)
    native = bound_names(pristine / "nn" / "tasks.py") if in_place else taken_names(target)
    yamls, rows_of = _read_yamls(mine, added, modified, branches.reads_yaml_variables(mine_tasks))
    gained = [n for n in dict.fromkeys(chain.names()) if n not in stock_names]
    used = {n for y in yamls for n in y.uses}
    blocks = sorted(
        {str(r.args[1]) for r in rows_of.get("Blocks", []) if len(r.args) > 1 and isinstance(r.args[1], str)}
    )
    gained += sorted(
        n for n in used if n not in stock_names and n not in gained and not n.startswith(("nn.", "torch."))
    )
    # a name the release has too, which the tree's tasks.py binds to a file of its own (the extra_modules family
    # comments out Ultralytics' CBLinear and imports its own, which its branch scales): the tree's is judged
    gained += [
        n
        for n in sorted((set(chain.names()) | used) & stock_names - set(gained))
        if not n.startswith(("nn.", "torch.")) and resolver.define("nn/tasks.py", n) in resolver.added
    ]
    layout = Layout(resolver, pristine, theirs, modified, added, target=Resolver(target.package))
    tree = _Tree(resolver, mine, theirs, modified, target, layout, in_place)
    names: list[NameRow] = []
    for name in blocks:  # the blocks the series' ResNet stages build by name ([64, BasicBlock, 2, ...])
        names.append(_judge_block(name, tree))
    for name in gained:
        names.append(_judge(name, chain, native, rows_of.get(name, []), tree))
    files = _carried_files(names, tree, added)
    _register_renamed(names, files)
    _rewrite_yamls(yamls, names)
    release_tasks = (pristine if in_place else target.package) / "nn" / "tasks.py"
    size, release_size = model_init.probe_size(mine_tasks), model_init.probe_size(release_tasks.read_bytes())
    return Survey(
        source,
        release,
        pristine,
        in_place,
        modified,
        added,
        names,
        files,
        yamls,
        _edits(resolver, modified, added, files, names),
        chain=chain,
        probe_size=size if size and release_size and size != release_size else None,
    )


def _read_yamls(
    mine: dict[str, Path], added: list[str], modified: list[str], variables: bool = False
) -> tuple[list[YamlRow], dict[str, list[branches.Row]]]:
    """The model yamls the tree added or edited, and per module name its rows in them, as branches see them.

    ``variables``: the tree's parse_model substitutes yaml-level variables (``node_mode``, ``head_channel``): each
    row is read with them substituted, as the fork builds it, and the yaml keeps them for its adopted copy."""
    yamls = []
    rows_of: dict[str, list[branches.Row]] = {}
    for rel in sorted(r for r in added + modified if r.startswith(MODEL_DIR + "/") and r.endswith((".yaml", ".yml"))):
        data = mine[rel].read_bytes()
        cfg = yaml_rows.load(data)
        rows = _rows_in(cfg) if cfg is not None else None
        values = yaml_rows.variables(cfg) if variables and cfg is not None else {}
        uses = sorted({yaml_rows.module_of(r, values) for r in rows}) if rows is not None else []
        yamls.append(
            YamlRow(
                rel,
                data,
                uses,
                stock_edit=rel in modified,
                carried=rows is not None and rel not in modified,
                why="" if rows is not None else "not a model yaml (it does not parse, or has no rows)",
                variables={k: v for k, v in values.items() if _names_variable(rows or [], k)},
            )
        )
        for k, raw in enumerate(rows or []):
            row = _row_of(raw, values, cfg)
            if row is not None:
                row = dataclasses.replace(row, last=k == len(rows or []) - 1)
                rows_of.setdefault(yaml_rows.module_of(raw, values), []).append(row)
    return yamls, rows_of


def _names_variable(rows: list, key: str) -> bool:
    """Whether a row names the yaml-level variable ``key`` (as its module or an argument)."""
    return any(r[2] == key or (len(r) > 3 and isinstance(r[3], list) and key in r[3]) for r in rows)


def _register_renamed(names: list[NameRow], files: dict[str, FileRow]) -> None:
    """A name carried under another registered name: its file registers that one, bound after the file's own
    definitions (``RepNCSPELAN4_fork = RepNCSPELAN4``), so that only that name reaches tasks.py."""
    for name in names:
        if name.status != "carried" or not name.registered or name.file is None:
            continue
        row = next((r for r in files.values() if r.rel == name.file and name.name in r.names), None)
        if row is None:
            continue
        newline = b"\r\n" if b"\r\n" in row.data else b"\n"
        lines = [
            b"",
            b"# rtdetr-patch adopt: Ultralytics has its own " + name.name.encode() + b"; this file's is registered as",
            name.registered.encode() + b" = " + name.name.encode(),
        ]
        data = row.data.rstrip(b"\r\n") + newline + newline.join(lines) + newline
        try:
            ast.parse(data)
        except (SyntaxError, ValueError):  # (a file that does not parse fails its import probe, with why)
            continue
        row.data = data
        row.names[row.names.index(name.name)] = name.registered


def _rewrite_yamls(yamls: list[YamlRow], names: list[NameRow]) -> None:
    """Each carried yaml's copy for the target: its yaml-level variables substituted (the target's parse_model does
    not read them) and its rows of names carried under another name renamed; comments and line ends kept."""
    renamed = {n.name: n.registered for n in names if n.status == "carried" and n.registered}
    emptied = {n.name for n in names if n.status == "carried" and n.drops_args}
    for y in yamls:
        if not y.carried:
            continue
        y.renamed = {k: v for k, v in renamed.items() if k in y.uses}
        if y.variables or y.renamed or emptied & set(y.uses):
            adopted = yaml_rows.rewrite(y.data, y.variables, y.renamed, emptied & set(y.uses))
            y.adopted = adopted if adopted != y.data else None


def _carried_files(names: list[NameRow], tree: _Tree, added: list[str]) -> dict[str, FileRow]:
    """The files that define the carried names (carried name -> file), with every file of the tree their imports
    reach, followed transitively and ordered so that a file comes after those it imports. Each is carried where the
    tree lays it out (``carry.carried_name``), its imports pointed there; what the tree added to Ultralytics' own
    files is extracted into a file of its own. A file that cannot be carried costs itself and its importers."""
    carrier = _Carrier(tree, added)
    for name in names:
        if name.status != "carried" or name.file is None:
            continue
        if name.file == TORCH_FILE:
            layers = carrier.files.setdefault(TORCH_STEM, FileRow(TORCH_FILE, TORCH_STEM, b""))
            layers.names.append(name.name[3:])
            layers.data = torch_layers_data(layers.names)
            continue
        carrier.row_of(name.file).names.append(name.name)
    carrier.follow()
    files = carrier.files
    for row, first in carrier.clashes:  # (not a file of the survey: the one carried there is)
        why = f"its file {row.rel} would be carried at the same place as {first}, {row.target}"
        for name in names:
            if name.file == row.rel and name.status == "carried":
                name.status, name.why = "not carried", why
    for row, other in carrier.blocked:
        drop(row, files, names, f"it imports {other.rel}, which would be carried at the same place as another file")
    for row in list(files.values()):
        refused = _place_refused(row)
        if refused:
            drop(row, files, names, refused)
    return _ordered(files)


class _Carrier:
    """The files carried so far (carried name -> file), and the queue of those whose imports are not followed yet."""

    def __init__(self, tree: _Tree, added: list[str]):
        self.tree, self.added = tree, added
        self.files: dict[str, FileRow] = {}
        self.by_rel: dict[str, FileRow] = {}
        self.queue: list[FileRow] = []
        self.clashes: list[tuple[FileRow, str]] = []  # a file carried at the place of another
        self.blocked: list[tuple[FileRow, FileRow]] = []  # a file that imports one of the clashes

    def row_of(self, rel: str) -> FileRow:
        if rel in self.by_rel:
            return self.by_rel[rel]
        extracted = rel in self.tree.modified
        row = FileRow(rel, extracted_name(rel) if extracted else carried_name(rel), b"", extracted=extracted)
        self.by_rel[rel] = row
        if row.stem in self.files:
            self.clashes.append((row, self.files[row.stem].rel))
        else:
            self.files[row.stem] = row
            self.queue.append(row)
        return row

    def follow(self) -> None:
        """Each queued file carried (its bytes as carried), and the files its imports reach queued in turn."""
        while self.queue:
            row = self.queue.pop(0)
            if row.extracted:
                row.data, deps, tried = extract(self.tree.layout, row.rel)
            else:
                data = self.tree.mine[row.rel].read_bytes()
                row.data, deps, tried = carry_file(self.tree.layout, row.rel, data, row.stem)
            row.data, named = carry_data_paths(self.tree.layout, row.data, row.stem)
            row.data_files = sorted(named)
            for dep in sorted(deps | tried):
                if not _carriable(dep, self.tree, self.added):
                    continue
                other = self.row_of(dep)
                if dep in deps and self.files.get(other.stem) is not other:
                    self.blocked.append((row, other))
                elif dep in deps and other.stem not in row.deps and other is not row:
                    row.deps.append(other.stem)


def _carriable(dep: str, tree: _Tree, added: list[str]) -> bool:
    """Whether a file an import reaches is carried with the file that imports it."""
    path = PurePosixPath(dep)
    if path.name == "__init__.py":  # the folders adopt makes hold an empty one: imports through it were redirected
        return False
    if dep in tree.modified:
        return bool(tree.layout.additions(dep))
    if path.name in OUR_FILES and path.parent.as_posix() == ADDED_PACKAGE:  # rtdetr-patch's own files
        return False
    return dep in added and dep.endswith(".py")


def _place_refused(row: FileRow) -> str:
    """Why a file cannot be carried where the tree lays it out ("" if it can)."""
    if row.rel == TORCH_FILE:
        return ""
    parts = row.stem.split(".")
    if len(parts) == 1 and not can_be_stem(parts[0]):
        return f"its file name {parts[0]}.py cannot be a module of the added package"
    for part in parts:
        if not part.isidentifier() or keyword.iskeyword(part):
            return f"{row.target} cannot be imported: {part!r} is not a Python name"
    if len(parts) > 1 and (parts[0] in SHIPPED or parts[0] == "__init__"):
        return f"its folder {parts[0]} has the name of one of rtdetr-patch's own files ({ADDED_DIR}/{parts[0]}.py)"
    return ""


def _ordered(files: dict[str, FileRow]) -> dict[str, FileRow]:
    """The files, each after the files it imports (a cycle keeps the order found)."""
    out: dict[str, FileRow] = {}
    visiting: set[str] = set()

    def visit(stem: str) -> None:
        if stem in out or stem in visiting or stem not in files:
            return
        visiting.add(stem)
        for dep in files[stem].deps:
            visit(dep)
        out[stem] = files[stem]

    for stem in files:
        visit(stem)
    return out


def _edits(
    resolver: Resolver, modified: list[str], added: list[str], files: dict[str, FileRow], names: list[NameRow]
) -> list[dict]:
    """The tree's edits adopt does not carry (``{"path", "why"}``, and what an added file defines)."""
    carried_files = {f.rel for f in files.values()}
    extracted = {f.rel: f for f in files.values() if f.extracted and f.status == "carried"}
    edits: list[dict] = []
    for rel in modified:
        if rel in MANAGED or rel.startswith(MODEL_DIR + "/"):
            continue
        why = _edit_why(rel)
        if rel in extracted:
            row = extracted[rel]
            why += f"; what the tree added to it ({', '.join(_extracted_names(row)[:12])}) is carried as {row.target}"
        edits.append({"path": rel, "why": why})
    for rel in added:
        if rel.endswith(".py") and rel not in carried_files and not rel.endswith("__init__.py"):
            defined = sorted(_defined(resolver, rel))
            users = [n.name for n in names if n.file == rel]
            why = (
                ("its names are not carried: " + ", ".join(users))
                if users
                else "no yaml row or parse_model branch of the tree uses a name it defines"
            )
            edits.append({"path": rel, "why": why, "defines": defined[:12]})
    return edits


def _extracted_names(row: FileRow) -> list[str]:
    """The classes and functions an extraction holds (what the tree added to one of Ultralytics' files)."""
    tree = ast.parse(row.data) if row.data else None
    return [n.name for n in (tree.body if tree else ()) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]


def _defined(resolver: Resolver, rel: str) -> set[str]:
    tree = resolver.tree(rel)
    return {
        n.name
        for n in (tree.body if tree else ())
        if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and not n.name.startswith("_")
    }


def _edit_why(rel: str) -> str:
    kinds = {
        "nn/modules/": "Ultralytics' own modules edited in place",
        "utils/loss.py": "the loss",
        "models/utils/loss.py": "RT-DETR's loss",
        "utils/metrics.py": "the metrics",
        "engine/trainer.py": "the trainer",
        "utils/torch_utils.py": "torch utilities (FLOPs, fusing)",
        "cfg/default.yaml": "the default training settings",
    }
    what = next((v for k, v in kinds.items() if rel.startswith(k)), "a file of Ultralytics edited in place")
    return f"{what}: not carried (adopt carries parse_model's modules and the yamls)"


def drop(row: FileRow, files: dict[str, FileRow], names: list[NameRow], why: str) -> None:
    """A file is not carried: nor are its names, nor the files that import it."""
    if row.status != "carried":
        return
    row.status, row.why = "not carried", why
    for name in names:
        if name.file == row.rel and name.status == "carried":
            name.status, name.why = "not carried", why
    for other in files.values():
        if row.stem in other.deps:
            drop(other, files, names, f"it imports {row.label}, which is not carried ({why})")


def _judge_block(name: str, tree: _Tree) -> NameRow:
    if name in ("BasicBlock", "BottleNeck"):
        return NameRow(name, "ours", why="a block of rtdetr-patch's own ResNet base")
    where = _defining_file(tree.resolver, name)
    if where is None:
        return NameRow(name, "not carried", why="a ResNet block the yamls name, defined in no file of the tree")
    if where in tree.modified or where in tree.theirs:
        return NameRow(name, "not carried", file=where, why=f"defined in {where}, a file of Ultralytics")
    return NameRow(
        name, "carried", rule="block", file=where, why="a block the series' ResNet stages (Blocks) build by name"
    )


def _defining_file(resolver: Resolver, name: str) -> str | None:
    """The added file that defines ``name`` at top level (for names reached by string, not by import)."""
    hits = sorted(rel for rel in resolver.added if name in _defined(resolver, rel))
    return hits[0] if hits else None


def _judge(name: str, chain: branches.Chain, native: set[str], rows: list[branches.Row], tree: _Tree) -> NameRow:
    """Whether a name the tree's parse_model gained is carried, by which rule and from which file, or why not."""
    if name in OURS:
        return NameRow(name, "ours", why=f"built by {OURS[name]}")
    if name.startswith(("nn.", "torch.")):
        return _judge_torch_layer(name, chain, rows)
    where = tree.resolver.define("nn/tasks.py", name)
    if name in native:
        ultralytics_own = where is not None and where in tree.theirs and where not in tree.modified
        if where is None or where.startswith("<") or ultralytics_own or not where.endswith(".py"):
            return NameRow(
                name, "native", why=f"Ultralytics {tree.target.release} has its own {name}: the rows use that one"
            )
        return _judge_collision(name, where, chain, native, rows, tree)
    if where is None:
        return NameRow(name, "not carried", why="defined nowhere in the tree (no import of nn/tasks.py binds it)")
    refused = _not_carried_file(name, where, tree)
    if refused is not None:
        return refused
    return _judge_branch(name, where, chain, rows)


def _judge_collision(
    name: str, where: str, chain: branches.Chain, native: set[str], rows: list[branches.Row], tree: _Tree
) -> NameRow:
    """A name the target release defines too, which the tree defines in a file of its own: the tree's class is
    carried under another registered name (``RepNCSPELAN4_fork``), which the adopted yamls' rows name; the release's
    stays the one of that name (its stock yamls). Always the tree's, whatever the signatures: the fork's yamls were
    built with its class, and the release's may differ in its arguments (``RepNCSPELAN4(c1, c2, c5)`` against
    ``(c1, c2, c3, c4, n)``) or, with the same ones, in its layers, which no signature shows."""
    release = tree.target.release
    theirs, mine = _init_params(Resolver(tree.target.package), name), _init_params(tree.resolver, name)
    differ = (
        f" ({name}{mine} in the tree, {name}{theirs} in {release})"
        if mine and theirs and mine != theirs
        else f" ({name}{mine} in both)"
        if mine and mine == theirs
        else ""
    )
    refused = _not_carried_file(name, where, tree)
    judged = refused or _judge_branch(name, where, chain, rows)
    if judged.status != "carried":
        return NameRow(
            name,
            "native",
            file=where,
            why=f"Ultralytics {release} has its own {name}{differ}, and the tree's ({where}) is not carried "
            f"({judged.why}): the rows use the release's",
        )
    judged.registered = _fork_name(name, native)
    judged.why = (
        f"Ultralytics {release} has its own {name}{differ}: the tree's ({where}) is carried as "
        f"{judged.registered}, the name the adopted yamls' rows use; stock yamls keep the release's. {judged.why}"
    )
    return judged


def _fork_name(name: str, taken: Collection[str]) -> str:
    """The registered name of a tree's class that the target release also defines: ``<name>_fork``."""
    candidate, k = f"{name}_fork", 2
    while candidate in taken:
        candidate, k = f"{name}_fork{k}", k + 1
    return candidate


def _init_params(resolver: Resolver, name: str) -> str:
    """``(c1, c2, c5=1)``: the parameters of the class ``name`` as ``tasks.py`` reaches it (empty where unknown)."""
    rel = resolver.define("nn/tasks.py", name)
    tree = resolver.tree(rel) if rel and not rel.startswith("<") else None
    cls = next((n for n in _top(tree) if isinstance(n, ast.ClassDef) and n.name == name), None)
    init = next((n for n in (cls.body if cls else []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if init is None:
        return ""
    args = init.args.args[1:]
    defaults = [None] * (len(args) - len(init.args.defaults)) + list(init.args.defaults)
    shown = [a.arg + (f"={ast.unparse(dv)}" if dv is not None else "") for a, dv in zip(args, defaults)]
    return f"({', '.join(shown)})"


def _judge_torch_layer(name: str, chain: branches.Chain, rows: list[branches.Row]) -> NameRow:
    """A torch layer the tree's parse_model gave a branch of its own: carried when a rule expresses it."""
    branch = chain.branch_of(name)
    verdict = (
        branches.classify(branch, name, rows or branches.sample_rows(), chain.sets, chain.assigned) if branch else None
    )
    if (
        not name.startswith("nn.")
        or name.count(".") != 1
        or verdict is None
        or verdict.rule in (None, "backbone", "branch")
    ):
        return NameRow(
            name,
            "not carried",
            why=f"{name} is a torch layer whose branch no rule expresses"
            + (
                " (a torch layer is registered by a rule only, never by a branch carried as written)"
                if verdict and verdict.rule == "branch"
                else f": {verdict.why}"
                if verdict
                else ""
            ),
            code=branch.code if branch else "",
        )
    return NameRow(
        name,
        "carried",
        rule=verdict.rule,
        file=TORCH_FILE,
        why=f"torch's {name}, given a branch of its own in the tree that runs as '{verdict.rule}': "
        f"registered by that rule, so every row with {name} on this install builds as in the tree",
    )


def _not_carried_file(name: str, where: str, tree: _Tree) -> NameRow | None:
    """Why a name cannot be carried from the file ``where`` that defines it (None: it can)."""
    if where.startswith("<"):
        return NameRow(
            name, "not carried", file=None, why=f"imported from the package {where[1:-1]}, not a file of the tree"
        )
    if where in tree.modified and name in tree.layout.additions(where):
        return None  # added to one of Ultralytics' own files: carried from its extraction
    if where in tree.modified:
        return NameRow(
            name,
            "not carried",
            file=where,
            why=f"defined in {where}, a file of Ultralytics edited in place whose release defines {name} too: "
            "not carried (a class the tree added to that file is; give your version a name of its own to carry it)",
        )
    if where in tree.theirs:
        return NameRow(name, "not carried", file=where, why=f"Ultralytics' own {name} ({where}) given another branch")
    if PurePosixPath(where).name in OUR_FILES and PurePosixPath(where).parent.as_posix() == ADDED_PACKAGE:
        return NameRow(
            name, "not carried", file=where, why=f"its file {where} has the name of one of rtdetr-patch's own files"
        )
    if not where.endswith(".py"):
        return NameRow(name, "not carried", file=where, why=f"defined in {where}, not a Python file")
    return None


def _judge_branch(name: str, where: str, chain: branches.Chain, rows: list[branches.Row]) -> NameRow:
    """A name defined in a file of the tree: carried by the rule its branch (or the chain's fallback) runs as."""
    branch = chain.branch_of(name)
    final = branch is None
    if branch is None:
        branch = chain.fallback
    if branch is None:
        return NameRow(name, "not carried", file=where, why="the tree's parse_model has no branch that builds it")
    tried = rows or branches.sample_rows()
    verdict = branches.classify(branch, name, tried, chain.sets, chain.assigned)
    if verdict.rule is None:
        return NameRow(
            name, "not carried", file=where, why=f"no rule expresses its branch: {verdict.why}", code=branch.code
        )
    how = (
        f"parse_model's {'final else' if branch.code.startswith('else:') else 'branches that test no module name'} "
        "(no branch of its own)"
        if final
        else f"its branch (line {branch.line})"
    )
    rows_said = f"{len(rows)} yaml row(s)" if rows else "sample rows (no yaml of the tree uses it)"
    return NameRow(
        name,
        "carried",
        rule=verdict.rule,
        file=where,
        why=f"{how} runs as '{verdict.rule}' on {rows_said}{verdict.notes}"
        + ("; the adopted yamls' rows of it give no arguments" if verdict.drops_args else "")
        if verdict.rule != "backbone"
        else f"{how} is the blog's backbone branch",
        drops_args=verdict.drops_args,
    )
