"""What the engine and the programs it starts in the target interpreter must agree on.

Imported by ``smoke.py`` and ``preflight.py`` as ``target_common`` (they run as scripts, with the
Python that trains) and by the engine as ``rtdetr_patch.patcher.target.target_common``. It imports
only the standard library. The added package (``templates/Addmodules/__init__.py``) runs inside
Ultralytics and imports nothing of ours: it spells the same names and numbers itself, and a fast
test ties the two.
"""

from __future__ import annotations

import re

PREFIX = "@rtdetr-patch "  # marks the programs' own lines: Ultralytics logs to stdout too
USER_MODULE = "rtdetr_patch_user_module"  # the name a --module file is imported under in the preflight
BACKBONES = "RTDETR_PATCH_BACKBONES"  # the added package's registries
MODULES = "RTDETR_PATCH_MODULES"
CONTRACT = ("width_list", "channel")  # where a backbone lists its output channels
PADDED = 5  # the blog's layout: a backbone's outputs end at index 4, left-padded with placeholders
PROBE = 640  # blog step 4.8: the size backbones are built and probed at

# The channel rules of registered modules (README, "Your own modules"). "block" is a ResNet block that
# the shipped ``Blocks`` stage builds by name; "resnet-stage" is the shipped ``Blocks`` itself.
SINGLE = ("conv", "conv-n", "same", "plain")
MULTI = ("concat", "first", "last", "inputs", "inputs-out", "count", "head")
RULES = SINGLE + MULTI + ("block", "backbone")

# Parameter names the series' files give a module's input width, and its output width.
IN_NAMES = ("c", "c1", "ch", "ch_in", "c_in", "in_ch", "in_chs", "inc", "in_c", "inp", "in_dim", "dim", "in_planes",
            "inplanes", "planes", "channel", "channels", "in_channel", "in_channels", "input_channels", "in_features",
            "nIn", "n_feats", "num_channels", "embed_dim", "dim_in", "chn")
OUT_NAMES = ("c2", "ch_out", "c_out", "out_ch", "out_chs", "ouc", "outc", "oup", "out_c", "out_dim", "dim_out",
             "out_planes", "out_channel", "out_channels", "output_channels", "out_features", "nOut", "channel_out",
             "c2_", "ch2")

# The probe the preflight builds each module at (input widths, output width, spatial size).
PROBE_IN, PROBE_OUT, PROBE_SIZE = 64, 128, 32


def rule_from_params(params: list[str]) -> tuple[str | None, str]:
    """The rule a constructor's parameter names imply (``None`` where they do not decide), and why.

    Two leading widths (``c1, c2``, ``in_channels, out_channels``, ``inc, ouc``) give ``conv``, and
    ``conv-n`` when the third is ``n``; one leading width followed by anything that is not an output
    width (``factor``, ``ratio``, ``num_heads``, ``cm``) gives ``same``; no width at all gives
    ``plain``. A head takes ``nc`` and ``ch``. Anything else is ambiguous: the user names the rule.
    """
    if not params:
        return "plain", "it takes no arguments"
    if "nc" in params and "ch" in params:
        return "head", "it takes `nc` and `ch` (a detection head)"
    first = params[0]
    second = params[1] if len(params) > 1 else None
    if first in IN_NAMES and second in OUT_NAMES:
        if len(params) > 2 and params[2] == "n":
            return "conv-n", f"it takes ({first}, {second}, n, ...): input and output widths, then repeats"
        return "conv", f"it takes ({first}, {second}, ...): input and output widths"
    if first in IN_NAMES and second in IN_NAMES:
        return None, f"its first two parameters ({first}, {second}) could each be a width"
    if first in IN_NAMES:
        return "same", f"it takes one width first ({first}) and no output width"
    if first in OUT_NAMES:
        return None, f"its first parameter ({first}) looks like an output width"
    if any(p in IN_NAMES or p in OUT_NAMES for p in params):
        return None, f"a width ({', '.join(p for p in params if p in IN_NAMES or p in OUT_NAMES)}) is not its first parameter"
    return "plain", f"none of its parameters ({', '.join(params)}) is a width"


def expected_width(rule: str, widths: list[int], out: int) -> int | None:
    """The output width ``parse_model`` records for a probe built under ``rule`` (None: not probed)."""
    return {"conv": out, "conv-n": out, "same": widths[0], "plain": widths[0], "concat": sum(widths),
            "first": widths[0], "last": widths[-1], "inputs": widths[0], "inputs-out": out,
            "count": widths[0]}.get(rule)


def probe_args(rule: str, widths: list[int], out: int) -> list:
    """The arguments ``parse_model`` would pass for a probe row with no arguments of its own."""
    return {"conv": [widths[0], out], "conv-n": [widths[0], out, 1], "same": [widths[0]], "plain": [],
            "concat": [], "first": [], "last": [], "inputs": [list(widths)], "inputs-out": [list(widths), out],
            "count": [len(widths)]}[rule]


def probe_widths(rule: str) -> list[int]:
    """Input widths of the probe: unequal where the rule tells them apart (a concatenation)."""
    if rule in SINGLE:
        return [PROBE_IN]
    if rule == "concat":
        return [PROBE_IN, PROBE_IN // 2]
    return [PROBE_IN, PROBE_IN]


def unscaled(name: str) -> str:
    """The file a yaml name builds from: Ultralytics' scale letter dropped (yolo11n-x.yaml is yolo11-x.yaml at
    scale n), as its own yaml loader does."""
    return re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
