"""The ``--module`` preflight, host side: every file checked in the target interpreter before anything is written.

Each file runs through ``target/module_probe.py`` in a fresh process of the interpreter that trains (started by
``target.runner``): the file imports, each backbone builds with default arguments and runs one forward at
640x640 on the CPU (the size these files are written for) and returns three to five maps whose channels match
its ``width_list``/``channel`` (``backbones.py``); each other module builds under its rule at probe widths and
gives the width the rule records (``rules.py``). The report gives per candidate the outputs, channels, strides,
parameters and build seconds, and every global a checkpoint of it holds beyond torch's and Ultralytics' own
(timm's layers, a module-level function kept as an attribute, ``torch.nn.functional.gelu``, a plain config
class), which restricted loading must then accept.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..install.locate import Install
from ..target import runner
from ..target.target_common import ADDED_PACKAGE, STAGE_ENV, unscaled
from .backbones import judge_backbones
from .names import SHIPPED, TEMPLATES
from .pip_names import install_hint
from .rules import judge_modules
from .user_module import TORCH_STEM, UserModule, module_error

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
        found = [
            p
            for wanted in dict.fromkeys((name, unscaled(name)))
            for p in sorted((install.package / "cfg" / "models").rglob(wanted))
        ]
        shipped = next((p for p in [path.with_name(unscaled(name)), *found] if p.is_file()), None)
        if shipped is None:
            return None
        path = shipped
    letter = re.search(r"yolo(?:e-)?v?\d+([nslmx])", Path(yaml).stem)
    return {
        "path": str(path),
        "scale": letter.group(1) if letter else None,
        "rules": {
            (f"nn.{name}" if m.name == TORCH_STEM else name): rule or None for m in modules for name, rule in m.rules
        },
        "backbones": sorted({"MobileNetV3", *(c for m in modules for c in m.backbones)}),
    }


def check_modules(install: Install, modules: list[UserModule], yaml: str | None = None) -> list[UserModule]:
    """Import each file and check each name in the target interpreter, before anything is written.

    Returns the modules with the names that passed (a file given without NAME keeps only those),
    the rule of every module (given, or inferred from its signature and confirmed by a probe build)
    and the classes from other packages that restricted loading must accept. ``yaml`` (``--yaml``) gives the
    rows that name each module: the widths it is probed at first, and the rule of an optional output width.
    """
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise module_error(
            f"--module: two files have the same name: {', '.join(names)}.",
            "Each file becomes nn/Addmodules/<name>.py: rename one of them.",
        )
    every = [c for m in modules for c in m.classes]
    if len(set(every)) != len(every):
        raise module_error(f"--module: the same name appears in two files: {', '.join(every)}.")
    rows = yaml_spec(install, yaml, modules)
    # what nn/Addmodules will hold besides the install's own: the preflight's stand-in package finds them there
    stage = [str(m.source) for m in modules if m.source is not None]
    stage += [str(TEMPLATES / f"{stem}.py") for stem in SHIPPED]
    checked = []
    for module in modules:
        if module.carried_by:  # a sibling: imported (so checked) by the preflight of the file that imports it
            checked.append(
                replace(
                    module,
                    report=(
                        {
                            "name": f"{module.name}.py",
                            "kind": "file",
                            "status": "ok",
                            "note": f"carried with {Path(module.carried_by).name}, which "
                            f"imports it (from .{module.name} import ...)",
                        },
                    ),
                )
            )
            continue
        answer = _preflight(install, module, rows, stage)
        _refuse_unimported(install, module, answer)
        checked.append(_judged(module, answer["candidates"]))
    return checked


def _preflight(install: Install, module: UserModule, rows: dict | None, stage: list[str]) -> dict[str, Any]:
    """The preflight's answer for one file (``target/module_probe.py``, in the target interpreter)."""
    ruled = dict(module.rules)
    names = [{"name": c, "rule": ruled.get(c) or None, "backbone": c not in ruled} for c in module.classes]
    try:
        with tempfile.TemporaryDirectory() as scratch:
            source = module.source
            if source is None:  # a generated module (torch layers): checked as the file it will be
                source = Path(scratch) / f"{module.name}.py"
                source.write_bytes(module.data)
            done = runner.run(
                "preflight",
                install.python,
                [str(install.root), str(source)],
                spec={"names": names, "yaml": rows},
                cwd=source.parent,
                env={STAGE_ENV: json.dumps(stage)},
            )
    except runner.NoAnswer as exc:
        raise module_error(
            f"--module {module.label}: could not be checked with {install.python}: {exc.cause} {exc.output(800)}",
            "Check that this interpreter runs and has torch.",
        )
    return done.answer


