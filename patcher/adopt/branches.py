"""Read the module branches of a hand-edited ``parse_model`` and tell which channel rule each one is.

The series' readers add a module by writing a branch into ``parse_model``'s if/elif chain (or by
adding its name to one of Ultralytics' own sets). ``rtdetr-patch adopt`` needs, per name, the rule
of ``RTDETR_PATCH_MODULES`` that does what that branch does. Branches are written in many ways
(``c2 = ch[f]; args = [c2, *args]`` and ``args.insert(0, ch[f])`` are one rule), so the branch is
not matched by its shape: it is *run*, on a few rows, beside the code of every rule (read from the
added package's own ``rtdetr_patch_module_args``, so the comparison is with what will run), and
the rule that gives the same ``c2``, arguments and repeats on every row is the one. The rows are
those of the yamls that use the name, where there are any.

Only reading and arithmetic: a branch that imports, loops with ``while``, or calls anything but
the few helpers ``parse_model`` uses is "no rule" (shown to the user as code), never guessed. What
a branch may read besides the row: the tuples and sets of module names the fork names at module
level or in ``parse_model`` (``if m in SEGMENT_CLASS:`` inside a head's branch), and the yaml's own
dict ``d`` (``args[0] = d[args[0]]``: a yaml-level variable such as ``fusion_mode``).

Where no rule does what the branch does (``c2 = ch[f[1]]; args = [c2, *args]``, ``c2 = ch[f] * 4``), the branch
itself is carried (the rule ``branch``: ``branch_file`` writes it as a function that ``rtdetr_patch_module_args``
calls), provided it reads nothing that call cannot give it: not the depth multiple, not a ``c1`` it did not set, no
other local of ``parse_model`` (``layers``, ``scales``), and the yaml's dict ``d`` only where the adopted rows do not
need it (their yaml-level variables are substituted).

A branch that never sets ``c2`` leaves the previous row's width as the module's (``Bi_FPN``:
``args = [len(f)]``); a fork's model only builds when that is the width the module gives, i.e. its
inputs and the previous row share one width. Such a row is compared with the rules at those equal
widths, where a rule that records an input's width (``count``, ``first``) gives the fork's count.
"""

from __future__ import annotations

import ast
import builtins
import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from importlib import resources

# The locals a branch sees, as parse_model has them when the chain starts.
LOCALS = (
    "m", "i", "f", "n", "args", "ch", "nc", "c1", "c2", "width", "max_channels", "depth", "n_", "gw", "gd", "d"
)  # fmt: skip
CH = [3] + [24 + 8 * k for k in range(63)]  # the widths of the rows before: distinct, so that every index tells
ALT_CH = [5] + [40 + 8 * k for k in range(63)]  # a second set: a branch's own numbers that meet CH once (ChannelSplit's
# ``c2 = args[1] - args[0]`` on ``[0, 3]`` is CH[0]) are not taken for a rule
SINGLE_F, MULTI_F = -1, [-1, 2]
NC, WIDTH, MAX_CHANNELS = 80, 1.0, 1024
OTHER_WIDTH = 0.5  # a second width multiple, at which the rule found is run again
STALE_C1 = 7  # c1 as the row before left it: a branch that does not set c1 never passes it on
STALE_C2 = 4099  # c2 as the row before left it, in the first run: no width of CH, nor one a rule computes
EQUAL = 1000  # the one width of a stale-c2 row's inputs and previous row, in its second run
UNSAFE = (
    ast.Import,
    ast.ImportFrom,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Global,
    ast.Nonlocal,
    ast.Delete,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.Try,
    ast.Raise,
    ast.Return,
    ast.Yield,
    ast.Await,
)
HELPERS = {"make_divisible": lambda x, d: math.ceil(x / d) * d, "math": math}
# What a carried branch is called with (``rtdetr_patch_module_args``'s parameters), what else of parse_model's state
# it can be given (as parse_model has it when the chain starts: c2 the previous row's width), and what it cannot
CALL = ("m", "i", "f", "n", "args", "ch", "nc", "width", "max_channels")
GIVEN = {"c2": "ch[-1]", "n_": "n", "gw": "width", "d": "{}"}  # (d: the adopted yamls' variables are substituted)

