"""What the engine and the programs it starts in the target interpreter must agree on.

Imported by ``smoke.py``, ``module_probe.py`` and ``adopt_probe.py`` as ``target_common`` (they run as scripts, with the
Python that trains) and by the engine as ``rtdetr_patch.patcher.target.target_common``. It imports
only the standard library. The added package (``templates/Addmodules/__init__.py``) runs inside
Ultralytics and imports nothing of ours: it spells the same names and numbers itself, and a fast
test ties the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PREFIX = "@rtdetr-patch "  # marks the programs' own lines: Ultralytics logs to stdout too
SPAWN_ENV = "RTDETR_PATCH_SPAWN"  # adopt's probe: spawn its build workers, as on Windows and macOS (for the tests)
STAGE_ENV = "RTDETR_PATCH_STAGE"  # the preflight's files of nn/Addmodules-to-be (a JSON list of paths)
# The package a --module file is copied into (nn/Addmodules/<stem>.py); the preflight imports the file as
# ADDED_PACKAGE.<stem>, so its relative imports (``from ..modules import Conv``) resolve as they will there.
ADDED_PACKAGE = "ultralytics.nn.Addmodules"
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
IN_NAMES = (
    "c",
    "c1",
    "ch",
    "ch_in",
    "c_in",
    "in_ch",
    "in_chs",
    "inc",
    "in_c",
    "inp",
    "in_dim",
    "dim",
    "in_planes",
    "inplanes",
    "planes",
    "channel",
    "channels",
    "in_channel",
    "in_channels",
    "input_channels",
    "in_features",
    "nIn",
    "n_feats",
    "num_channels",
    "embed_dim",
    "dim_in",
    "chn",
)
OUT_NAMES = (
    "c2",
    "ch_out",
    "c_out",
    "out_ch",
    "out_chs",
    "ouc",
    "outc",
    "oup",
    "out_c",
    "out_dim",
    "dim_out",
    "out_planes",
    "out_channel",
    "out_channels",
    "output_channels",
    "out_features",
    "nOut",
    "channel_out",
    "c2_",
    "ch2",
)
# Names that are the input width when they come first (a transformer's ``d_model, nhead``), but a hidden width,
# not an output width, after another width (``dim, hidden_dim``).
LEAD_NAMES = ("d_model", "hidden_dim")

# The probe the preflight builds each module at (input widths, output width, spatial size).
PROBE_IN, PROBE_OUT, PROBE_SIZE = 64, 128, 32


def rule_from_params(
    params: list[str], optional: tuple[str, ...] = (), rows: list[list] | None = None
) -> tuple[str | None, str]:
    """The rule a constructor's parameter names imply (``None`` where they do not decide), and why.

    Two leading widths (``c1, c2``, ``in_channels, out_channels``, ``inc, ouc``, ``dim_in, dim_out``) give
    ``conv``, and ``conv-n`` when the third is ``n``; one leading width (``c``, ``channels``, ``dim``, and a
    transformer's ``d_model``/``embed_dim``/``hidden_dim``) followed by anything that is not an output width
    (``factor``, ``ratio``, ``num_heads``, ``nhead``, ``cm``) gives ``same``; no width at all gives ``plain``. A head
    takes ``nc`` and ``ch``. Anything else is ambiguous: the user names the rule.

    An output width with the default ``None`` (``in_channels, out_channels=None``: "the input width unless
    given") fits ``conv`` for a row that gives the width and ``same`` for a row that gives no arguments.
    ``optional`` names the parameters whose default is ``None``; ``rows`` are the arguments of the ``--yaml``
    rows that name the module (``None``: no yaml, or none of its rows name it). The rows decide: all without
    arguments give ``same``, all with arguments ``conv``, a mix is ambiguous. Without rows it is ``conv``,
    and ``why`` says that ``=same`` is the rule for rows without arguments.
    """
    if not params:
        return "plain", "it takes no arguments"
    if "nc" in params and "ch" in params:
        return "head", "it takes `nc` and `ch` (a detection head)"
    first = params[0]
    second = params[1] if len(params) > 1 else None
    leads = first in IN_NAMES or first in LEAD_NAMES
    if leads and second in OUT_NAMES:
        if len(params) > 2 and params[2] == "n":
            return "conv-n", f"it takes ({first}, {second}, n, ...): input and output widths, then repeats"
        if second in optional:
            return _optional_out(first, second, rows)
        return "conv", f"it takes ({first}, {second}, ...): input and output widths"
    if first in IN_NAMES and second in IN_NAMES:
        return None, f"its first two parameters ({first}, {second}) could each be a width"
    if leads:
        return "same", f"it takes one width first ({first}) and no output width"
    if first in OUT_NAMES:
        return None, f"its first parameter ({first}) looks like an output width"
    if any(p in IN_NAMES or p in OUT_NAMES for p in params):
        return (
            None,
            f"a width ({', '.join(p for p in params if p in IN_NAMES or p in OUT_NAMES)}) is not its first parameter",
        )
    return "plain", f"none of its parameters ({', '.join(params)}) is a width"


def _optional_out(first: str, second: str, rows: list[list] | None) -> tuple[str | None, str]:
    """The rule of ``(c1, c2=None, ...)``: the yaml's rows decide (all give the width: conv, none: same)."""
    taken = f"it takes ({first}, {second}=None, ...): an optional output width"
    if rows:
        given = {bool(args) for args in rows}
        if given == {False}:
            return "same", f"{taken}, and the yaml's rows give no arguments"
        if given == {True}:
            return "conv", f"{taken}, and the yaml's rows give it"
        return None, f"{taken}, and some of the yaml's rows give it and some do not"
    return "conv", (
        f"{taken}, read as conv (a row gives the width: [-1, 1, NAME, [256]]); for rows without arguments give =same"
    )


def expected_width(rule: str, widths: list[int], out: int) -> int | None:
    """The output width ``parse_model`` records for a probe built under ``rule`` (None: not probed)."""
    return {
        "conv": out,
        "conv-n": out,
        "same": widths[0],
        "plain": widths[0],
        "concat": sum(widths),
        "first": widths[0],
        "last": widths[-1],
        "inputs": widths[0],
        "inputs-out": out,
        "count": widths[0],
    }.get(rule)


def probe_args(rule: str, widths: list[int], out: int) -> list:
    """The arguments ``parse_model`` would pass for a probe row with no arguments of its own."""
    args: dict[str, list] = {
        "conv": [widths[0], out],
        "conv-n": [widths[0], out, 1],
        "same": [widths[0]],
        "plain": [],
        "concat": [],
        "first": [],
        "last": [],
        "inputs": [list(widths)],
        "inputs-out": [list(widths), out],
        "count": [len(widths)],
    }
    return args[rule]


def probe_widths(rule: str) -> list[int]:
    """Input widths of the probe: unequal where the rule tells them apart (a concatenation)."""
    if rule in SINGLE:
        return [PROBE_IN]
    if rule == "concat":
        return [PROBE_IN, PROBE_IN // 2]
    return [PROBE_IN, PROBE_IN]


# Rules whose probe passes an output width of its own (the others record an input's width).
OUT_RULES = ("conv", "conv-n", "inputs-out")
IMAGE = 3  # an image's channels: what a module at yaml row 0 (an enhancer, a stem) is built for


def probe_plan(rule: str, rows: Sequence[dict] = ()) -> list[tuple[list[int], int, str]]:
    """``(input widths, output width, where they come from)`` to build a module at, in the order tried.

    The widths of the ``--yaml`` rows that name the module first (``yaml_rows``), then the default probe
    (64 in, 128 out); then equal widths (64 -> 64, 128 -> 128), for a constructor that insists on them
    (Ultralytics' own C2PSA asserts ``c1 == c2``); then, for ``same`` and ``plain``, a wider input and an image's
    3 channels, for a module built for the first row (an enhancer that returns 3 channels whatever it is given).
    The first build whose output width is the one the rule records wins; each build is a small module run once
    at 32x32, so trying a few costs little.
    """
    default = probe_widths(rule)
    plan = []
    for row in rows:
        if row.get("inputs"):
            plan.append((list(row["inputs"]), row.get("out") or PROBE_OUT, f"row {row['row']} of the yaml"))
        elif rule in SINGLE:  # the widths before it could not be followed: its own width arguments
            plan += [([w], w, f"row {row['row']}'s argument {w}") for w in row.get("numbers", [])]
    plan.append((default, PROBE_OUT, "the default probe"))
    plan += [([w] * len(default), w, "equal widths") for w in (PROBE_IN, PROBE_OUT)]
    if rule in ("same", "plain"):
        plan.append(([IMAGE], IMAGE, "an image's channels"))
    seen, unique = set(), []
    for widths, out, source in plan:
        key = (tuple(widths), out if rule in OUT_RULES else None)
        if key not in seen and (rule not in SINGLE or len(widths) == 1):
            seen.add(key)
            unique.append((widths, out, source))
    return unique


# parse_model's modules whose first argument is the output width, scaled by the yaml's width (its base modules
# over the releases, and the shipped ResNet stem); HGStem/HGBlock take it second, unscaled.
WIDTH_FIRST = frozenset(
    (
        "Classify",
        "Conv",
        "ConvTranspose",
        "GhostConv",
        "Bottleneck",
        "GhostBottleneck",
        "SPP",
        "SPPF",
        "C2fPSA",
        "C2PSA",
        "DWConv",
        "Focus",
        "BottleneckCSP",
        "C1",
        "C2",
        "C2f",
        "C3k2",
        "RepNCSPELAN4",
        "ELAN1",
        "ADown",
        "AConv",
        "SPPELAN",
        "C2fAttn",
        "C3",
        "C3TR",
        "C3Ghost",
        "nn.ConvTranspose2d",
        "torch.nn.ConvTranspose2d",
        "DWConvTranspose2d",
        "C3x",
        "RepC3",
        "PSA",
        "SCDown",
        "C2fCIB",
        "A2C2f",
        "MixConv2d",
        "CrossConv",
        "ConvNormLayer",
    )
)
WIDTH_SECOND = frozenset(("HGStem", "HGBlock"))
EXPANSION = {"BasicBlock": 1, "BottleNeck": 4}  # the shipped Blocks stage: its output is ch_out times this


def scaled(c2: int, nc: int, width: float, max_channels: float) -> int:
    """An output width as parse_model scales its own convolutions (times the width, capped, a multiple of 8)."""
    if c2 == nc:
        return c2
    return int(-(-min(c2, max_channels) * width // 8) * 8)


def yaml_rows(model: dict, rules: dict, scale: str | None = None, stops: tuple = ()) -> dict[str, list[dict]]:
    """The rows of a model yaml that name each module of ``rules`` (name -> rule, or None when unknown yet).

    Each row comes as ``{"row", "args", "inputs", "out", "numbers"}``. ``inputs`` are the widths the row's
    ``from`` indices carry, followed from the first row as ``parse_model`` records them: Ultralytics' width-first
    modules by their scaled first argument, ``Concat`` by the sum, torch layers and anything else ``parse_model``
    passes through (``nn.Upsample``, ``AIFI``) by their input, the registered modules by their rule. Building the
    model instead would need the modules registered; this walk needs only the rows. It is a simplification, so
    it stops where it would guess: a module it does not know has an unknown width (so has every row that takes
    it), and after a backbone (``stops``: its outputs are padded and shift every later index) every width is
    unknown (``inputs`` None). ``numbers`` are the row's own
    integer arguments that look like widths (16 or more, multiples of 8, scaled as the row's output would be),
    tried when ``inputs`` is unknown. ``out`` is what a rule with an output width receives (scaled ``args[0]``).
    """
    nc = model.get("nc", 80)
    width, max_channels = _scale_of(model, scale)
    found: dict[str, list[dict]] = {name: [] for name in rules}
    outs: list = []
    known = True
    for i, row in enumerate(list(model.get("backbone") or []) + list(model.get("head") or [])):
        try:
            f, _, m, args = row
        except (TypeError, ValueError):
            known = False
            continue
        m, args = str(m), [nc if a == "nc" else a for a in (args or [])]
        inputs = _inputs_of(f, outs) if known else None
        first = args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None
        out = scaled(first, nc, width, max_channels) if first is not None else None
        if m in found:
            numbers = [
                scaled(a, nc, width, max_channels)
                for a in args
                if isinstance(a, int) and not isinstance(a, bool) and a >= 16 and a % 8 == 0
            ]
            found[m].append({"row": i, "args": args, "inputs": inputs, "out": out, "numbers": numbers})
        if m in stops:
            known = False
        outs.append(None if m in stops else _out_width(m, rules.get(m), args, first, out, inputs))
    return {name: rows for name, rows in found.items() if rows}


def _scale_of(model: dict, scale: str | None) -> tuple:
    """(width multiple, max channels) of the yaml at ``scale`` (its first scale when not one of its own)."""
    scales = model.get("scales")
    if scales:
        key = scale if scale in scales else next(iter(scales))
        _, width, max_channels = scales[key]
        return width, max_channels
    return model.get("width_multiple", 1.0), float("inf")


def _inputs_of(f, outs: list) -> list | None:
    """The widths a row's ``from`` indices carry (None where one is unknown)."""
    many = isinstance(f, (list, tuple))
    try:
        inputs = [(outs[x] if outs else 3) for x in (f if many else [f])]
    except (IndexError, TypeError):
        return None
    return None if None in inputs else inputs


def _out_width(
    m: str, rule: str | None, args: list, first: int | None, out: int | None, inputs: list | None
) -> int | None:
    """The width parse_model records for a row (None: unknown)."""
    if rule in OUT_RULES or (rule is None and m in WIDTH_FIRST):
        return out  # its own argument: known whatever it takes
    if rule is None and m in WIDTH_SECOND and len(args) > 1 and isinstance(args[1], int):
        return args[1]
    if rule is None and m == "Blocks" and first is not None and len(args) > 1 and args[1] in EXPANSION:
        return first * EXPANSION[args[1]]
    if inputs is None:
        return None
    if rule is not None:
        return {"concat": sum(inputs), "last": inputs[-1]}.get(
            rule, inputs[0] if rule in ("same", "plain", "first", "inputs", "count") else None
        )
    if m == "Concat":
        return sum(inputs)
    if m.startswith(("nn.", "torch.nn.")) or m == "AIFI":
        return inputs[0]  # parse_model's last branch: the width passes through
    return None


def unscaled(name: str) -> str:
    """The file a yaml name builds from: Ultralytics' scale letter dropped (yolo11n-x.yaml is yolo11-x.yaml at
    scale n), as its own yaml loader does."""
    return re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