def _refuse_unimported(install: Install, module: UserModule, answer: dict[str, Any]) -> None:
    """Refuse a file the preflight could not import (or an install that does not import), saying why."""
    if "ultralytics" in answer:
        raise module_error(
            f"--module {module.label}: Ultralytics {install.release} at {install.package} does not "
            f"import with {install.python}, before the file is read: {answer['ultralytics']}",
            "Run `rtdetr-patch check` to see what is wrong with the install (a file added by an "
            "earlier --module may no longer import). Nothing was written.",
        )
    if "import" not in answer:
        return
    missing = answer.get("missing") or ""
    if missing.startswith(ADDED_PACKAGE + "."):
        stem = missing[len(ADDED_PACKAGE) + 1 :].split(".")[0]
        raise module_error(
            f"--module {module.label} imports .{stem} (a relative import of a file beside it), and "
            f"there is no {stem}.py in {module.source.parent if module.source else 'its folder'} "
            f"to carry with it ({answer['import']}).",
            f"Put {stem}.py beside it (the file of its repository that defines what it imports), "
            "or import that name from Ultralytics (`from ..modules import ...`). Nothing was written.",
        )
    if missing.startswith("ultralytics."):
        raise module_error(
            f"--module {module.label} imports {missing}, which Ultralytics {install.release} does "
            f"not have ({answer['import']}): its repository added that module to its own copy of "
            "Ultralytics.",
            "Copy what it imports from there into a file beside it and import it "
            "relatively (`from .name import X`), or carry the whole fork: `rtdetr-patch adopt --from "
            "DIR`. Nothing was written.",
        )
    if missing and missing.split(".")[0] != "ultralytics":
        raise module_error(
            f"--module {module.label} imports '{answer['missing']}', which {install.python} "
            f"does not have ({answer['import']}).",
            install_hint(answer["missing"], install),
        )
    _refuse_import_error(install, module, str(answer["import"]))


def _refuse_import_error(install: Install, module: UserModule, error: str) -> None:
    lacking = re.search(r"cannot import name '(\w+)' from '(ultralytics[\w.]*)'", error)
    if lacking:
        name, where = lacking.groups()
        raise module_error(
            f"--module {module.label} imports {name} from {where}, which Ultralytics "
            f"{install.release} does not define: its repository added {name} to its own copy of "
            f"Ultralytics.",
            f"Copy {name} (and what it needs) into a file beside it and import it "
            f"relatively (`from .name import {name}`), or carry the whole fork: `rtdetr-patch adopt "
            "--from DIR`. Nothing was written.",
        )
    raise module_error(
        f"--module {module.label}: running the file at import fails: {error}",
        "Fix the file so that `import` of it runs (code under `if __name__ == '__main__':` is "
        "not run); nothing was written.",
    )


def _judged(module: UserModule, entries: dict) -> UserModule:
    """The module with the names that passed, their rules, the names restricted loading must accept and the report;
    a refusal when any name fails (or none passes)."""
    found = {n for n, e in entries.items() if e.get("as_backbone")}  # no rule given, and it is a backbone
    if found:
        module = replace(module, rules=tuple(r for r in module.rules if r[0] not in found))
    backbones = replace(module, classes=module.backbones, rules=())
    keep, errors, rows = (
        judge_backbones(backbones, {k: v for k, v in entries.items() if k in module.backbones})
        if module.backbones
        else ([], [], [])
    )
    rules, module_errors, module_rows = judge_modules(module, entries)
    errors += module_errors
    rows += module_rows
    if errors or not (keep or rules):
        detail = "; ".join(errors) or "; ".join(f"{r['name']}: {r['status']} ({r['note']})" for r in rows)
        hint = (
            (
                "A backbone must build (with default arguments, or from a factory function), return three to "
                "five maps at 640x640 and list their channels in `width_list` or `channel`. Name the one your "
                "yaml uses: --module FILE.py:NAME. Nothing was written."
            )
            if not module_errors
            else (
                'Fix the file, or give the rule that fits: --module FILE.py:NAME=RULE (README, "Your own modules"). '
                "Nothing was written."
            )
        )
        raise module_error(f"{detail}", hint)
    external = sorted({n for name in keep + [r[0] for r in rules] for n in safe_names(module, entries[name])})
    return replace(
        module,
        classes=tuple(c for c in module.classes if c in keep or c in dict(rules)),
        rules=tuple(rules),
        safe_names=tuple(external),
        report=tuple(rows),
    )