ORDER = ("conv", "conv-n", "same", "plain", "concat", "first", "last", "inputs", "inputs-out", "count", "head")


@dataclass
class Branch:
    names: list[str]  # the module names its test lists (``nn.Conv2d`` dotted), in order
    body: list[ast.stmt]
    code: str  # the branch as written, for the user
    line: int
    final: bool = False  # the chain's closing ``else``
    test: ast.expr | None = None  # its test (None: the closing ``else``)


@dataclass
class Chain:
    branches: list[Branch]
    backbone_flag: bool = False  # ``backbone = False`` before the loop (the blog's step 4.4)
    sets: dict[str, list[str]] = field(default_factory=dict)  # tuples/sets of module names a branch may read
    assigned: frozenset[str] = frozenset()  # the other names parse_model binds (``layers``, ``scales``, its loop's)

    def names(self) -> list[str]:
        return [n for b in self.branches for n in b.names]

    def branch_of(self, name: str) -> Branch | None:
        return next((b for b in self.branches if name in b.names), None)

    @property
    def final(self) -> Branch | None:
        return next((b for b in self.branches if b.final), None)

    @functools.cached_property
    def fallback(self) -> Branch | None:
        """What a name with no branch of its own runs: the chain's branches whose tests name no module
        (``elif isinstance(f, list):``, ``elif str(m) in {"MPI"}``: a fork routes its multi-input rows there), in
        order, then the closing ``else``, as one if/elif of its own; the closing ``else`` alone where there are
        none. (The branches that name modules are left out: their tests are false for a name they do not list.)"""
        tested = [b for b in self.branches if not b.names and not b.final and b.test is not None]
        final = self.final
        if not tested:
            return final
        orelse: list[ast.stmt] = list(final.body) if final else []
        for branch in reversed(tested):
            assert branch.test is not None
            orelse = [ast.If(test=branch.test, body=list(branch.body), orelse=orelse)]
        code = "\n".join(b.code for b in [*tested, *([final] if final else [])])
        return Branch([], orelse, code, tested[0].line, final=True)


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _names_of(node: ast.AST, sets: dict[str, list[str]]) -> list[str]:
    """The module names an expression lists, as a fork writes the right-hand side of ``m in ...``: a set, tuple or
    list literal; ``frozenset({...})``/``set(...)``/``tuple(...)``; a name of a set assigned before (in
    ``parse_model`` or at module level, such as ``C3K2_CLASS``); and sums or unions of those
    (``(Classify, Conv) + C3K2_CLASS``, ``BASE | {A}``)."""
    if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
        return [n for e in node.elts for n in _names_of(e, sets)]
    if isinstance(node, ast.Starred):
        return _names_of(node.value, sets)
    if (
        isinstance(node, ast.Call)
        and _dotted(node.func) in ("frozenset", "set", "tuple", "list")
        and len(node.args) == 1
        and not node.keywords
    ):
        return _names_of(node.args[0], sets)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.BitOr)):
        return _names_of(node.left, sets) + _names_of(node.right, sets)
    name = _dotted(node)
    if name is None:
        return []
    return list(sets.get(name, [name]))


def _test_names(test: ast.AST, sets: dict[str, list[str]]) -> list[str]:
    """The module names a branch's test lists: ``m in {A, B}``, ``m is A``, ``m in base_modules``,
    ``m in (A, B) + SOME_TUPLE``, ``or``."""
    names: list[str] = []
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "m":
            for op, right in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.Is, ast.Eq)):
                    names.extend(_names_of(right, sets))
    return names


