"""The file that carries a tree's own ``parse_model`` branches, and its stride probe size, onto the target.

Where no channel rule does what a tree's branch does (``c2 = ch[f[1]]; args = [c2, *args]`` for CGAFusion,
``c2 = ch[f] * 4`` for WaveletPool), ``branches.classify`` gives the name the rule ``branch``: the branch itself,
written here as a function of the row (``rtdetr_patch_module_args``' parameters), which the added package's
``rtdetr_patch_module_args`` calls for a row of that module. It runs on the target as it ran in the tree, with the
widths of the rows before: nothing is re-derived. The names it compares ``m`` with are looked up, when a row is
built, in the globals of the target's ``tasks.py`` (where ``parse_model`` resolves a yaml's names), the tree's
renamed classes under their registered names (``RepNCSPELAN4_fork``).

The tree's ``DetectionModel`` may probe its strides at another image size than the release's (the
``extra_modules`` family probes at 640: attention blocks with position tables built for 640 fail at 256): the
carried names keep the tree's size (``PROBE_SIZES``); the release's own models keep the release's.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping

from ..modules.user_module import BRANCHES_STEM as STEM  # nn/Addmodules/adopted_parse_model.py
from .branches import CALL, GIVEN, HELPERS, LOCALS, Branch, Chain, loads, names_read, not_given

__all__ = ["STEM", "source"]


HEADER = '''"""{origin}'s parse_model, as rtdetr-patch adopt carried it: the branches no channel rule expresses, and the
stride probe size of the models that hold its modules.

Each ``branch_*`` function is one branch of that parse_model, as written there, for the modules ``BRANCHES`` lists
(registered with the rule "branch"): ``rtdetr_patch_module_args`` calls it for their rows and records the ``c2`` it
leaves (as it was, the previous row's width, where the branch does not set it). The names a branch compares ``m``
with are those of ``tasks.py`` when the row is built.

This file is written by rtdetr-patch; ``rtdetr-patch revert`` removes the whole folder.
"""

import math
import sys

RENAMED = {renamed!r}  # the tree's classes that this release also defines, registered under these names


class _Absent:
    """A name this release's tasks.py does not bind (it is no row's module), or a value of the tree's parse_model
    that a carried branch is not given."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{{self.name}}: not in this release>"


def _found(*names):
    """What tasks.py binds to each name (a dotted name is followed attribute by attribute), when a row is built."""
    scope = vars(sys.modules["ultralytics.nn.tasks"])
    out = []
    for name in names:
        head, *rest = name.split(".")
        obj = scope.get(RENAMED.get(head, head), _Absent(name))
        for attr in rest:
            obj = getattr(obj, attr, _Absent(name))
        out.append(obj)
    return tuple(out)


def make_divisible(x, divisor):
    """The nearest multiple of ``divisor`` at or above ``x`` (Ultralytics' make_divisible)."""
    return math.ceil(x / divisor) * divisor
'''


def source(
    carried: Mapping[str, Branch],
    chain: Chain,
    renamed: Mapping[str, str],
    probe_sizes: Mapping[str, int],
    origin: str,
) -> bytes:
    """The file's text: ``carried`` maps each registered name to the branch of the tree's ``chain`` that builds it
    (several names may share one), ``renamed`` the tree's name -> registered name, ``probe_sizes`` registered
    name -> the tree's stride probe size."""
    parts = [HEADER.format(origin=origin, renamed=dict(sorted(renamed.items())))]
    functions: dict[int, str] = {}
    for branch in carried.values():
        if branch.line not in functions:
            functions[branch.line] = f"branch_{branch.line}"
            names = sorted(n for n, b in carried.items() if b is branch)
            parts.append(_function(functions[branch.line], branch, chain, names))
    entries = ", ".join(f"{n!r}: {functions[b.line]}" for n, b in sorted(carried.items()))
    parts.append(f"\nBRANCHES = {{{entries}}}  # registered name -> its branch\n")
    sizes = dict(sorted(probe_sizes.items()))
    parts.append(f"PROBE_SIZES = {sizes!r}  # registered name -> the tree's stride probe size\n")
    text = "\n".join(parts)
    ast.parse(text)  # (every part is generated from parsed code: a failure here is a bug, not the tree's)
    return text.encode("utf-8")


def _function(fname: str, branch: Branch, chain: Chain, names: list[str]) -> str:
    """One branch as a function of the row: the state parse_model has when the chain starts (a placeholder for what
    it cannot be given, which ``branches.classify`` found it does not need on the tree's rows), the names it reads
    bound from tasks.py, its body as written, and what it leaves."""
    lines = [
        "",
        f"def {fname}({', '.join(CALL)}):",
        f'    """The branch at line {branch.line} of its nn/tasks.py, for {", ".join(names)}."""',
    ]
    read = loads(branch)
    given = [k for k in GIVEN if k in read or k == "c2"]
    lines.append(f"    {', '.join(given)} = {', '.join(GIVEN[k] for k in given)}")
    absent = not_given(branch, chain.assigned, chain.sets)
    for name in absent:
        lines.append(f"    {name} = _Absent({name!r})  # parse_model's, not given here")
    for name in sorted(names_read(branch) - set(LOCALS) - set(HELPERS) - _BUILTINS - set(absent)):
        listed = chain.sets.get(name)
        if listed is not None:
            lines.append(f"    {name} = _found({', '.join(map(repr, listed))})  # a tuple of the tree's parse_model")
        else:
            lines.append(f"    {name} = _found({name!r})[0]")
    body = ast.unparse(ast.Module(body=branch.body, type_ignores=[]))
    lines += ["    " + line if line else line for line in body.splitlines()]
    lines.append("    return c2, args, n")
    return "\n".join(lines) + "\n"


_BUILTINS = set(dir(builtins))
