"""``apply --module FILE.py[:NAME[=RULE]]`` (repeatable): the option read, the file and its names checked statically.

Any module a yaml row names can be registered: ``--module FILE.py:NAME=RULE`` (several names of one
file by repeating the option, or ``FILE.py:A=conv,B``). Its rule (``target_common.RULES``) says how
``parse_model`` passes it channels; without one it comes from the constructor's parameter names
where they decide, and the preflight (``modules/preflight.py``, running ``target/module_probe.py``) confirms it.

The blog series and its readers publish many backbones with MobileNetV3's contract: ``forward``
returns a list of feature maps, and the instance lists their channels in ``width_list`` (or, in a
large sibling series, ``channel``). A yaml row names either the class or a module-level factory
function that returns such a module (``[-1, 1, repvit_m0_9, []]``); a file given without NAME registers
those. The file is copied into the added package as ``nn/Addmodules/<file>.py`` (with the files beside it
that it imports, ``siblings.py``); ``torch.nn:NAME=RULE`` registers torch layers (``torch_layers.py``).
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import Exit, PatchError
from ..install.locate import Install
from ..target.target_common import RULES
from .backbones import CONTRACT
from .names import OURS, RESERVED, can_be_stem, taken_names
from .siblings import companions
from .torch_layers import parse_torch_spec, torch_layers
from .user_module import TORCH_SPEC, TORCH_STEM, UserModule, module_error


def _sets_contract(node: ast.ClassDef) -> bool:
    """The class assigns ``self.width_list`` or ``self.channel``."""
    for sub in ast.walk(node):
        targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(sub, ast.AnnAssign) else []
        if any(isinstance(t, ast.Attribute) and t.attr in CONTRACT for t in targets):
            return True
    return False


def candidates(tree: ast.Module) -> tuple[list[str], list[str]]:
    """(classes that set width_list/channel, public functions that return one of them), in file order."""
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and _sets_contract(n)]
    functions = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        returns = any(isinstance(s, ast.Return) and s.value is not None for s in ast.walk(node))
        uses = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if returns and uses & set(classes):
            functions.append(node.name)
    return classes, functions


def parse_spec(spec: str, install: Install) -> UserModule:
    """``FILE.py``, ``FILE.py:NAME`` or ``torch.nn:NAME=RULE``: the module and the names it registers, checked
    statically."""
    head, sep, tail = spec.rpartition(":")
    if sep and head == TORCH_SPEC:
        return parse_torch_spec(spec, tail, install)
    explicit = bool(sep and head.endswith(".py"))
    path_text, wanted = (head, tail) if explicit else (spec, "")
    path, data, tree = _read_file(spec, path_text)
    if explicit:
        names, rules = _given_names(spec, path, tree, wanted)
    else:
        classes, functions = candidates(tree)
        names, rules = tuple(functions + classes), ()
        if not names:
            raise module_error(
                f"--module {spec}: no class in {path} sets `width_list` or `channel`, and no "
                "function returns such a class.",
                "Name it: --module FILE.py:NAME (a class or a factory function).",
            )
    ours = sorted(set(names) & OURS)
    if ours:
        raise module_error(
            f"--module {spec}: {', '.join(ours)} is the name of one of rtdetr-patch's own modules "
            "(MobileNetV3, ConvNormLayer, Blocks).",
            "Rename yours in the file and in your yaml (e.g. MobileNetV3Custom).",
        )
    clash = sorted(set(names) & (taken_names(install) | RESERVED))
    if clash:
        raise module_error(
            f"--module {spec}: {', '.join(clash)} would shadow a name that Ultralytics "
            f"{install.release} already uses in nn/tasks.py.",
            "Rename it in your file and in your yaml.",
        )
    return UserModule(name=path.stem, data=data, classes=names, source=path, explicit=explicit, rules=rules)


def _read_file(spec: str, path_text: str) -> tuple[Path, bytes, ast.Module]:
    """The file of a ``--module`` option: a Python file whose stem can be a module of the added package, parsed."""
    path = Path(path_text).expanduser().resolve()  # the preflight runs in the file's folder
    # a path that names no Python file is a usage error (exit 2), as click's own are; the file's content is MODULE's
    if path.suffix == ".py" and not path.exists():
        raise PatchError(
            Exit.USAGE,
            f"--module {spec}: {path} does not exist.",
            f"Check the path (it is read from the folder you run in, {Path.cwd()}), or give an absolute one. "
            "Nothing was written.",
        )
    if path.suffix != ".py" or not path.is_file():
        raise PatchError(
            Exit.USAGE,
            f"--module {spec}: {path} is not a Python file.",
            "Give FILE.py or FILE.py:NAME. Nothing was written.",
        )
    if not can_be_stem(path.stem):
        raise module_error(
            f"--module {spec}: the file name '{path.stem}' cannot be a module of the added package "
            "(it must be a Python identifier, not starting with '_', and not MobileNetV3 or ResNet, "
            "the files rtdetr-patch ships).",
            "Rename the file, e.g. my_backbone.py.",
        )
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise module_error(f"--module {spec}: {path} does not parse: {exc}")
    return path, data, tree


def _given_names(
    spec: str, path: Path, tree: ast.Module, wanted: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The names of ``FILE.py:A=conv,B`` (each defined in the file, given once) and the rules of those that are
    not backbones ("" where the preflight infers it from the signature)."""
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    classes, functions = candidates(tree)
    names: list[str] = []
    rules: list[tuple[str, str]] = []
    for part in (p.strip() for p in wanted.split(",")):
        item, _, rule = part.partition("=")
        if not item.isidentifier() or keyword.iskeyword(item):
            raise module_error(
                f"--module {spec}: '{item}' is not a Python identifier.",
                "Give FILE.py:NAME or FILE.py:NAME=RULE (several: FILE.py:A=conv,B=same).",
            )
        if item not in defined:
            listed = ", ".join(sorted(defined)) or "nothing"
            raise module_error(
                f"--module {spec}: {path} defines no class or function {item} (it defines: {listed}).",
                "Give the name the yaml row uses: a class, or a function that builds the module.",
            )
        if rule and rule not in RULES:
            raise module_error(
                f"--module {spec}: '{rule}' is not a rule; the rules are {', '.join(RULES)}.",
                'README, "Your own modules", shows the parse_model branch each rule replaces.',
            )
        if item in names:
            raise module_error(f"--module {spec}: {item} is given twice.", "Give each name once.")
        names.append(item)
        if rule != "backbone" and (rule or item not in classes + functions):
            rules.append((item, rule))  # "" : the preflight infers it from the signature
    return tuple(names), tuple(rules)


def parse_specs(specs: Sequence[str], install: Install) -> list[UserModule]:
    """Every ``--module`` option, the names of one file gathered into one module (in the order given)."""
    merged: dict[Path | None, UserModule] = {}
    for spec in specs:
        module = parse_spec(spec, install)
        before = merged.get(module.source)
        if before is None:
            merged[module.source] = module
            continue
        if not (before.explicit and module.explicit):
            raise module_error(
                f"--module {spec}: {module.source} is given twice, once without names.",
                "Name every class you need: --module FILE.py:A --module FILE.py:B.",
            )
        twice = sorted(set(before.classes) & set(module.classes))
        if twice:
            raise module_error(f"--module {spec}: {', '.join(twice)} is given twice.", "Give each name once.")
        if module.name == TORCH_STEM and module.source is None:
            merged[None] = torch_layers(before.rules + module.rules)
            continue
        classes = before.classes + tuple(c for c in module.classes if c not in before.classes)
        rules = before.rules + tuple(r for r in module.rules if r[0] not in dict(before.rules))
        merged[module.source] = replace(before, classes=classes, rules=rules)
    given = list(merged.values())
    return given + companions(given)