def _assigned_sets(body: list[ast.stmt], known: dict[str, list[str]]) -> dict[str, list[str]]:
    """``NAME = {...}`` / ``(...)`` / ``frozenset({...})`` / sums of those, in ``body``, in order; a later
    assignment may use an earlier one (``ALL = BASE + EXTRA``), an annotated one (``C3K2_CLASS: tuple = (C3k2,)``)
    or extend one (``C3K2_CLASS += (...)``, or ``C3K2_CLASS = C3K2_CLASS + (...)`` under ``if AVAILABLE:`` or in a
    ``try``: the names of every branch count). Only expressions made of names count."""
    sets = dict(known)
    for stmt in body:
        if isinstance(stmt, (ast.If, ast.Try)):
            nested = stmt.body + stmt.orelse + [s for h in getattr(stmt, "handlers", []) for s in h.body]
            sets = _assigned_sets(nested + getattr(stmt, "finalbody", []), sets)
            continue
        target, value, extend = _set_assignment(stmt)
        if target is None or value is None:
            continue
        if isinstance(value, ast.Name) and value.id in sets:  # an alias of a set named before
            names = list(sets[value.id])
        elif _is_name_collection(value):
            names = _names_of(value, sets)
        else:
            continue
        if names:
            sets[target] = (sets.get(target, []) if extend else []) + names
    return sets


def _set_assignment(stmt: ast.stmt) -> tuple[str | None, ast.expr | None, bool]:
    """(target, value, extends): ``X = v``, ``X: T = v``, ``X += v`` / ``X |= v`` with a plain name as target."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value, False
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return stmt.target.id, stmt.value, False
    if (
        isinstance(stmt, ast.AugAssign)
        and isinstance(stmt.target, ast.Name)
        and isinstance(stmt.op, (ast.Add, ast.BitOr))
    ):
        return stmt.target.id, stmt.value, True
    return None, None, False


def _is_name_collection(node: ast.AST) -> bool:
    if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
        return bool(node.elts) and all(_dotted(e) is not None or isinstance(e, ast.Starred) for e in node.elts)
    if isinstance(node, ast.Call):
        return (
            _dotted(node.func) in ("frozenset", "set", "tuple", "list")
            and len(node.args) == 1
            and _is_name_collection(node.args[0])
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.BitOr)):
        return all(_is_name_collection(x) or _dotted(x) is not None for x in (node.left, node.right))
    return False


def _local_sets(func: ast.FunctionDef, module_sets: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """``base_modules = frozenset({...})`` and the like, assigned in parse_model before the loop, over the
    module-level ones (``DETECT_CLASS = (Detect, ...)``)."""
    return _assigned_sets(func.body, module_sets or {})


def _parse_model_def(source: bytes | str) -> tuple[str, ast.Module | None, ast.FunctionDef | None]:
    """A tasks.py's text, its tree (None where it does not parse) and its top-level ``parse_model`` (or None)."""
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return text, None, None
    func = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "parse_model"), None)
    return text, tree, func


def parse_model_chain(source: bytes | str) -> Chain | None:
    """The module-type chain of ``parse_model`` in a tasks.py, or None where there is none."""
    text, tree, func = _parse_model_def(source)
    if tree is None or func is None:
        return None
    sets = _local_sets(func, _assigned_sets(tree.body, {}))
    loop = next(
        (
            n
            for n in ast.walk(func)
            if isinstance(n, ast.For) and isinstance(n.iter, ast.Call) and _dotted(n.iter.func) == "enumerate"
        ),
        None,
    )
    if loop is None:
        return None
    best = _longest_chain(loop, sets)
    if best is None:
        return None
    flag = any(
        isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "backbone" for t in s.targets)
        for s in func.body
    )
    assigned = {a.arg for a in func.args.args + func.args.kwonlyargs} | {
        n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    return Chain(_branches(best, sets, text), backbone_flag=flag, sets=sets, assigned=frozenset(assigned - set(LOCALS)))


def reads_yaml_variables(source: bytes | str) -> bool:
    """Whether ``parse_model`` reads the yaml's dict ``d`` with a key it computes (``d[m]``, ``d[args[0]]``): the
    fork substitutes yaml-level variables (``node_mode``, ``head_channel``) that its rows name."""
    _, _, func = _parse_model_def(source)
    if func is None or not func.args.args:
        return False
    d = func.args.args[0].arg
    return any(
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == d
        and not isinstance(node.slice, ast.Constant)
        for node in ast.walk(func)
    )


def _longest_chain(loop: ast.For, sets: dict[str, list[str]]) -> ast.If | None:
    """The longest if/elif chain in the loop whose tests list module names (any of them: a chain may open with
    ``if isinstance(m, str):`` or another test of its own)."""
    best: ast.If | None = None
    best_len = 0
    for stmt in loop.body:
        if isinstance(stmt, ast.If):
            length, names = 0, False
            node: ast.If | None = stmt
            while node is not None:
                length += 1
                names = names or bool(_test_names(node.test, sets))
                node = node.orelse[0] if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) else None
            if length > best_len and names:
                best, best_len = stmt, length
    return best


