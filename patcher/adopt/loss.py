"""``adopt``: the box loss a tree chose by the flags of its own ``bbox_iou``, as a model yaml's ``iou_loss``.

The series' forks edit ``bbox_iou`` in ``utils/metrics.py`` to take flags (``EIoU=False, SIoU=False,
WIoU=False, ShapeIoU=False, mpdiou=False, Inner=False, alpha=1, ratio=0.7, ...``) and rewrite the call of the
box-regression term to pass some of them: RT-DETR's in ``DETRLoss._get_loss_bbox`` (``models/utils/loss.py``),
YOLO's in ``BboxLoss.forward`` (``utils/loss.py``). Carried onto another install, that loss file is the release's
again; what the call chose can travel instead, as the ``iou_loss`` / ``iou_loss_args`` keys of the adopted yamls
of that family (the rtdetr-patch loss of the same name, by its paper).

Read with ``ast`` (never imported): the call as the tree has it, checked against the flags its own ``bbox_iou``
takes; a call whose flags the vocabulary cannot express (two losses at once, an unknown flag, a value that is not
a constant, ``alpha`` whose meaning differs between forks, no ``bbox_iou`` call left) is not carried, and the
plan shows its code.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import yaml_rows

if TYPE_CHECKING:
    from .survey import Survey, YamlRow

RTDETR, YOLO = "RT-DETR", "YOLO"
SITES = {  # family -> (file, class, method) of the box term's bbox_iou call
    RTDETR: ("models/utils/loss.py", "DETRLoss", "_get_loss_bbox"),
    YOLO: ("utils/loss.py", "BboxLoss", "forward"),
}
METRICS = "utils/metrics.py"
BASES = {  # the forks' flag -> the iou_loss name it computes
    "GIoU": "giou",
    "DIoU": "diou",
    "CIoU": "ciou",
    "EIoU": "eiou",
    "SIoU": "siou",
    "WIoU": "wiou",  # the version is read from the tree's WIoU_Scale
    "ShapeIoU": "shape-iou",
    "mpdiou": "mpdiou",
    "MPDIoU": "mpdiou",
}
WISE = {None: "wiou-v1", True: "wiou-v2", False: "wiou-v3"}  # WIoU_Scale.monotonous, as the forks' class reads it
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


@dataclass
class LossRead:
    """What the tree's box term of one family chooses: ``name`` and ``args`` (None where nothing expresses it)."""

    family: str
    path: str  # the loss file, inside ultralytics/
    code: str  # the statement(s) of the box term's call, as the tree has them
    name: str | None = None
    args: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how it was read
    why: str = ""  # why it is not carried

    @property
    def mapping(self) -> str:
        """``iou_loss_args`` as a YAML flow mapping: ``{ratio: 0.8}``."""
        return "{" + ", ".join(f"{k}: {_number(v)}" for k, v in self.args.items()) + "}"

    @property
    def key(self) -> str:
        """``iou_loss: eiou`` / ``iou_loss: inner-ciou, iou_loss_args: {ratio: 0.8}``."""
        return f"iou_loss: {self.name}" + (f", iou_loss_args: {self.mapping}" if self.args else "")


def carry(survey: Survey) -> list[LossRead]:
    """What the tree's box terms chose, carried into the plan: onto another install (``--from``), each adopted yaml
    of that family gets the ``iou_loss`` key (a yaml with its own key keeps it), and says so; the loss file's edit
    row says what became of its box term, with the code where nothing expresses it. In place the tree's own
    loss files stay as they are (the loss transforms keep a box term edited by hand), so nothing is added."""
    reads = read(survey.source, survey.pristine, survey.modified)
    if survey.in_place:
        return reads
    for found in reads:
        yamls = [y for y in survey.yamls if y.carried and family_of(y.uses) == found.family]
        given = [y.rel for y in yamls if found.name and _with_key(y, found)]
        _edit_row(survey.edits, found.path, _edit_why(found, given))
    if reads:
        paths = ", ".join(f.path for f in reads)
        for edit in survey.edits:
            if edit["path"] == METRICS:
                edit["why"] += f"; the loss its bbox_iou flags choose is read where the loss calls it ({paths})"
    return reads


def family_of(uses: list[str]) -> str | None:
    """RT-DETR (an ``RTDETRDecoder`` row), YOLO (a detection, segmentation or pose head), or None (classification
    and OBB heads: their loss has no box IoU term of this kind)."""
    if "RTDETRDecoder" in uses:
        return RTDETR
    if any(u.startswith(("Classify", "OBB")) for u in uses):
        return None
    return YOLO


