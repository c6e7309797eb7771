"""Branches no rule expresses, carried as written (patcher/adopt/branch_file.py): the shapes the ``extra_modules``
family writes (CGAFusion's ``c2 = ch[f[1]]``, WaveletPool's ``ch[f] * 4``, SBA's list of input widths,
GetIndexOutput's index into a list width, a branch inside a big conv set that reads a local only for another
module), run from the generated file against what the tree's own branch gives, and the refusals.
"""

from __future__ import annotations

import sys
import types

import pytest
from rtdetr_patch.patcher.adopt import branch_file, model_init
from rtdetr_patch.patcher.adopt.branches import Row, classify, parse_model_chain, sample_rows
from test_branches import _source

CHAIN = """
if m in {Conv, DySnake, KW}:
    c1, c2 = ch[f], args[0]
    args = [c1, c2, *args[1:]]
    if m is KW:
        args.insert(2, manager)
    if m is DySnake:
        c2 = c2 * 3
elif m in {CGAFusion, SDFM}:
    c2 = ch[f[1]]
    args = [c2, *args]
elif m is WaveletPool:
    c2 = ch[f] * 4
elif m is SBA:
    c1 = [ch[x] for x in f]
    c2 = c1[-1]
    args = [c1, c2]
elif m is GetIndexOutput:
    c2 = ch[f][args[0]]
elif m is ChannelSplit:
    c2 = args[1] - args[0]
elif m in HEADS:
    c2 = ch[f] + len(HEADS)
elif m is Layered:
    c2 = ch[f] * len(layers)
elif m is Stale:
    c2 = c1 * 2
else:
    c2 = ch[f]
"""
TREE = _source("HEADS = (Detect, Segment)\n", "manager = None\n", CHAIN)


def _chain():
    chain = parse_model_chain(TREE)
    assert chain is not None
    return chain


def _verdict(name, rows=None):
    chain = _chain()
    branch = chain.branch_of(name)
    assert branch is not None
    return classify(branch, name, rows or sample_rows(), chain.sets, chain.assigned)


class _Module:
    """A class whose identity ``m`` is compared with."""


@pytest.fixture
def carried(monkeypatch):
    """The generated file, imported with a tasks module of this release's classes (SDFM renamed SDFM_fork)."""
    chain = _chain()
    names = ["CGAFusion", "SDFM", "WaveletPool", "SBA", "GetIndexOutput", "DySnake", "Detect"]
    registered = {n: ("SDFM_fork" if n == "SDFM" else n) for n in names}
    classes = {r: type(r, (_Module,), {}) for r in registered.values()}
    tasks = types.ModuleType("ultralytics.nn.tasks")
    vars(tasks).update(classes, Segment=type("Segment", (_Module,), {}))
    monkeypatch.setitem(sys.modules, "ultralytics.nn.tasks", tasks)
    text = branch_file.source(
        {registered[n]: chain.branch_of(n) for n in names},
        chain,
        {"SDFM": "SDFM_fork"},
        dict.fromkeys(classes, 640),
        "fork/ultralytics (Ultralytics 8.2.50)",
    )
    module = types.ModuleType("adopted_parse_model")
    exec(compile(text, "adopted_parse_model.py", "exec"), vars(module))
    return module, classes


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("CGAFusion", [Row([-1, 6], 1, [])]),
        ("WaveletPool", [Row(-1, 1, [])]),
        ("SBA", [Row([4, -1], 1, [])]),
        ("DySnake", [Row(-1, 1, [64, 3])]),
        ("Detect", [Row(-1, 1, [])]),
        ("ChannelSplit", [Row(0, 1, [0, 3]), Row(0, 1, [3, 6])]),  # (3 channels, as the input before it: not 'plain')
    ],
)
def test_a_branch_no_rule_expresses_is_carried_as_written(name, rows):
    verdict = _verdict(name, rows)
    assert verdict.rule == "branch", verdict.why


def test_a_branch_that_fails_on_every_sample_row_is_carried_for_the_yamls_to_judge():
    """``ch[f][args[0]]``: the width before is a list in the tree (a CFPT row's), a number here."""
    verdict = _verdict("GetIndexOutput", [Row(15, 1, [0])])
    assert verdict.rule == "branch" and "fails on every row" in verdict.why


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("KW", "manager"),  # its own module's path reads parse_model's manager
        ("Layered", "layers"),
        ("Stale", "c1"),
    ],
)
def test_a_branch_that_needs_what_a_carried_branch_is_not_given_is_not_carried(name, said):
    verdict = _verdict(name, [Row(-1, 1, [64])])
    assert verdict.rule is None and said in verdict.why, verdict.why