def _branches(first: ast.If, sets: dict[str, list[str]], text: str) -> list[Branch]:
    """Each branch of the chain that starts at ``first``, the closing ``else`` last."""
    branches = []
    node: ast.If | None = first
    lines = text.splitlines()
    while node is not None:
        end = node.body[-1].end_lineno or node.body[-1].lineno
        code = "\n".join(lines[node.lineno - 1 : end])
        branches.append(
            Branch(_test_names(node.test, sets), list(node.body), _dedent(code), node.lineno, test=node.test)
        )
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            node = node.orelse[0]
        else:
            if node.orelse:
                closing = node.orelse[0]
                end = node.orelse[-1].end_lineno or node.orelse[-1].lineno
                code = "else:\n" + "\n".join(lines[closing.lineno - 1 : end])
                branches.append(Branch([], list(node.orelse), _dedent(code), closing.lineno, final=True))
            node = None
    return branches


def _dedent(code: str) -> str:
    lines = code.splitlines()
    if not lines:
        return code
    first = lines[0]
    cut = len(first) - len(first.lstrip())
    if first.lstrip().startswith("elif "):
        lines[0] = first[:cut] + first.lstrip()[2:]  # "elif m in ..." shown as "if m in ..."
    return "\n".join(line[cut:] if line[:cut].strip() == "" else line for line in lines)


def is_backbone_branch(branch: Branch) -> bool:
    """The blog's backbone branch (step 4.5): it builds the module there and reads its ``width_list``."""
    for node in walk(branch):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "backbone" for t in node.targets):
            return True
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("width_list", "channel")
            and isinstance(node.value, ast.Name)
            and node.value.id == "m"
        ):
            return True
    return False


class _Sentinel:
    """A module name inside a branch: compared by identity; anything else done with it fails."""

    def __init__(self, name: str):
        self.name = name
        self.__name__ = name.rsplit(".", 1)[-1]  # (``m.__name__ in {...}``, as a class answers)

    def __repr__(self) -> str:
        return self.name

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _SENTINELS.setdefault(f"{self.name}.{attr}", _Sentinel(f"{self.name}.{attr}"))


_SENTINELS: dict[str, _Sentinel] = {}


def _sentinel(name: str) -> _Sentinel:
    return _SENTINELS.setdefault(name, _Sentinel(name))


def not_given(branch: Branch, assigned: Collection[str], sets: Collection[str]) -> list[str]:
    """The names ``branch`` reads that a carried branch is not given: c1 (where it may read the previous row's), the
    depth multiple, and parse_model's other locals (``layers``, a ``warehouse_manager`` parameter); each is bound to
    a placeholder, and the branch is carried only where its outcome on the rows does not change with it."""
    return sorted(names_read(branch) & ({"c1", "depth", "gd"} | set(assigned)) - set(sets))


class NotRunnable(Exception):
    """The branch does something beyond arithmetic on the row: no rule can be told by running it."""