def _with_key(y: YamlRow, found: LossRead) -> bool:
    """Append the ``iou_loss`` keys to the yaml's bytes, and to its copy rewritten for the target where it has one
    (that copy is what is written); its own line endings kept. False where it has its own ``iou_loss``."""
    cfg = yaml_rows.load(y.data)
    if cfg is None:
        return False
    if cfg.get("iou_loss") is not None:
        y.why = "it chooses its own iou_loss, kept over the tree's loss file"
        return False
    lines = [f"# rtdetr-patch adopt: the box loss of the tree's {found.path}", f"iou_loss: {found.name}"]
    if found.args:
        lines.append(f"iou_loss_args: {found.mapping}")
    y.data = _appended(y.data, lines)
    if y.adopted is not None:
        y.adopted = _appended(y.adopted, lines)
    y.why = f"`{found.key}` added: the box loss the tree's {found.path} chose by its bbox_iou flags"
    return True


def _appended(data: bytes, lines: list[str]) -> bytes:
    """``data`` with ``lines`` appended, in its own line endings."""
    nl = "\r\n" if b"\r\n" in data else "\n"
    body = data if data.endswith((b"\n", b"\r")) or not data else data + nl.encode()
    return body + nl.join(lines).encode("utf-8") + nl.encode()


def _edit_why(found: LossRead, given: list[str]) -> str:
    what = f"{found.family}'s loss: the file stays the release's"
    if found.name is None:
        return f"{what}; its box term is not carried: {found.why}. The tree has:\n{found.code}"
    notes = "".join(f"; {n}" for n in found.notes)
    yamls = "yaml" if len(given) == 1 else "yamls"
    where = (
        f"into {len(given)} adopted {found.family} {yamls}" if given else f"(no adopted {found.family} yaml takes it)"
    )
    return (
        f"{what}; its box term `{found.code}` is carried as `{found.key}` {where} (computed by the paper, "
        f"not by the tree's bbox_iou code){notes}"
    )


def _edit_row(edits: list[dict], path: str, why: str) -> None:
    row = next((e for e in edits if e["path"] == path), None)
    if row is None:
        edits.append({"path": path, "why": why})
    else:
        row["why"] = why


def read(package: Path, pristine: Path, modified: list[str]) -> list[LossRead]:
    """The box-term choices of the tree ``package`` whose loss files differ from the release's (``pristine``)."""
    out = []
    for family, (rel, cls, method) in SITES.items():
        if rel not in modified:
            continue
        mine, theirs = (
            _site(package / PurePosixPath(rel), cls, method),
            _site(pristine / PurePosixPath(rel), cls, method),
        )
        if mine is None or theirs is None:
            continue
        (calls, code), (stock, _) = mine, theirs
        if [_keywords(c) for c in calls] == [_keywords(c) for c in stock]:
            continue  # the box term is the release's: the file's edits lie elsewhere
        found = LossRead(family, rel, code)
        if len(calls) != 1:
            found.why = (
                f"{len(calls)} bbox_iou calls in {cls}.{method}, not one"
                if calls
                else f"{cls}.{method} calls no bbox_iou: its box term is the tree's own code"
            )
        else:
            _choose(found, calls[0], package / PurePosixPath(METRICS))
        out.append(found)
    return out


def _site(path: Path, cls: str, method: str) -> tuple[list[ast.Call], str] | None:
    """The ``bbox_iou`` calls of ``cls.method`` in ``path`` and the source of the statements holding them (or of
    the whole method where none is left); None where the method is not there."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None
    func = next(
        (
            f
            for c in tree.body
            if isinstance(c, ast.ClassDef) and c.name == cls
            for f in c.body
            if isinstance(f, ast.FunctionDef) and f.name == method
        ),
        None,
    )
    if func is None:
        return None
    lines = text.splitlines()
    calls, spans = [], []
    for stmt in ast.walk(func):
        if not isinstance(stmt, ast.stmt) or isinstance(stmt, (ast.FunctionDef, ast.If, ast.For, ast.With)):
            continue
        found = [n for n in ast.walk(stmt) if isinstance(n, ast.Call) and _is_bbox_iou(n.func)]
        if found:
            calls += found
            spans.append((stmt.lineno, stmt.end_lineno or stmt.lineno))
    if not spans:
        spans = [(func.lineno, func.end_lineno or func.lineno)]
    code = "\n".join("\n".join(lines[a - 1 : b]).strip() for a, b in sorted(set(spans)))
    return calls, code


def _is_bbox_iou(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "bbox_iou") or (
        isinstance(func, ast.Attribute) and func.attr == "bbox_iou"
    )


def _keywords(call: ast.Call) -> list[tuple[str | None, str]]:
    return [(k.arg, ast.dump(k.value)) for k in call.keywords]


def _signature(metrics: Path) -> dict[str, Any] | None:
    """The parameters of the tree's own ``bbox_iou`` with their defaults (``_MISSING`` where none or not a
    constant); None where it cannot be read."""
    try:
        tree = ast.parse(metrics.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    func = next((f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "bbox_iou"), None)
    if func is None:
        return None
    args = func.args.args
    defaults = [None] * (len(args) - len(func.args.defaults)) + list(func.args.defaults)
    out = {a.arg: _constant(d) if d is not None else _MISSING for a, d in zip(args, defaults)}
    out.update(
        {
            a.arg: _constant(d) if d is not None else _MISSING
            for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults)
        }
    )
    return out


def _choose(found: LossRead, call: ast.Call, metrics: Path) -> None:
    """Map one call's keywords onto the vocabulary: ``found.name``/``args``, or ``found.why``."""
    signature = _signature(metrics)
    if signature is None:
        found.why = f"the tree's bbox_iou ({METRICS}) cannot be read, so neither can the meaning of its flags"
        return
    values = {k: v for k, v in signature.items() if v is not _MISSING}  # the defaults, then the call's keywords
    for k in call.keywords:
        if k.arg is None:
            found.why = "it passes keywords by `**`, which cannot be read without running it"
            return
        if k.arg not in signature:
            found.why = f"`{k.arg}` is not a parameter of the tree's bbox_iou ({METRICS})"
            return
        value = _constant(k.value)
        if value is _MISSING:
            found.why = f"`{k.arg}=` is given by an expression, not a constant"
            return
        values[k.arg] = value
    on = [k for k, v in values.items() if v is True and k != "xywh"]
    bases = [k for k in on if k in BASES]
    unknown = [k for k in on if k not in BASES and k != "Inner"]
    if unknown:
        found.why = f"no iou_loss expresses the flag {', '.join(unknown)}"
    elif len(bases) > 1:
        found.why = f"it sets {' and '.join(bases)} at once: which one the tree's bbox_iou computes depends on its code"
    elif values.get("alpha", 1) != 1:
        found.why = "`alpha` means different things in the series' forks (a power of IoU, or nothing): not read"
    elif not bases:
        found.why = "no loss flag is set: the tree's bbox_iou returns its plain or inner IoU there"
    else:
        _name(found, BASES[bases[0]], values, metrics)
        if found.name and found.name.endswith("mpdiou") and any(k.arg == "hw" for k in call.keywords):
            found.notes.append("the call's `hw` (the image size) is not carried: mpdiou divides by the training size")