def test_the_carried_functions_give_what_the_trees_branches_give(carried):
    module, classes = carried
    ch = [3, 16, 32, 64, 128, 256, 512]
    call = module.BRANCHES

    def run(name, f, n, args):
        return call[name](classes[name], 7, f, n, list(args), list(ch), 80, 1.0, 1024)

    assert run("CGAFusion", [-1, 3], 1, [2]) == (64, [64, 2], 1)
    assert run("SDFM_fork", [-1, 3], 1, []) == (64, [64], 1)  # the renamed class is the one the branch tests
    assert run("WaveletPool", -1, 1, []) == (2048, [], 1)
    assert run("SBA", [2, -1], 1, []) == (512, [[32, 512], 512], 1)
    assert run("DySnake", -1, 1, [64, 3]) == (192, [512, 64, 3], 1)  # ``m is DySnake`` inside the conv set
    assert run("Detect", -1, 1, []) == (514, [], 1)  # HEADS, the tree's tuple, is this release's (Detect, Segment)
    wide = [3, [16, 32, 64]]
    assert module.BRANCHES["GetIndexOutput"](classes["GetIndexOutput"], 2, -1, 1, [2], wide, 80, 1.0, 1024)[0] == 64
    assert module.BRANCHES["CGAFusion"] is module.BRANCHES["SDFM_fork"]  # one function for one branch
    assert dict.fromkeys(classes, 640) == module.PROBE_SIZES


def test_the_stride_probe_size_is_read_from_the_tree_and_the_patched_release():
    fork = "class DetectionModel:\n    def __init__(self, ch=3):\n        s = 640  # 2x min stride\n"
    patched = "class DetectionModel:\n    def __init__(self):\n        s = rtdetr_patch_probe_size(self.model, 256)\n"
    assert model_init.probe_size(fork) == 640
    assert model_init.probe_size(patched) == 256
    assert model_init.probe_size("class DetectionModel:\n    def __init__(self):\n        s = size\n") is None
    assert model_init.probe_size("def (") is None


def test_a_name_without_a_branch_runs_the_branches_that_test_no_module_then_the_else():
    """The fork routes its multi-input rows by ``isinstance(f, list)`` and ``m.__name__`` in a nested else (which
    reads as elif): a name with no branch of its own runs those, not only the closing else (``c2 = ch[f]``, which
    fails on a list of inputs)."""
    text = _source(
        "",
        "",
        """
        if m in {Conv}:
            c2 = args[0]
        elif isinstance(f, list):
            if m.__name__ in {"MPI"}:
                c2 = args[0]
            else:
                c2 = sum(ch[x] for x in f)
        else:
            c2 = ch[f]
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None and chain.branch_of("Fuse") is None
    fallback = chain.fallback
    assert fallback is not None and fallback is chain.fallback  # one branch for every name that runs it
    verdict = classify(fallback, "Fuse", [Row([-1, 4], 1, [])], chain.sets, chain.assigned)
    assert verdict.rule == "concat", verdict.why  # the list branch, not the else
    assert classify(fallback, "Plain", [Row(-1, 1, [])], chain.sets, chain.assigned).rule == "plain"


def test_a_head_shaped_branch_whose_row_is_read_later_records_the_trees_width():
    """ChannelTransformer: ``c2 = c1 = [ch[x] for x in f]; args = [c1]`` gives the head rule's arguments, but its
    row is followed by rows that read its width (a list): 'head' (which records a number) is not it."""
    text = _source(
        "",
        "",
        "if m in {Conv}:\n    c2 = args[0]\nelif m is CT:\n    c1 = [ch[x] for x in f]\n    c2 = c1\n    args = [c1]\n",
    )
    chain = parse_model_chain(text)
    assert chain is not None
    branch = chain.branch_of("CT")
    assert classify(branch, "CT", [Row([4, 6, 9], 1, [], last=True)], chain.sets, chain.assigned).rule == "head"
    assert classify(branch, "CT", [Row([4, 6, 9], 1, [], last=False)], chain.sets, chain.assigned).rule == "branch"


def test_the_added_package_calls_a_carried_branch_and_probes_at_the_forks_size_only_with_its_modules(monkeypatch):
    """``rtdetr_patch_module_args`` for the rule 'branch', and ``rtdetr_patch_probe_size``: 640 for a model that
    holds a module adopted from a fork that probes at 640 (as a row's copies too), the release's size otherwise."""
    import rtdetr_patch.templates.Addmodules as added
    import torch.nn as nn

    class Wavelet(nn.Module):
        def __init__(self):
            super().__init__()

    def branch(m, i, f, n, args, ch, nc, width, max_channels):
        return ch[f] * 4, list(args), n

    monkeypatch.setitem(added.RTDETR_PATCH_MODULES, Wavelet, "branch")
    monkeypatch.setitem(added.RTDETR_PATCH_BRANCHES, Wavelet, branch)
    assert added.rtdetr_patch_module_args(Wavelet, 3, -1, 1, [], [3, 16], 80, 1.0, 1024) == (64, [], 1)
    stock = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Conv2d(16, 16, 3))
    assert added.rtdetr_patch_probe_size(stock, 256) == 256
    monkeypatch.setitem(added.RTDETR_PATCH_PROBE_SIZES, Wavelet, 640)
    assert added.rtdetr_patch_probe_size(stock, 256) == 256  # the release's models keep the release's size
    assert added.rtdetr_patch_probe_size(nn.Sequential(nn.Conv2d(3, 16, 3), Wavelet()), 256) == 640
    assert added.rtdetr_patch_probe_size(nn.Sequential(nn.Sequential(Wavelet(), Wavelet())), 256) == 640