def _compile(body: list[ast.stmt], sets: dict[str, list[str]] | None = None, absent: Collection[str] = ()):
    """The branch as a function of parse_model's locals (``LOCALS``), every other name it reads a sentinel (``absent``
    ones: a sentinel of a value a carried branch is not given) or a tuple of sentinels (a set of the chain's)."""
    module = ast.Module(body=body, type_ignores=[])
    for node in ast.walk(module):
        if isinstance(node, UNSAFE):
            raise NotRunnable(type(node).__name__)
    loads = {n.id for n in ast.walk(module) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    func = ast.FunctionDef(
        name="_branch",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg(a) for a in LOCALS], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=list(body)
        + [
            ast.Return(
                ast.Tuple(
                    [ast.Name("c2", ast.Load()), ast.Name("args", ast.Load()), ast.Name("n", ast.Load())], ast.Load()
                )
            )
        ],
        decorator_list=[],
        returns=None,
    )
    tree = ast.fix_missing_locations(ast.Module(body=[func], type_ignores=[]))
    code = compile(tree, "<parse_model branch>", "exec")
    safe = {
        k: getattr(builtins, k)
        for k in (
            "len",
            "sum",
            "min",
            "max",
            "int",
            "float",
            "round",
            "list",
            "tuple",
            "range",
            "isinstance",
            "enumerate",
            "zip",
            "abs",
            "str",
            "bool",
            "dict",
            "set",
            "any",
            "all",
            "sorted",
            "reversed",
        )
    }
    scope: dict = {"__builtins__": safe, **HELPERS}
    for name in loads - set(LOCALS) - set(safe) - set(HELPERS):
        listed = (sets or {}).get(name)  # a tuple of module names (``m in SEGMENT_CLASS``): the same sentinels
        if name in absent:
            scope[name] = _absent(name)
        else:
            scope[name] = tuple(_sentinel(n) for n in listed) if listed is not None else _sentinel(name)
    exec(code, scope)  # the branch's own arithmetic, on made-up rows, with no builtins to reach out
    return scope["_branch"]


@functools.lru_cache(maxsize=1)
def _rule_function():
    """``rtdetr_patch_module_args`` and the helpers it needs, from the added package's own source (read once a
    run: ``classify`` sets the one registry entry it tries before each call)."""
    source = resources.files("rtdetr_patch.templates").joinpath("Addmodules", "__init__.py").read_text("utf-8")
    tree = ast.parse(source)
    wanted = {"rtdetr_patch_module_args", "_scaled", "SINGLE", "MULTI", "RULES", "RtdetrPatchRowError"}
    body: list[ast.stmt] = [
        n
        for n in tree.body
        if (isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in wanted)
        or (isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id in wanted)
    ]
    scope: dict = {"RTDETR_PATCH_MODULES": {}, "_fits": lambda *a: None}
    exec(compile(ast.Module(body=body, type_ignores=[]), "Addmodules/__init__.py", "exec"), scope)
    return scope


@dataclass(frozen=True)
class Row:
    f: int | list
    n: int
    args: list  # as the adopted yaml gives them to a rule (its yaml-level variables replaced by their values)
    d: dict | None = field(default=None, compare=False)  # the yaml's own dict, for a branch that reads it
    given: list | None = field(default=None, compare=False)  # as the fork's branch gets them, where they differ
    last: bool | None = field(default=None, compare=False)  # the yaml's last row (None: a sample row)


@dataclass
class Verdict:
    rule: str | None
    why: str
    rows: list[Row] = field(default_factory=list)
    drops_args: bool = False  # the branch never reads the row's arguments: the rule is for rows that give none
    notes: str = ""  # how the rule was told where it is not plain (stale c2, other scaling, arguments dropped)


