"""Users' own backbones: ``apply --module FILE.py[:ClassName]`` (repeatable).

The blog series publishes many backbones with MobileNetV3's contract: ``forward`` returns a list of
feature maps and the instance has ``width_list``. Such a file is copied into the added package as
``nn/Addmodules/<file>.py``, its classes are added to the registry ``RTDETR_PATCH_BACKBONES`` (so
``parse_model`` builds them with no new edit) and exported to ``tasks.py``. Before anything is
written, each class is checked in a fresh process of the target interpreter: the file imports,
the class builds with default arguments and returns as many maps as ``width_list`` declares, with
those channels.
"""

from __future__ import annotations

import ast
import json
import keyword
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Exit, PatchError
from .locate import Install

RESERVED = {"MobileNetV3", "RTDETR_PATCH_BACKBONES", "RTDETR_PATCH_SAFE_MODULES", "rtdetr_patch_channels",
            "rtdetr_patch_outputs", "rtdetr_patch_module_classes", "rtdetr_patch_probe_size",
            "rtdetr_patch_safe_globals"}
PREFLIGHT = r"""
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
out = {}
try:
    import torch
    spec = importlib.util.spec_from_file_location("rtdetr_patch_user_module", sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
except BaseException as exc:
    print(json.dumps({"import": f"{type(exc).__name__}: {exc}"})); sys.exit(0)
for name in sys.argv[3:]:
    try:
        net = getattr(module, name)().eval()
        widths = list(net.width_list)
        with torch.no_grad():
            maps = net(torch.zeros(1, 3, 256, 256))
        got = [int(m.shape[1]) for m in maps]
        out[name] = None if got == widths else f"width_list says {widths}, forward returned maps with {got} channels"
    except BaseException as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"classes": out}))
"""


@dataclass(frozen=True)
class UserModule:
    name: str  # the file's stem: nn/Addmodules/<name>.py
    data: bytes
    classes: tuple[str, ...]
    source: Path | None = field(default=None, compare=False)  # the user's file, when given on this run

    @property
    def rel(self) -> str:
        return f"nn/Addmodules/{self.name}.py"


def _fail(message: str, hint: str = "Fix the file or the option; nothing was written.") -> PatchError:
    return PatchError(Exit.MODULE, message, hint)


def taken_names(install: Install) -> set[str]:
    """Names already bound at module level in tasks.py: a backbone may not shadow any of them."""
    tree = ast.parse((install.package / "nn" / "tasks.py").read_bytes())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def parse_spec(spec: str, install: Install) -> UserModule:
    """``FILE.py`` or ``FILE.py:ClassName``: the module, its classes, checked statically."""
    head, sep, tail = spec.rpartition(":")
    path_text, class_name = (head, tail) if sep and head.endswith(".py") else (spec, "")
    path = Path(path_text).expanduser()
    if path.suffix != ".py" or not path.is_file():
        raise _fail(f"--module {spec}: {path} is not a Python file.", "Give FILE.py or FILE.py:ClassName.")
    name = path.stem
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in RESERVED:
        raise _fail(f"--module {spec}: the file name '{name}' cannot be a module of the added package "
                    "(it must be a Python identifier, not starting with '_', and not MobileNetV3).",
                    "Rename the file, e.g. my_backbone.py.")
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise _fail(f"--module {spec}: {path} does not parse: {exc}")
    defined = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if sep and head.endswith(".py"):
        if not class_name.isidentifier() or keyword.iskeyword(class_name):
            raise _fail(f"--module {spec}: '{class_name}' is not a Python identifier.")
        if class_name not in defined:
            raise _fail(f"--module {spec}: {path} defines no class {class_name} "
                        f"(it defines: {', '.join(defined) or 'no class'}).")
        classes = (class_name,)
    else:
        classes = tuple(n for n, node in defined.items()
                        if any(isinstance(x, (ast.Attribute, ast.Name)) and getattr(x, "attr", getattr(x, "id", ""))
                               == "width_list" for x in ast.walk(node)))
        if not classes:
            raise _fail(f"--module {spec}: no class in {path} sets `width_list`.",
                        "Name the class: --module FILE.py:ClassName")
    clash = sorted((set(classes) & (taken_names(install) | RESERVED)))
    if clash:
        raise _fail(f"--module {spec}: {', '.join(clash)} would shadow a name that Ultralytics {install.release} "
                    "already uses in nn/tasks.py.", "Rename the class in your file.")
    return UserModule(name=name, data=data, classes=classes, source=path)


def check_modules(install: Install, modules: list[UserModule]) -> None:
    """Import each file and build each class in the target interpreter, before anything is written."""
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise _fail(f"--module given twice for the same file name: {', '.join(names)}.")
    classes = [c for m in modules for c in m.classes]
    if len(set(classes)) != len(classes):
        raise _fail(f"--module: the same class name appears twice: {', '.join(classes)}.")
    for module in modules:
        try:
            done = subprocess.run([install.python, "-c", PREFLIGHT, str(install.root), str(module.source),
                                   *module.classes], capture_output=True, text=True, timeout=600)
            answer = json.loads(done.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            raise _fail(f"--module {module.source}: could not be checked with {install.python}: {exc}",
                        "Check that this interpreter runs and has torch.")
        if "import" in answer:
            raise _fail(f"--module {module.source} does not import: {answer['import']}")
        bad = {k: v for k, v in answer["classes"].items() if v}
        if bad:
            raise _fail("; ".join(f"--module {module.source}:{k}: {v}" for k, v in bad.items()),
                        "A backbone must build with default arguments and return one map per width_list entry.")


def registry_block(modules: list[UserModule]) -> bytes:
    """The lines appended to the added package's __init__.py for the users' backbones."""
    if not modules:
        return b""
    lines = ["", "", "# Users' backbones (rtdetr-patch apply --module)"]
    for module in modules:
        lines.append(f"from .{module.name} import {', '.join(module.classes)}")
    every = sorted(c for m in modules for c in m.classes)
    lines.append(f"RTDETR_PATCH_BACKBONES = RTDETR_PATCH_BACKBONES | {{{', '.join(every)}}}")
    lines.append("from . import " + ", ".join(m.name for m in modules))
    lines.append("RTDETR_PATCH_SAFE_MODULES += [" + ", ".join(m.name for m in modules) + "]")
    lines.append(f"__all__ += {every!r}")
    return ("\n".join(lines) + "\n").encode("utf-8")
