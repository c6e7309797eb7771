"""torch layers registered by a rule: ``--module torch.nn:Conv2d=conv``, or carried by ``adopt`` from a tree whose
``parse_model`` gives ``nn.Conv2d`` rows a branch of their own.

They are registered from one generated file (``nn/Addmodules/adopted_torch_layers.py``) that imports them, so
that rows naming ``nn.Conv2d`` build by that rule on this install.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..install.locate import Install
from ..target.target_common import SINGLE
from .names import OURS, RESERVED, taken_names
from .user_module import TORCH_STEM, UserModule, module_error


def torch_layers(rules: Sequence[tuple[str, str]]) -> UserModule:
    """The generated module that registers torch layers by their rules (names as in ``torch.nn``)."""
    names = tuple(dict.fromkeys(n for n, _ in rules))
    return UserModule(name=TORCH_STEM, data=torch_layers_data(names), classes=names, explicit=True, rules=tuple(rules))


def torch_layers_data(names: Iterable[str]) -> bytes:
    """The generated file that imports the torch layers registered by a rule."""
    return (
        '"""torch layers registered by their rule: yaml rows naming nn.NAME build by it (rtdetr-patch adopt, or '
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
    rules = _layer_rules(spec, wanted)
    models = install.package / "cfg" / "models"
    for item, _ in rules:
        shipped = sorted(
            p.relative_to(models).as_posix()
            for p in models.rglob("*.yaml")
            if re.search(rf"\bnn\.{item}\s*,", p.read_text(encoding="utf-8", errors="replace"))
        )
        if shipped:
            raise module_error(
                f"--module {spec}: Ultralytics {install.release}'s own yamls have nn.{item} rows "
                f"({', '.join(shipped[:3])}{', ...' if len(shipped) > 3 else ''}); registering it would change "
                "how they build.",
                f"Give your module its own name: a class in a file of yours that "
                f"subclasses nn.{item}, registered with --module FILE.py:NAME=RULE. Nothing was written.",
            )
    clash = sorted({n for n, _ in rules} & (taken_names(install) | RESERVED | OURS))
    if clash:
        raise module_error(
            f"--module {spec}: {', '.join(clash)} would shadow a name that Ultralytics "
            f"{install.release} already uses in nn/tasks.py.",
            "Register it through a file of yours: --module FILE.py:NAME=RULE.",
        )
    return torch_layers(rules)


def _layer_rules(spec: str, wanted: str) -> list[tuple[str, str]]:
    """(layer, rule) of ``Conv2d=conv,nn.BatchNorm2d=same``: each a torch layer's name with a single-input rule."""
    rules: list[tuple[str, str]] = []
    for part in (p.strip() for p in wanted.split(",")):
        item, _, rule = part.partition("=")
        item = item[3:] if item.startswith("nn.") else item
        if not item.isidentifier() or keyword.iskeyword(item) or not item[:1].isupper():
            raise module_error(
                f"--module {spec}: '{item}' is not the name of a torch layer (torch.nn.Conv2d is Conv2d).",
                "Give --module torch.nn:NAME=RULE, e.g. --module torch.nn:Conv2d=conv.",
            )
        if rule not in SINGLE:
            raise module_error(
                f"--module {spec}: a torch layer needs its rule, one of {', '.join(SINGLE)} (got {rule or 'none'}).",
                f"Give the rule its rows need: --module torch.nn:{item}=conv "
                "makes a row [-1, 1, nn.Conv2d, [256, 1]] build nn.Conv2d(c1, 256, 1).",
            )
        if item in dict(rules):
            raise module_error(f"--module {spec}: {item} is given twice.", "Give each name once.")
        rules.append((item, rule))
    return rules