def sample_rows(multi: bool | None = None) -> list[Row]:
    """Rows to run a branch on where no yaml of the tree uses its name."""
    single = [Row(SINGLE_F, 1, [256]), Row(SINGLE_F, 3, [256, 3]), Row(SINGLE_F, 1, [])]
    several = [Row(MULTI_F, 1, []), Row(MULTI_F, 1, [256])]
    return single if multi is False else several if multi else single + several


def _outcome(call, row: Row):
    try:
        return ("ok",) + tuple(_freeze(v) for v in call(row))
    except Exception as exc:  # an error is an outcome too: it must be the rule's as well
        return ("error", type(exc).__name__)


def _freeze(value):
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _equal_widths(f, base: list[int]) -> list[int]:
    """The widths of the rows before, with the row's inputs and the previous row at one width (``EQUAL``)."""
    ch = list(base)
    for x in f if isinstance(f, list) else [f]:
        if isinstance(x, int) and -len(ch) <= x < len(ch):
            ch[x] = EQUAL
    ch[-1] = EQUAL
    return ch


def classify(
    branch: Branch,
    name: str,
    rows: list[Row],
    sets: dict[str, list[str]] | None = None,
    assigned: frozenset[str] | set[str] = frozenset(),
) -> Verdict:
    """The rule that does what ``branch`` does for the module ``name`` on every one of ``rows``.

    ``sets`` are the chain's tuples of module names, which the branch may test ``m`` against; ``assigned`` the other
    names parse_model binds (a branch that reads one is not carried as written). The rows are run at a
    width multiple of 1 (the widths as written), then the rule found at ``OTHER_WIDTH``: a branch that also scales an
    argument the rule passes as written (``RepNCSPELAN4``'s c3 and c4, a head's hidden width) is still that rule,
    and the verdict says that its widths differ from the fork's at the other scales."""
    if is_backbone_branch(branch):
        return Verdict("backbone", "the branch builds the module and reads its width_list (the blog's backbone branch)")
    try:
        run = _compile(branch.body, sets)
    except NotRunnable as exc:
        return Verdict(None, f"the branch does more than compute the row's widths ({exc})")
    except SyntaxError as exc:
        return Verdict(None, f"the branch does not compile on its own: {exc}")
    trial = _Trial(run, _sentinel(name), _rule_function(), sets)
    runs, stale = trial.runs(rows, WIDTH)
    if all(t[0] == "error" for _, _, t in runs):
        why = (
            "the branch fails on every row tried here (the widths before it are numbers here; in the tree they may be "
            "what the rows before it give, such as a list), so no rule can be told"
        )
        return _as_written(branch, trial, rows, runs, sets or {}, assigned, why)
    rule = trial.rule(rows, runs)
    drops, given = False, rows
    if rule is None and not _reads_args(branch) and any(r.args for r in rows):
        # (its arguments are the branch's own whatever the row gives: the rule's, on rows that give none)
        rows = [replace(r, args=[], given=None) for r in rows]
        runs, stale = trial.runs(rows, WIDTH)
        rule = trial.rule(rows, runs)
        drops = rule is not None
    if rule is None:  # (carried as written, it gets the rows as given: run on those)
        runs = runs if given is rows else trial.runs(given, WIDTH)[0]
        why = "no rule gives the same widths and arguments as the branch"
        return _as_written(branch, trial, given, runs, sets or {}, assigned, why)
    said = (
        f" (it leaves c2 as the previous row's width on {stale}: compared where its inputs have that width, "
        "as in a model of the fork that builds)"
        if stale
        else ""
    )
    if not trial.agrees(rule, trial.runs(rows, OTHER_WIDTH)[0], OTHER_WIDTH):
        said += (
            f"; at a width multiple of {OTHER_WIDTH} the branch scales its arguments otherwise than '{rule}' does, "
            "so the yamls' smaller scales build with other widths than in the fork"
        )
    if drops:
        said += "; it never reads the row's arguments, which the rule passes on: compared on rows that give none"
    return Verdict(
        rule,
        f"the branch gives the same widths, arguments and repeats as '{rule}' on {len(rows)} row(s){said}",
        rows,
        drops_args=drops,
        notes=said,
    )


