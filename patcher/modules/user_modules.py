"""Users' own backbones and modules: ``apply --module FILE.py[:NAME[=RULE]]`` (repeatable).

Any module a yaml row names can be registered: ``--module FILE.py:NAME=RULE`` (several names of one
file by repeating the option, or ``FILE.py:A=conv,B``). Its rule (``target_common.RULES``) says how
``parse_model`` passes it channels; without one it comes from the constructor's parameter names
where they decide (``rule_from_params``), and the preflight builds the module under that rule at
probe widths and refuses it when the output width differs from what the rule records.

The blog series and its readers publish many backbones with MobileNetV3's contract: ``forward``
returns a list of feature maps, and the instance lists their channels in ``width_list`` (or, in a
large sibling series, ``channel``). A yaml row names either the class or a module-level factory
function that returns such a module (``[-1, 1, repvit_m0_9, []]``). The file is copied into the
added package as ``nn/Addmodules/<file>.py``; the names join the registry
``RTDETR_PATCH_BACKBONES`` (so ``parse_model`` builds them with no new edit) and are exported to
``tasks.py``.

Before anything is written, every candidate is checked in a fresh process of the target
interpreter (``PREFLIGHT``): the file imports, the candidate builds with default arguments, runs
one forward at 640x640 on the CPU (the size these files are written for) and returns three to five
maps whose channels match its ``width_list``/``channel``. The report gives per candidate the
outputs, channels, strides, parameters and build seconds, and every global a checkpoint of it
holds beyond torch's and Ultralytics' own (timm's layers, a module-level function kept as an
attribute, ``torch.nn.functional.gelu``, a plain config class), which restricted loading must then accept.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from ..errors import Exit, PatchError
from ..install.locate import Install

RESERVED = {"MobileNetV3", "ResNet", "ConvNormLayer", "Blocks", "RTDETR_PATCH_MODULES", "rtdetr_patch_module_args",
            "rtdetr_patch_deploy", "RTDETR_PATCH_BACKBONES", "RTDETR_PATCH_SAFE_MODULES", "RTDETR_PATCH_SAFE_NAMES",
            "rtdetr_patch_channels", "rtdetr_patch_outputs", "rtdetr_patch_module_classes",
            "rtdetr_patch_probe_size", "rtdetr_patch_safe_globals", "rtdetr_patch_deployable", "rtdetr_patch_is_head",
            "rtdetr_patch_preds", "rtdetr_patch_iou_loss", "rtdetr_patch_criterion", "iou_losses"}
OURS = {"MobileNetV3", "ConvNormLayer", "Blocks"}  # rtdetr-patch's own modules: a user's may not take their names
CONTRACT = ("width_list", "channel")  # the attribute that lists a backbone's output channels
PROBE = 640
PADDED = 5  # the blog's layout: a backbone's outputs end at index 4, left-padded with placeholders
STRIDES = {3: (8, 16, 32), 4: (4, 8, 16, 32), 5: (2, 4, 8, 16, 32)}  # what the blog's heads expect, per count
# import name -> what to pip install, where they differ or are common in backbone files
PIP_NAMES = {"yaml": "PyYAML", "cv2": "opencv-python", "PIL": "pillow", "sklearn": "scikit-learn",
             "skimage": "scikit-image", "mmcv": "mmcv", "timm": "timm", "einops": "einops",
             "torchsummary": "torchsummary", "thop": "thop", "pywt": "PyWavelets", "mmengine": "mmengine"}
from ..target.target_common import (  # noqa: E402
    ADDED_PACKAGE,
    IN_NAMES,
    LEAD_NAMES,
    MULTI,
    OUT_NAMES,
    RULES,
    SINGLE,
    STAGE_ENV,
    unscaled,
)

PREFLIGHT = Path(__file__).parent.parent / "target" / "preflight.py"  # runs in the target interpreter
# torch layers registered by a rule (``--module torch.nn:Conv2d=conv``, or carried by ``adopt`` from a tree whose
# parse_model gives them a branch): one generated file that imports them, so that rows naming ``nn.Conv2d`` build
# by that rule on this install
TORCH_SPEC = "torch.nn"
TORCH_STEM = "adopted_torch_layers"  # adopt in place: replaced by the pristine release, then patched (module folder)


@dataclass(frozen=True)
class UserModule:
    name: str  # the file's stem: nn/Addmodules/<name>.py
    data: bytes
    classes: tuple[str, ...]  # the names a yaml row may use: classes or factory functions
    source: Path | None = field(default=None, compare=False)  # the user's file, when given on this run
    safe_names: tuple[str, ...] = ()  # classes from other packages that an instance holds (restricted loading)
    explicit: bool = field(default=False, compare=False)  # NAME given as FILE.py:NAME
    report: tuple = field(default=(), compare=False)  # per candidate, from the preflight (for the output)
    rules: tuple[tuple[str, str], ...] = ()  # (name, rule) of every name that is not a backbone ("" until checked)
    carried_by: str = field(default="", compare=False)  # a sibling file a given file imports (`from .X import`)

    @property
    def backbones(self) -> tuple[str, ...]:
        ruled = {name for name, _ in self.rules}
        return tuple(c for c in self.classes if c not in ruled)

    def rule_of(self, name: str) -> str | None:
        return dict(self.rules).get(name)

    @property
    def label(self) -> str:
        """How messages name it: the user's file, or ``torch.nn`` for torch layers given a rule."""
        return str(self.source) if self.source is not None else TORCH_SPEC if self.name == TORCH_STEM else self.name

    @property
    def rel(self) -> str:
        return f"nn/Addmodules/{self.name}.py"


