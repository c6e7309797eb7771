"""The rows of a fork's model yaml as its own ``parse_model`` reads them, and the adopted copy's rows rewritten.

Two things a fork's yaml may hold that the target's ``parse_model`` does not read as the fork did:

* **yaml-level variables**: keys of the yaml itself that its rows name, which the fork's ``parse_model``
  substitutes from the yaml's dict ``d`` (``node_mode: C2f`` with rows ``[-1, 3, node_mode, [head_channel]]``,
  ``head_channel: 256``, ``fusion_mode: bifpn`` read by ``args[0] = d[args[0]]``). Only a fork whose
  ``parse_model`` reads ``d`` with a key it computes does this (:func:`branches.reads_yaml_variables`), and
  only keys that are not Ultralytics' own (``nc``, ``scales``...) count.
* **names carried under another name**: a name the target release defines with other arguments
  (``RepNCSPELAN4``) is carried from the fork as a distinct registered name; the adopted copy's rows use it.
* **arguments the fork's branch never reads** (``SDI``: ``args = [[ch[x] for x in f]]`` on rows ``[..., SDI, [1]]``):
  the rule that expresses the branch passes a row's arguments on, so the adopted copy's rows give none.

The adopted copy is the fork's bytes with only those scalars replaced, found by the positions PyYAML's
composer gives each node: comments, spacing, quoting elsewhere and CRLF line ends stay as they were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from . import branches

ROW_SECTIONS = ("backbone", "head")
# keys of a model yaml that Ultralytics itself reads, or that parse_model resolves as its own locals: never variables
OWN_KEYS = frozenset(
    {
        "nc",
        "scales",
        "scale",
        "backbone",
        "head",
        "depth_multiple",
        "width_multiple",
        "kpt_shape",
        "activation",
        "act",
        "ch",
        "channels",
        "yaml_file",
        "reg_max",
        "end2end",
        "anchors",
        "text_model",
        *branches.LOCALS,
    }
)
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def load(data: bytes) -> dict | None:
    """The yaml's dict, or None where it does not parse or is not a mapping."""
    import yaml  # PyYAML (libcst depends on it); only adopt reads model yamls

    try:
        cfg = yaml.safe_load(data.decode("utf-8", "replace"))
    except yaml.YAMLError:
        return None
    return cfg if isinstance(cfg, dict) else None


def variables(cfg: dict) -> dict[str, object]:
    """The yaml-level variables a row may name: its own keys, not Ultralytics', with a text or number value."""
    return {
        k: v
        for k, v in cfg.items()
        if isinstance(k, str) and k not in OWN_KEYS and isinstance(v, (str, int, float)) and not isinstance(v, bool)
    }


def module_of(raw: list, values: dict[str, object]) -> str:
    """A row's module name, with a yaml-level variable (``node_mode``) replaced by its value."""
    module = raw[2]
    if isinstance(module, str) and isinstance(values.get(module), str):
        return str(values[module])
    return str(module)


def args_of(args: list, values: dict[str, object]) -> list:
    """A row's arguments with each yaml-level variable (``head_channel``) replaced by its value."""
    return [values[a] if isinstance(a, str) and a in values else a for a in args]


def rewrite(data: bytes, values: dict[str, object], renamed: dict[str, str], emptied: Collection[str] = ()) -> bytes:
    """``data`` with, in each row of ``backbone`` and ``head``, the yaml-level variables among the module names and
    arguments replaced by their values, the module names in ``renamed`` by theirs, and the arguments of the modules
    in ``emptied`` by none (``[]``); everything else byte for byte.

    ``data`` itself where nothing changes, or where the yaml does not parse."""
    import yaml

    if not values and not renamed and not emptied:
        return data
    text = data.decode("utf-8")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return data
    edits = [edit for row in _row_nodes(root) for edit in _row_edits(row, values, renamed, emptied)]
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text.encode("utf-8") if edits else data


def _row_nodes(root) -> list:
    """The sequence nodes of the rows of ``backbone`` and ``head``."""
    import yaml

    if not isinstance(root, yaml.MappingNode):
        return []
    return [
        row
        for key, section in root.value
        if isinstance(key, yaml.ScalarNode) and key.value in ROW_SECTIONS and isinstance(section, yaml.SequenceNode)
        for row in section.value
        if isinstance(row, yaml.SequenceNode) and len(row.value) >= 3
    ]


def _row_edits(
    row, values: dict[str, object], renamed: dict[str, str], emptied: Collection[str]
) -> list[tuple[int, int, str]]:
    """(start, end, new text) for a row's module name and arguments that change."""
    import yaml

    def text(node) -> str | None:
        return node.value if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") else None

    edits = []
    module = row.value[2]
    name = text(module)
    if name is not None:
        value = values.get(name)
        new = value if isinstance(value, str) else name
        new = renamed.get(new, new)
        if new != name:
            edits.append((module.start_mark.index, module.end_mark.index, _scalar(new)))
    args = row.value[3] if len(row.value) > 3 and isinstance(row.value[3], yaml.SequenceNode) else None
    if args is not None and args.value and name is not None and _module(name, values) in emptied:
        edits.append((args.start_mark.index, args.end_mark.index, "[]"))
        return edits
    for arg in args.value if args is not None else ():
        if text(arg) in values:
            edits.append((arg.start_mark.index, arg.end_mark.index, _scalar(values[arg.value])))
    return edits


def _module(name: str, values: dict[str, object]) -> str:
    value = values.get(name)
    return value if isinstance(value, str) else name


def _scalar(value: object) -> str:
    """A value as a yaml flow scalar: a name plain, other text quoted, a number as written by Python."""
    if isinstance(value, str):
        return value if PLAIN.fullmatch(value) and value not in ("null", "true", "false", "None") else json.dumps(value)
    return repr(value)