def _as_written(
    branch: Branch, trial: _Trial, rows: list[Row], runs: list[tuple[Row, list[int], tuple]], sets: dict, assigned, why
) -> Verdict:
    """The verdict on a branch no rule expresses (``why``): carried as written (the rule ``branch``), or not, and
    why not."""
    refused = _not_carried_as_written(branch, trial, runs, sets, assigned)
    if refused:
        return Verdict(None, f"{why}, and {refused}", rows)
    return Verdict(
        "branch",
        f"{why}: the branch itself is carried, as written (it reads only the row, the widths before it and the "
        f"chain's names; tried on {len(rows)} row(s))",
        rows,
    )


def _not_carried_as_written(
    branch: Branch, trial: _Trial, runs: list[tuple[Row, list[int], tuple]], sets: dict, assigned
) -> str | None:
    """Why ``branch`` cannot be carried as written (None: it can). Run as carried (on the adopted rows, whose
    yaml-level variables are substituted, with an empty yaml dict, and a placeholder for every value
    ``rtdetr_patch_module_args`` cannot give it) it must give what it gives in the tree, on every row."""
    absent = not_given(branch, assigned, sets)
    unknown = [a for a in absent if a != "c1" or not _sets_c1_first(branch)]
    if unknown and all(t[0] == "error" for _, _, t in runs):  # (then no run tells whether it needs them)
        return f"it reads {', '.join(unknown)}, which parse_model gives it and a carried branch is not given"
    trial.carried = _compile(branch.body, sets, absent)
    for row, ch, outcome in runs:
        if trial.theirs(row, ch, STALE_C2 if ch is CH else EQUAL, WIDTH, carried=True) != outcome:
            what = f" (it reads {', '.join(absent)})" if absent else ""
            return (
                f"run as carried on the adopted row {_shown(row)}, without what parse_model gives it besides the "
                f"row{what}, it gives other widths or arguments than in the tree"
            )
    return None


def _sets_c1_first(branch: Branch) -> bool:
    """Whether the first statement of the branch that names ``c1`` sets it without reading it (``c1 = ch[f]``)."""
    for stmt in branch.body:
        named = [n for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id == "c1"]
        if named:
            return isinstance(stmt, ast.Assign) and all(isinstance(n.ctx, ast.Store) for n in named)
    return False


def _absent(name: str) -> _Sentinel:
    """What a carried branch reads where parse_model had a value of ``name`` (one sentinel per name)."""
    return _sentinel(f"<{name}: not given>")


def _shown(row: Row) -> str:
    return f"[{row.f}, {row.n}, {row.args}]"


def walk(branch: Branch):
    """Every node of the branch's body."""
    return ast.walk(ast.Module(body=branch.body, type_ignores=[]))