def _fail(message: str, hint: str = "Fix the file or the option; nothing was written.") -> PatchError:
    return PatchError(Exit.MODULE, message, hint)


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


def torch_layers(rules: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> UserModule:
    """The generated module that registers torch layers by their rules (names as in ``torch.nn``)."""
    names = tuple(dict.fromkeys(n for n, _ in rules))
    return UserModule(name=TORCH_STEM, data=torch_layers_data(names), classes=names, explicit=True, rules=tuple(rules))


def torch_layers_data(names) -> bytes:
    """The generated file that imports the torch layers registered by a rule."""
    return ('"""torch layers registered by their rule: yaml rows naming nn.NAME build by it (rtdetr-patch adopt, or '
            'apply --module torch.nn:NAME=RULE)."""\n\n' + "".join(f"from torch.nn import {n}\n" for n in names)
            ).encode("utf-8")


def merge_torch_layers(before: UserModule, new: UserModule) -> UserModule:
    """Torch layers registered earlier and now: one file, the new rule winning for a layer given again."""
    rules = dict(before.rules)
    rules.update(new.rules)
    merged = torch_layers(list(rules.items()))
    return replace(merged, safe_names=tuple(sorted(set(before.safe_names) | set(new.safe_names))), report=new.report)


def parse_torch_spec(spec: str, wanted: str, install: Install) -> UserModule:
    """``torch.nn:Conv2d=conv``: torch layers given a rule, for yamls whose repository gave ``nn.Conv2d`` rows a
    branch of its own. Every layer needs its rule (a single-input one), and no yaml of the release may name it: a
    registration holds for every row naming the layer, and the release's own yamls must build as shipped."""
    rules: list[tuple[str, str]] = []
    for part in (p.strip() for p in wanted.split(",")):
        item, _, rule = part.partition("=")
        item = item.removeprefix("nn.")
        if not item.isidentifier() or keyword.iskeyword(item) or not item[:1].isupper():
            raise _fail(f"--module {spec}: '{item}' is not the name of a torch layer (torch.nn.Conv2d is Conv2d).",
                        "Give --module torch.nn:NAME=RULE, e.g. --module torch.nn:Conv2d=conv.")
        if rule not in SINGLE:
            raise _fail(f"--module {spec}: a torch layer needs its rule, one of {', '.join(SINGLE)} "
                        f"(got {rule or 'none'}).", f"Give the rule its rows need: --module torch.nn:{item}=conv "
                        "makes a row [-1, 1, nn.Conv2d, [256, 1]] build nn.Conv2d(c1, 256, 1).")
        if item in dict(rules):
            raise _fail(f"--module {spec}: {item} is given twice.", "Give each name once.")
        rules.append((item, rule))
    models = install.package / "cfg" / "models"
    for item, _ in rules:
        shipped = sorted(p.relative_to(models).as_posix() for p in models.rglob("*.yaml")
                         if re.search(rf"\bnn\.{item}\s*,", p.read_text(encoding="utf-8", errors="replace")))
        if shipped:
            raise _fail(f"--module {spec}: Ultralytics {install.release}'s own yamls have nn.{item} rows "
                        f"({', '.join(shipped[:3])}{', ...' if len(shipped) > 3 else ''}); registering it would change "
                        "how they build.", f"Give your module its own name: a class in a file of yours that "
                        f"subclasses nn.{item}, registered with --module FILE.py:NAME=RULE. Nothing was written.")
    clash = sorted({n for n, _ in rules} & (taken_names(install) | RESERVED | OURS))
    if clash:
        raise _fail(f"--module {spec}: {', '.join(clash)} would shadow a name that Ultralytics {install.release} "
                    "already uses in nn/tasks.py.", "Register it through a file of yours: --module FILE.py:NAME=RULE.")
    return torch_layers(rules)


def parse_spec(spec: str, install: Install) -> UserModule:
    """``FILE.py``, ``FILE.py:NAME`` or ``torch.nn:NAME=RULE``: the module and the names it registers, checked
    statically."""
    head, sep, tail = spec.rpartition(":")
    if sep and head == TORCH_SPEC:
        return parse_torch_spec(spec, tail, install)
    explicit = bool(sep and head.endswith(".py"))
    path_text, wanted = (head, tail) if explicit else (spec, "")
    path = Path(path_text).expanduser().resolve()  # the preflight runs in the file's folder
    if path.suffix == ".py" and not path.exists():
        raise _fail(f"--module {spec}: {path} does not exist.",
                    f"Check the path (it is read from the folder you run in, {Path.cwd()}), or give an absolute one.")
    if path.suffix != ".py" or not path.is_file():
        raise _fail(f"--module {spec}: {path} is not a Python file.", "Give FILE.py or FILE.py:NAME.")
    name = path.stem
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in RESERVED:
        raise _fail(f"--module {spec}: the file name '{name}' cannot be a module of the added package "
                    "(it must be a Python identifier, not starting with '_', and not MobileNetV3 or ResNet, the files rtdetr-patch ships).",
                    "Rename the file, e.g. my_backbone.py.")
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise _fail(f"--module {spec}: {path} does not parse: {exc}")
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    rules: list[tuple[str, str]] = []
    if explicit:
        classes, functions = candidates(tree)
        names_list = []
        for part in (p.strip() for p in wanted.split(",")):
            item, _, rule = part.partition("=")
            if not item.isidentifier() or keyword.iskeyword(item):
                raise _fail(f"--module {spec}: '{item}' is not a Python identifier.",
                            "Give FILE.py:NAME or FILE.py:NAME=RULE (several: FILE.py:A=conv,B=same).")
            if item not in defined:
                listed = ", ".join(sorted(defined)) or "nothing"
                raise _fail(f"--module {spec}: {path} defines no class or function {item} (it defines: {listed}).",
                            "Give the name the yaml row uses: a class, or a function that builds the module.")
            if rule and rule not in RULES:
                raise _fail(f"--module {spec}: '{rule}' is not a rule; the rules are {', '.join(RULES)}.",
                            "README, \"Your own modules\", shows the parse_model branch each rule replaces.")
            if item in names_list:
                raise _fail(f"--module {spec}: {item} is given twice.", "Give each name once.")
            names_list.append(item)
            if rule != "backbone" and (rule or item not in classes + functions):
                rules.append((item, rule))  # "" : the preflight infers it from the signature
        names = tuple(names_list)
    else:
        classes, functions = candidates(tree)
        names = tuple(functions + classes)
        if not names:
            raise _fail(f"--module {spec}: no class in {path} sets `width_list` or `channel`, and no function "
                        "returns such a class.", "Name it: --module FILE.py:NAME (a class or a factory function).")
    ours = sorted(set(names) & OURS)
    if ours:
        raise _fail(f"--module {spec}: {', '.join(ours)} is the name of one of rtdetr-patch's own modules (MobileNetV3, ConvNormLayer, Blocks).",
                    "Rename yours in the file and in your yaml (e.g. MobileNetV3Custom).")
    clash = sorted(set(names) & (taken_names(install) | RESERVED))
    if clash:
        raise _fail(f"--module {spec}: {', '.join(clash)} would shadow a name that Ultralytics {install.release} "
                    "already uses in nn/tasks.py.", "Rename it in your file and in your yaml.")
    return UserModule(name=name, data=data, classes=names, source=path, explicit=explicit, rules=tuple(rules))


def parse_specs(specs: tuple[str, ...] | list[str], install: Install) -> list[UserModule]:
    """Every ``--module`` option, the names of one file gathered into one module (in the order given)."""
    merged: dict[Path, UserModule] = {}
    for spec in specs:
        module = parse_spec(spec, install)
        before = merged.get(module.source)
        if before is None:
            merged[module.source] = module
            continue
        if not (before.explicit and module.explicit):
            raise _fail(f"--module {spec}: {module.source} is given twice, once without names.",
                        "Name every class you need: --module FILE.py:A --module FILE.py:B.")
        twice = sorted(set(before.classes) & set(module.classes))
        if twice:
            raise _fail(f"--module {spec}: {', '.join(twice)} is given twice.", "Give each name once.")
        if module.name == TORCH_STEM and module.source is None:
            merged[None] = torch_layers(before.rules + module.rules)
            continue
        classes = before.classes + tuple(c for c in module.classes if c not in before.classes)
        rules = before.rules + tuple(r for r in module.rules if r[0] not in dict(before.rules))
        merged[module.source] = replace(before, classes=classes, rules=rules)
    given = list(merged.values())
    return given + companions(given)


# The files rtdetr-patch ships in nn/Addmodules (plan.add_files copies every one): a relative import of them finds
# ours, and a user's file may not take their names (RESERVED holds them)
TEMPLATES = Path(str(resources.files("rtdetr_patch.templates").joinpath("Addmodules")))
SHIPPED = tuple(sorted(p.stem for p in TEMPLATES.glob("*.py") if p.stem != "__init__"))


def sibling_imports(tree: ast.Module, folder: Path) -> list[tuple[str, Path | None]]:
    """(stem, file beside it or None) for every module a file imports from its own folder: relatively
    (``from .X import ...``, ``from .X.Y import ...``, ``from . import X``) or by the name it will have once
    copied (``from ultralytics.nn.Addmodules.X import ...``, the blog series' own spelling), at any depth of
    the file (inside ``try:`` blocks and functions too)."""
    found: dict[str, Path | None] = {}
    package = ADDED_PACKAGE + "."
    for node in ast.walk(tree):
        stems: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            stems = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(package):
            stems = [node.module[len(package):].split(".")[0]]  # `from ultralytics.nn.Addmodules.X import ...`
        elif isinstance(node, ast.Import):
            stems = [a.name[len(package):].split(".")[0] for a in node.names if a.name.startswith(package)]
        for stem in stems:
            path = folder / f"{stem}.py"
            found.setdefault(stem, path if path.is_file() else None)
    return list(found.items())


def companions(given: list[UserModule]) -> list[UserModule]:
    """The files beside the given ones that they import relatively, and those files' own, copied with them.

    The series' ``extra_modules`` files import one another (``from .attention import EMA``): each such sibling
    becomes ``nn/Addmodules/<stem>.py`` beside the file that imports it, so the import resolves there as it did
    in the repository. A sibling registers no names (only the files given with ``--module`` do). The shipped
    ``MobileNetV3``/``ResNet`` answer imports of those names; a sibling that is not there is left to the
    preflight, which names it.
    """
    seen = {m.source for m in given if m.source is not None}
    names = {m.name for m in given}
    queue = [m for m in given if m.source is not None]
    out: list[UserModule] = []
    while queue:
        importer = queue.pop(0)
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
            if not stem.isidentifier() or keyword.iskeyword(stem) or stem.startswith("_") or stem in RESERVED \
                    or stem in names:
                raise _fail(f"{where}: {importer.source.name} imports .{stem}, the file {path} beside it, which "
                            f"cannot be carried into nn/Addmodules under that name (it is rtdetr-patch's own, or "
                            f"another file's of this apply).", "Rename the sibling and its import. Nothing was written.")
            data = path.read_bytes()
            try:
                ast.parse(data, filename=str(path))
            except (SyntaxError, ValueError) as exc:
                raise _fail(f"{where}: {importer.source.name} imports .{stem}, and {path} does not parse: {exc}")
            module = UserModule(name=stem, data=data, classes=(), source=path, explicit=True,
                                carried_by=str(importer.source))
            names.add(stem)
            out.append(module)
            queue.append(module)
    return out


def pip_package(missing: str) -> str:
    """What to ``pip install`` for a module that failed to import (``cv2`` is opencv-python)."""
    top = missing.split(".")[0]
    return PIP_NAMES.get(top, top)


def _install_hint(missing: str, install: Install) -> str:
    package = pip_package(missing)
    return (f"The file needs the package '{package}'. Install it into the interpreter that trains: "
            f"{install.python} -m pip install {package} ; then run apply again. Nothing was written.")


def _judge(module: UserModule, entries: dict) -> tuple[list[str], list[str], list[dict]]:
    """(names to register, errors, report rows) from the preflight's answer."""
    keep, errors, rows = [], [], []
    for name in module.classes:
        entry = entries.get(name, {"error": "was not checked"})
        row = {"name": name, "kind": entry.get("kind", "?"), **{k: entry.get(k) for k in
               ("channels", "strides", "params", "build_s", "attr")}, "status": "ok", "note": ""}
        rows.append(row)
        where = f"--module {module.label}:{name}"
        if "needs_args" in entry:
            row["status"] = "needs arguments"
            row["note"] = "give them in the yaml row"
            if module.explicit:
                keep.append(name)  # the user named it: its yaml row carries the arguments
            continue
        error = refusal(entry)
        if error is None and entry["widths"] != entry["channels"]:
            row["note"] = f"{entry['attr']} is already padded to five entries: {entry['widths']}"
        if error is not None:
            row["status"], row["note"] = "refused", error
            if module.explicit or not any("needs_args" not in e and refusal(e) is None for e in entries.values()):
                # (a file given without NAME: a failing class is only reported when another candidate passes)
                errors.append(f"{where}: {error}")
            continue
        strides = tuple(int(s) if float(s).is_integer() else s for s in entry["strides"])
        if strides != STRIDES[len(strides)]:
            first = PADDED - len(strides)
            expected = STRIDES[len(strides)]
            odd = [f"index {first + i} has stride {s} (expected {e})" for i, (s, e) in enumerate(zip(strides, expected))
                   if s != e]
            row["status"] = "ok, unusual strides"
            row["note"] = (f"{'; '.join(odd)}: check which indices your yaml's head takes "
                           f"(the blog's head takes P3/P4/P5 from indices 2, 3, 4)")
        keep.append(name)
    return keep, errors, rows


def refusal(entry: dict) -> str | None:
    """Why a built candidate (a preflight entry, not one that needs arguments) is refused, or None."""
    if entry.get("error") is not None:
        return entry["error"]
    if entry.get("attr") is None:
        return "has neither `width_list` nor `channel` (the list of its output channels)"
    if len(entry["channels"]) not in STRIDES:
        return (f"returns {len(entry['channels'])} feature maps; three to five are needed (they take indices "
                "2-4, 1-4 or 0-4 in the blog's yaml layout)")
    if not widths_match(entry["widths"], entry["channels"]):
        return (f"{entry['attr']} says {entry['widths']}, but forward at {PROBE}x{PROBE} returned maps "
                f"with {entry['channels']} channels")
    return None


def widths_match(widths: list, channels: list) -> bool:
    """The declared widths fit the maps, both left-padded to five as parse_model and the layer loops do."""
    if not widths or len(widths) > PADDED or len(channels) > len(widths):
        return False
    return widths == channels or (len(widths) == PADDED and widths[PADDED - len(channels):] == channels)


# Globals restricted loading accepts without us: torch's layers, Ultralytics' own, and getattr (wrapped).
ACCEPTED = ("torch.nn.modules.", "ultralytics.")


def safe_names(module: UserModule, entry: dict) -> set[str]:
    """Dotted names restricted loading must accept for a checkpoint of this backbone, as installed."""
    names = set(entry.get("external", []))
    own = f"{ADDED_PACKAGE}.{module.name}."  # the preflight imports the file under the name it is installed as
    for name in entry.get("globals", []):
        if not name.startswith(own) and (name.startswith(ACCEPTED) or name == "builtins.getattr"):
            continue
        names.add(name)
    return names


def yaml_spec(install: Install, yaml: str | None, modules: list[UserModule]) -> dict | None:
    """What the preflight needs to read the ``--yaml`` rows that name the modules (None: no such yaml file).

    ``yaml`` is the user's file (a path) or a name shipped in the install's ``cfg/models``; a YOLO name's scale
    letter (``yolov8s-x.yaml``) picks the scale, as Ultralytics does, else the yaml's first scale is read.
    """
    if not yaml:
        return None
    path = Path(yaml)
    if not path.is_file():
        name = path.name
        found = [p for wanted in dict.fromkeys((name, unscaled(name)))
                 for p in sorted((install.package / "cfg" / "models").rglob(wanted))]
        candidates_ = [path.with_name(unscaled(name))] + found
        path = next((p for p in candidates_ if p.is_file()), None)
        if path is None:
            return None
    letter = re.search(r"yolo(?:e-)?v?\d+([nslmx])", Path(yaml).stem)
    return {"path": str(path), "scale": letter.group(1) if letter else None,
            "rules": {(f"nn.{name}" if m.name == TORCH_STEM else name): rule or None for m in modules
                      for name, rule in m.rules},
            "backbones": sorted({"MobileNetV3", *(c for m in modules for c in m.backbones)})}


def check_modules(install: Install, modules: list[UserModule], yaml: str | None = None) -> list[UserModule]:
    """Import each file and check each name in the target interpreter, before anything is written.

    Returns the modules with the names that passed (a file given without NAME keeps only those),
    the rule of every module (given, or inferred from its signature and confirmed by a probe build)
    and the classes from other packages that restricted loading must accept. ``yaml`` (``--yaml``) gives the
    rows that name each module: the widths it is probed at first, and the rule of an optional output width.
    """
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise _fail(f"--module: two files have the same name: {', '.join(names)}.",
                    "Each file becomes nn/Addmodules/<name>.py: rename one of them.")
    every = [c for m in modules for c in m.classes]
    if len(set(every)) != len(every):
        raise _fail(f"--module: the same name appears in two files: {', '.join(every)}.")
    checked = []
    rows = yaml_spec(install, yaml, modules)
    # what nn/Addmodules will hold besides the install's own: the preflight's stand-in package finds them there
    stage = [str(m.source) for m in modules if m.source is not None]
    stage += [str(TEMPLATES / f"{stem}.py") for stem in SHIPPED]
    env = {**os.environ, STAGE_ENV: json.dumps(stage)}
    for module in modules:
        if module.carried_by:  # a sibling: imported (so checked) by the preflight of the file that imports it
            checked.append(replace(module, report=({"name": f"{module.name}.py", "kind": "file", "status": "ok",
                                                    "note": f"carried with {Path(module.carried_by).name}, which "
                                                            f"imports it (from .{module.name} import ...)"},)))
            continue
        done = None
        ruled = dict(module.rules)
        spec = [{"name": c, "rule": ruled.get(c) or None, "backbone": c not in ruled} for c in module.classes]
        try:
            with tempfile.TemporaryDirectory() as scratch:
                source = module.source
                if source is None:  # a generated module (torch layers): checked as the file it will be
                    source = Path(scratch) / f"{module.name}.py"
                    source.write_bytes(module.data)
                done = subprocess.run([install.python, str(PREFLIGHT), str(install.root), str(source),
                                       json.dumps(spec), *([json.dumps(rows)] if rows else [])], capture_output=True,
                                      text=True, timeout=900, cwd=str(source.parent), env=env)
            answer = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            tail = (done.stderr or "")[-800:] if done is not None else ""
            raise _fail(f"--module {module.label}: could not be checked with {install.python}: {exc} {tail}",
                        "Check that this interpreter runs and has torch.")
        if "ultralytics" in answer:
            raise _fail(f"--module {module.label}: Ultralytics {install.release} at {install.package} does not import "
                        f"with {install.python}, before the file is read: {answer['ultralytics']}",
                        "Run `rtdetr-patch check` to see what is wrong with the install (a file added by an earlier "
                        "--module may no longer import). Nothing was written.")
        if "import" in answer:
            missing = answer.get("missing") or ""
            if missing.startswith(ADDED_PACKAGE + "."):
                stem = missing[len(ADDED_PACKAGE) + 1:].split(".")[0]
                raise _fail(f"--module {module.label} imports .{stem} (a relative import of a file beside it), and "
                            f"there is no {stem}.py in {module.source.parent if module.source else 'its folder'} "
                            f"to carry with it ({answer['import']}).",
                            f"Put {stem}.py beside it (the file of its repository that defines what it imports), or "
                            "import that name from Ultralytics (`from ..modules import ...`). Nothing was written.")
            if missing.startswith("ultralytics."):
                raise _fail(f"--module {module.label} imports {missing}, which Ultralytics {install.release} does not "
                            f"have ({answer['import']}): its repository added that module to its own copy of "
                            "Ultralytics.", "Copy what it imports from there into a file beside it and import it "
                            "relatively (`from .name import X`), or carry the whole fork: `rtdetr-patch adopt --from "
                            "DIR`. Nothing was written.")
            if missing and missing.split(".")[0] != "ultralytics":
                raise _fail(f"--module {module.label} imports '{answer['missing']}', which {install.python} "
                            f"does not have ({answer['import']}).", _install_hint(answer["missing"], install))
            lacking = re.search(r"cannot import name '(\w+)' from '(ultralytics[\w.]*)'", answer["import"])
            if lacking:
                name, where = lacking.groups()
                raise _fail(f"--module {module.label} imports {name} from {where}, which Ultralytics {install.release} "
                            f"does not define: its repository added {name} to its own copy of Ultralytics.",
                            f"Copy {name} (and what it needs) into a file beside it and import it relatively (`from "
                            f".name import {name}`), or carry the whole fork: `rtdetr-patch adopt --from DIR`. "
                            "Nothing was written.")
            raise _fail(f"--module {module.label}: running the file at import fails: {answer['import']}",
                        "Fix the file so that `import` of it runs (code under `if __name__ == '__main__':` is "
                        "not run); nothing was written.")
        entries = answer["candidates"]
        found = {n for n, e in entries.items() if e.get("as_backbone")}  # no rule given, and it is a backbone
        if found:
            module = replace(module, rules=tuple(r for r in module.rules if r[0] not in found))
        backbones = replace(module, classes=module.backbones, rules=())
        keep, errors, rows = _judge(backbones, {k: v for k, v in entries.items() if k in module.backbones}) \
            if module.backbones else ([], [], [])
        rules, module_errors, module_rows = _judge_modules(module, entries)
        errors += module_errors
        rows += module_rows
        if errors or not (keep or rules):
            detail = "; ".join(errors) or "; ".join(f"{r['name']}: {r['status']} ({r['note']})" for r in rows)
            hint = ("A backbone must build (with default arguments, or from a factory function), return three to "
                    "five maps at 640x640 and list their channels in `width_list` or `channel`. Name the one your "
                    "yaml uses: --module FILE.py:NAME. Nothing was written.") if not module_errors else \
                ("Fix the file, or give the rule that fits: --module FILE.py:NAME=RULE (README, \"Your own modules\"). Nothing "
                 "was written.")
            raise _fail(f"{detail}", hint)
        external = sorted({n for name in keep + [r[0] for r in rules] for n in safe_names(module, entries[name])})
        checked.append(replace(module, classes=tuple(c for c in module.classes if c in keep or c in dict(rules)),
                               rules=tuple(rules), safe_names=tuple(external), report=tuple(rows)))
    return checked


def _judge_modules(module: UserModule, entries: dict) -> tuple[list[tuple[str, str]], list[str], list[dict]]:
    """((name, rule) to register, errors, report rows) for the names that are not backbones."""
    rules, errors, rows = [], [], []
    for name, given in module.rules:
        entry = entries.get(name, {"error": "was not checked"})
        rule = entry.get("rule") or given or None
        row = {"name": name, "kind": entry.get("kind", "?"), "rule": rule, "status": "ok", "note": "",
               "inferred": bool(entry.get("inferred"))}
        rows.append(row)
        where = f"--module {module.label}:{name}"
        if entry.get("error"):
            row["status"], row["note"] = "refused", entry["error"]
            errors.append(f"{where}: {entry['error']}")
            continue
        if rule is None:
            row["status"] = "refused"
            row["note"] = (f"the rule cannot be told from its signature ({', '.join(entry.get('params_names', []))}): "
                           f"{entry.get('why', '')}")
            errors.append(f"{where}: {row['note']}; give one: {name}=conv, =same, =plain, or for several inputs "
                          f"={', ='.join(MULTI)}")
            continue
        why = f" ({entry['why']})" if entry.get("inferred") and entry.get("why") else ""
        said = f"{entry['why']}; " if why else ""
        tried = _tried(entry)
        source = entry.get("probe_source")
        at_row = f" (at {source})" if source and source not in ("the default probe", "equal widths") else ""
        if "build_error" in entry and rule in SINGLE:
            row["status"] = "refused"
            row["note"] = f"under the rule '{rule}'{why}, {entry['build_error']}{at_row}{tried}"
            errors.append(f"{where}: {row['note']}. {_other_rules(rule, entry)}")
            continue
        if "forward_error" in entry and "returned NoneType" in entry["forward_error"]:
            row["status"], row["note"] = "refused", f"{entry['forward_error']} (does its forward lack a `return`?)"
            errors.append(f"{where}: {row['note']}")
            continue
        # (a build error here is a several-input module: the probe's two inputs may not be what it takes)
        unprobed = entry.get("probe") or ("it needs the arguments of its yaml row" if "needs_args" in entry else
                                          entry.get("forward_error") or entry.get("build_error"))
        if unprobed:
            row["note"] = f"{said}not probed here ({unprobed}{tried}): the smoke run of your yaml builds it"
            rules.append((name, rule))
            continue
        if entry["measured"] != entry["expected"]:
            fits = _fitting(entry)
            row["status"] = "refused"
            row["note"] = (f"under the rule '{rule}'{why}, {entry['probe_call']}{at_row} on inputs of "
                           f"{entry['probe_inputs']} channels returns {entry['measured']} channels, but the rule records "
                           f"{entry['expected']} for the next row{tried}"
                           + (f"; the rule that fits is '{fits}': {name}={fits}" if fits else ""))
            errors.append(f"{where}: {row['note']}")
            continue
        first = (entry.get("tries") or [{}])[0]
        at = "" if entry.get("probe_source") in (None, "the default probe") else f" (built at {entry['probe_source']}"
        if at and first.get("probe_call") != entry["probe_call"]:
            at += f"; {_outcome(first)}"
        row["note"] = (f"{said}{entry['probe_call']} gives {entry['measured']} channels, as the rule says"
                       f"{at}{')' if at else ''}")
        rules.append((name, rule))
    return rules, errors, rows


def _outcome(attempt: dict) -> str:
    """One probe build, in a few words: ``C2PSA(64, 128, 1): AssertionError``, ``X(64) gives 3 channels``."""
    for key in ("build_error", "forward_error", "needs_args"):
        if key in attempt:
            return attempt[key][:160]
    return f"{attempt['probe_call']} gives {attempt['measured']} channels where the rule records {attempt['expected']}"


def _tried(entry: dict) -> str:
    """The other widths the preflight built a module at, when none fitted (empty when it was built once)."""
    others = [t for t in entry.get("tries") or [] if t.get("probe_call") != entry.get("probe_call")]
    if not others:
        return ""
    return "; also tried " + "; ".join(f"{t['source']}: {_outcome(t)}" for t in others)


def _fitting(entry: dict) -> str | None:
    """A rule whose recorded width matches what the probe measured (same inputs), if one does."""
    measured, params = entry["measured"], entry.get("params_names") or []
    widths, out = entry.get("probe_inputs") or [None], entry.get("probe_out")
    if measured == out and measured != widths[0] and len(params) > 1 and params[1] in OUT_NAMES:
        return "conv"  # it does take an output width
    if measured == widths[0]:
        return "same" if params and (params[0] in IN_NAMES or params[0] in LEAD_NAMES) else "plain"
    return None


LISTS = re.compile(r"\blist\b|tuple|subscript|index|iterable|unpack|len\(\)|zip", re.I)


def _other_rules(rule: str, entry: dict) -> str:
    """The rules that could build a module refused under ``rule``: only those whose arguments its constructor
    takes, and the several-input ones only where the failure or a parameter's name says it wanted a list."""
    fits = [r for r in entry.get("binds") or RULES if r != rule]
    errors = " ".join(t.get("build_error", "") + t.get("forward_error", "") for t in entry.get("tries") or [])
    listed = LISTS.search(errors) or any("list" in p or p in ("chs", "dims", "widths") for p in
                                         entry.get("params_names") or [])
    several = [r for r in MULTI if r in fits and r != "head"] if listed or not entry.get("params_names") else []
    single = [r for r in ("conv", "conv-n", "same", "plain") if r in fits]
    parts = []
    if several:
        parts.append("If it takes several inputs (a list), give a several-input rule: " + ", ".join(several))
    if single:
        parts.append("the single-input rules its constructor takes: " + ", ".join(f"={r}" for r in single))
    if not parts:
        return (f"No other rule's arguments fit its constructor, and under '{rule}' it builds at none of the widths "
                "tried: give --yaml with your model yaml, so that it is probed at its rows' widths, or make it build "
                "at the widths its rows give it")
    return "; ".join(parts)


def registry_block(modules: list[UserModule]) -> bytes:
    """The lines appended to the added package's __init__.py for the users' backbones and modules.

    The file's module is taken from ``sys.modules`` by its full name, never with ``from . import
    name``: when a file and a class share a name (``FasterNet.py`` holding ``class FasterNet``),
    the package attribute is the class, not the module. Only the names given are imported, so a
    file's other exports (its own ``Conv`` or ``DWConv``) never reach ``tasks.py``.
    """
    if not modules:
        return b""
    lines = ["", "", "# Users' backbones and modules (rtdetr-patch apply --module)", "import importlib as _importlib", ""]
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
    for module in modules:
        lines.append(f"RTDETR_PATCH_SAFE_MODULES.append(_importlib.import_module(__name__ + {'.' + module.name!r}))")
    names = sorted({n for m in modules for n in m.safe_names})
    if names:
        lines.append(f"RTDETR_PATCH_SAFE_NAMES += {names!r}")
    exported = sorted(backbones + [n for n, _ in ruled])
    if exported:
        lines.append(f"__all__ += {exported!r}")
    return ("\n".join(lines) + "\n").encode("utf-8")