def _name(found: LossRead, base: str, values: dict[str, Any], metrics: Path) -> None:
    args: dict[str, float] = {}
    if base == "wiou":
        base, args = _wise(metrics, found.notes)
    if base == "shape-iou" and _numeric(values.get("scale")) and values["scale"] != 0:
        args["scale"] = float(values["scale"])
    if values.get("Inner") is True:
        if not _numeric(values.get("ratio")):
            found.why = "Inner-IoU without a constant `ratio` (in the call or as bbox_iou's default)"
            return
        base = "inner-" + base
        args["ratio"] = float(values["ratio"])
    found.name, found.args = base, args


def _wise(metrics: Path, notes: list[str]) -> tuple[str, dict[str, float]]:
    """The Wise-IoU version and parameters of the tree's ``WIoU_Scale`` (its class attributes ``monotonous`` and
    ``_momentum``, and ``_scaled_loss``'s ``gamma``/``delta`` defaults); v3 with the paper's values without it."""
    try:
        tree = ast.parse(metrics.read_bytes())
    except (OSError, SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])
    cls = next((c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "WIoU_Scale"), None)
    if cls is None:
        notes.append(f"{METRICS} has no WIoU_Scale class: read as Wise-IoU v3 with the paper's parameters")
        return "wiou-v3", {}
    attrs: dict[str, Any] = {}
    for node in cls.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            attrs[node.targets[0].id] = _constant(node.value)
        elif isinstance(node, ast.FunctionDef) and node.name == "_scaled_loss":
            params = node.args.args[len(node.args.args) - len(node.args.defaults) :]
            attrs.update({f"_{p.arg}": _constant(d) for p, d in zip(params, node.args.defaults)})
    monotonous = attrs.get("monotonous", False)
    name = WISE.get(monotonous, "wiou-v3") if monotonous is not _MISSING else "wiou-v3"
    args: dict[str, float] = {}
    if name != "wiou-v1" and _numeric(attrs.get("_momentum")):
        args["momentum"] = float(attrs["_momentum"])
    if name == "wiou-v3":
        for theirs, ours, default in (("_gamma", "alpha", 1.9), ("_delta", "delta", 3.0)):
            value = attrs.get(theirs)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) != default:
                args[ours] = float(value)
    notes.append(f"Wise-IoU version and parameters from {METRICS}'s WIoU_Scale")
    return name, args


_MISSING = object()  # a value that is not a constant


def _constant(node: ast.expr | None) -> Any:
    """A value where it is a constant or arithmetic of constants (``1 - 0.5 ** (1 / 7000)``); else ``_MISSING``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _constant(node.operand)
        return -inner if _numeric(inner) else _MISSING
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _constant(node.left), _constant(node.right)
        if _numeric(left) and _numeric(right):
            try:
                return float(_OPS[type(node.op)](left, right))
            except (ArithmeticError, ValueError):
                return _MISSING
    return _MISSING


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: float) -> str:
    """A float as YAML reads it back as a float (``1.0e-05``, not ``1e-05``, which YAML 1.1 reads as text)."""
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text