def loads(branch: Branch) -> set[str]:
    """The names the branch's body reads."""
    return {n.id for n in walk(branch) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def names_read(branch: Branch) -> set[str]:
    """The names ``branch`` reads that it does not bind itself and that are not parse_model's row locals given to a
    carried branch (``m``, ``f``, ``ch``, ..., ``c2`` as the previous row's width, ``d``): c1, module names, sets,
    parse_model's other locals."""
    stores = {n.id for n in walk(branch) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    return loads(branch) - (stores - {"c1"}) - set(CALL) - set(GIVEN)


def _reads_args(branch: Branch) -> bool:
    """Whether the branch reads the row's arguments (``args`` loaded anywhere in it)."""
    return any(
        isinstance(node, ast.Name) and node.id == "args" and isinstance(node.ctx, ast.Load) for node in walk(branch)
    )


@dataclass
class _Trial:
    """One branch beside the rules: each run on the same rows, at the same widths before them."""

    run: object
    m: _Sentinel
    rules: dict
    sets: dict | None
    carried: object = None  # the branch as carried (``_compile`` with its not-given names), once asked

    def theirs(self, row: Row, ch: list[int], c2: int, width: float, carried: bool = False) -> tuple:
        """The branch on ``row``, as the tree runs it; ``carried``: as the carried branch runs (the adopted row's
        arguments, no yaml dict, another stale c1)."""
        args = list(row.args if row.given is None or carried else row.given)
        run, c1, depth, d = (
            (self.carried, _absent("c1"), _absent("depth"), {})
            if carried
            else (self.run, STALE_C1, 1.0, dict(row.d or {}))
        )
        return _outcome(
            lambda r: run(  # type: ignore[operator]
                self.m, 0, r.f, r.n, args, list(ch), NC, c1, c2, width, MAX_CHANNELS, depth, r.n, width, depth, d,
            ),
            row,
        )  # fmt: skip

    def ours(self, rule: str, row: Row, ch: list[int], width: float) -> tuple:
        self.rules["RTDETR_PATCH_MODULES"].clear()
        self.rules["RTDETR_PATCH_MODULES"].update({self.m: rule})
        return _outcome(
            lambda r: self.rules["rtdetr_patch_module_args"](
                self.m, 0, r.f, r.n, list(r.args), list(ch), NC, width, MAX_CHANNELS
            ),
            row,
        )

    def rule(self, rows: list[Row], runs: list[tuple[Row, list[int], tuple]]) -> str | None:
        """The first rule of ``ORDER`` that agrees with the branch on ``runs``, and on the rows run again over the
        second set of widths before them."""
        alt = None
        for rule in ORDER:
            if self.agrees(rule, runs, WIDTH):
                alt = alt or self.runs(rows, WIDTH, ALT_CH)[0]
                if self.agrees(rule, alt, WIDTH):
                    return rule
        return None

    def runs(
        self, rows: list[Row], width: float, base: list[int] = CH
    ) -> tuple[list[tuple[Row, list[int], tuple]], int]:
        """(row, the widths before it, what the branch gave) per row, and how many leave c2 as it was."""
        out, stale = [], 0
        for row in rows:
            outcome, ch = self.theirs(row, base, STALE_C2, width), base
            if outcome[0] == "ok" and outcome[1] == STALE_C2:  # c2 left as the previous row's: at equal widths
                ch = _equal_widths(row.f, base)
                outcome = self.theirs(row, ch, EQUAL, width)
                stale += 1
            out.append((row, ch, outcome))
        return out, stale

    def agrees(self, rule: str, runs: list[tuple[Row, list[int], tuple]], width: float) -> bool:
        tried = runs if rule != "conv" else [self.chained(row, ch, t, width) for row, ch, t in runs]
        ours = [self.ours(rule, row, ch, width) for row, ch, _ in tried]
        return all(_same(t, o, rule, row.last) for (row, _, t), o in zip(tried, ours)) and any(
            o[0] == "ok" for o in ours
        )

    def chained(self, row: Row, ch: list[int], outcome: tuple, width: float) -> tuple[Row, list[int], tuple]:
        """A row with repeats under 'conv' chains its copies: the fork's model builds only where the row's input
        has the width it outputs (else the second copy gets the wrong width, and 'conv' refuses the row on
        purpose). The row run again at that width, by the branch too; as it was where the width is not a number."""
        if row.n <= 1 or not isinstance(row.f, int) or not row.args or not isinstance(row.args[0], int):
            return row, ch, outcome
        chained = list(ch)
        chained[row.f] = self.rules["_scaled"](row.args[0], NC, width, MAX_CHANNELS)
        return row, chained, self.theirs(row, chained, STALE_C2, width)


def _same(theirs: tuple, ours: tuple, rule: str, last: bool | None = None) -> bool:
    if theirs[0] == "error" or ours[0] == "error":
        return theirs[0] == ours[0]
    if rule == "head" and last is not False:  # a head is the last row: its recorded width is never read (a row that
        return theirs[2:] == ours[2:]  # rows follow, ChannelTransformer's, must record the width the tree does)
    return theirs == ours
