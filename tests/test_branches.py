"""adopt's reading of a fork's parse_model chain (patcher/adopt/branches.py), on small sources written here
in the shapes the public forks use: names listed in module-level tuples, a first test that sums tuples,
``frozenset`` unions, and the set names a later branch reads.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap

from rtdetr_patch.patcher.adopt import survey, yaml_rows
from rtdetr_patch.patcher.adopt.branches import Row, classify, parse_model_chain, reads_yaml_variables, sample_rows
from rtdetr_patch.patcher.adopt.carry import Layout
from rtdetr_patch.patcher.install.locate import Install

HEAD = """
import torch.nn as nn
"""


def _source(module_level: str, before_loop: str, chain: str) -> str:
    return (
        HEAD
        + textwrap.dedent(module_level)
        + textwrap.dedent("""
        def parse_model(d, ch, verbose=True):
            ch = [ch]
            layers, save, c2 = [], [], ch[-1]
        {before}
            for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
                m = globals()[m]
                n = n_ = max(round(n * depth), 1) if n > 1 else n
        {chain}
                m_ = m(*args)
        """).format(
            before=textwrap.indent(textwrap.dedent(before_loop), "    "),
            chain=textwrap.indent(textwrap.dedent(chain), "        "),
        )
    )


def test_a_first_test_that_sums_module_level_tuples_is_the_chain():
    """The "YOLO11 improvement project" shape: ``m in ((A, B) + C3K2_CLASS + A2C2F_CLASS)`` opens the chain."""
    text = _source(
        """
        C3K2_CLASS = (C3k2, C3k2_Faster)
        A2C2F_CLASS = (A2C2f, A2C2f_DYT)
        DETECT_CLASS = (Detect, Detect_LSCD)
        """,
        "",
        """
        if m in ((Classify, Conv, C2f) + C3K2_CLASS + A2C2F_CLASS):
            c1, c2 = ch[f], args[0]
            args = [c1, c2, *args[1:]]
        elif m in DETECT_CLASS:
            args.append([ch[x] for x in f])
        elif m is EMA:
            c2 = ch[f]
            args = [c2, *args]
        else:
            c2 = ch[f]
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None
    first = chain.branches[0]
    assert first.names == ["Classify", "Conv", "C2f", "C3k2", "C3k2_Faster", "A2C2f", "A2C2f_DYT"]
    assert chain.branch_of("Detect_LSCD") is chain.branches[1]
    assert chain.branch_of("EMA") is chain.branches[2]
    assert chain.final is chain.branches[-1]
    assert "DETECT_CLASS" not in chain.names()  # the tuple's name is not a module


def test_sets_made_of_other_sets_and_unions_in_parse_model():
    text = _source(
        "BASE = frozenset({Conv, C2f})\n",
        """
        base_modules = frozenset(BASE | {SPPF, RepC3})
        repeat_modules = {C2f, RepC3}
        """,
        """
        if m in base_modules:
            c1, c2 = ch[f], args[0]
        elif m in {*repeat_modules, C3}:
            c2 = ch[f]
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None
    assert chain.branches[0].names == ["Conv", "C2f", "SPPF", "RepC3"]
    assert chain.branches[1].names == ["C2f", "RepC3", "C3"]


def test_the_longest_chain_that_tests_m_is_read_not_the_statement_after_it():
    """Before, a chain whose first test was a sum listed no name and the next ``if`` was taken instead."""
    text = _source(
        "MORE = (B1, B2)\n",
        "",
        """
        if m in ((Conv,) + MORE):
            c2 = args[0]
        elif m is Concat:
            c2 = sum(ch[x] for x in f)
        elif m is Zoom:
            c2 = ch[f]
        if m in {Detect}:
            args.append([ch[x] for x in f])
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None and len(chain.branches) == 3
    assert chain.names() == ["Conv", "B1", "B2", "Concat", "Zoom"]


def test_a_string_compare_lists_no_module():
    text = _source(
        "",
        "",
        """
        if m in {Conv}:
            c2 = args[0]
        elif m == "node_mode":
            c2 = ch[f]
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None and chain.names() == ["Conv"]


def test_sets_grown_under_a_flag_annotated_or_extended_in_place():
    """Forks build their tuples in steps: annotated, extended under ``if AVAILABLE:`` or in a ``try``, ``+=``."""
    text = _source(
        """
        C3K2_CLASS: tuple = (C3k2,)
        if C3K2_EXTRACTION_AVAILABLE:
            C3K2_CLASS = C3K2_CLASS + (C3k2_Faster, C3k2_EMA)
        try:
            C3K2_CLASS += (C3k2_DCN,)
        except NameError:
            pass
        HEADS = (Detect,)
        HEADS |= {Detect_Aux}
        ALIAS = HEADS
        """,
        "",
        """
        if m in ((Conv,) + C3K2_CLASS):
            c2 = args[0]
        elif m in ALIAS:
            args.append([ch[x] for x in f])
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None
    assert chain.branches[0].names == ["Conv", "C3k2", "C3k2_Faster", "C3k2_EMA", "C3k2_DCN"]
    assert chain.branches[1].names == ["Detect", "Detect_Aux"]


# -- running the branches the extra_modules family writes ------------------------------------------------------
def _classify(text: str, name: str, rows=None):
    chain = parse_model_chain(text)
    assert chain is not None
    branch = chain.branch_of(name)
    assert branch is not None
    return classify(branch, name, rows or sample_rows(), chain.sets)


def test_a_head_branch_that_tests_m_against_a_module_level_tuple_is_the_head_rule():
    """``if m in SEGMENT_CLASS:`` inside the heads' branch: the tuple is the chain's, not a name to refuse (EGSMnet's
    40 heads failed on every row before)."""
    text = _source(
        """
        DETECT_CLASS = (Detect, Detect_LSCD)
        SEGMENT_CLASS = (Segment, Segment_LSCD)
        """,
        "",
        """
        if m in {Conv}:
            c2 = args[0]
        elif m in (DETECT_CLASS + SEGMENT_CLASS):
            args.append([ch[x] for x in f])
            if m in SEGMENT_CLASS:
                args[2] = make_divisible(min(args[2], max_channels) * width, 8)
        """,
    )
    rows = [Row([15, 18, 21], 1, [80]), Row([4, 6], 1, [80])]
    verdict = _classify(text, "Detect_LSCD", rows)
    assert verdict.rule == "head", verdict.why
    segment = _classify(text, "Segment_LSCD", [Row([15, 18, 21], 1, [80, 32, 256])])
    assert segment.rule == "head" and "width multiple of 0.5" in segment.why  # its npr is scaled, the rule's is not


def test_a_branch_that_leaves_c2_stale_is_compared_where_its_inputs_have_the_previous_width():
    """``Bi_FPN``: ``args = [len(f)]`` and c2 as the row before left it. On a row whose first input is not the
    previous row, a fork model builds only where they share a width: there, 'count' is the fork's count."""
    text = _source(
        "",
        "",
        """
        if m in {Conv}:
            c2 = args[0]
        elif m in {Bi_FPN}:
            length = len([ch[x] for x in f])
            args = [length]
        elif m is SDI:
            args = [[ch[x] for x in f]]
        """,
    )
    rows = [Row([4, -1], 1, []), Row([6, 13, -1], 1, [])]
    verdict = _classify(text, "Bi_FPN", rows)
    assert verdict.rule == "count" and "previous row's width on 2" in verdict.why
    assert _classify(text, "SDI", [Row([-1, 6, 4], 1, [])]).rule == "inputs"  # not a head: its width is recorded


def test_a_conv_row_with_repeats_is_the_conv_rule_where_its_copies_chain():
    """``[-1, 3, DGCST, [128]]`` in the conv set with no repeat insert: the copies chain, so the fork builds it only
    where the input has the output's width; before, such rows were never tried and no rule was found."""
    text = _source("", "", "if m in {Conv, DGCST}:\n    c1, c2 = ch[f], args[0]\n    args = [c1, c2, *args[1:]]\n")
    assert _classify(text, "DGCST", [Row(-1, 3, [128]), Row(-1, 6, [256])]).rule == "conv"


def test_yaml_level_variables_are_read_as_the_fork_substitutes_them():
    """``fusion_mode: bifpn`` read by the branch from the yaml's dict ``d``; the rule gets the adopted row (the
    value in place of the name)."""
    source = _source(
        "",
        "",
        """
        if m in {Conv}:
            if args[0] == 'head_channel':
                args[0] = d[args[0]]
            c1, c2 = ch[f], args[0]
            c2 = make_divisible(min(c2, max_channels) * width, 8)
            args = [c1, c2, *args[1:]]
        elif m is Fusion:
            args[0] = d[args[0]]
            c1, c2 = [ch[x] for x in f], (sum([ch[x] for x in f]) if args[0] == 'concat' else ch[f[0]])
            args = [c1, args[0]]
        """,
    )
    assert reads_yaml_variables(source)
    assert not reads_yaml_variables(_source("", "", "if m in {Conv}:\n    c2 = d['nc']\n"))
    d = {"fusion_mode": "bifpn", "head_channel": 256}
    fusion = [
        Row([-1, 6], 1, ["bifpn"], d=d, given=["fusion_mode"]),
        Row([-1, 6, 14], 1, ["bifpn"], d=d, given=["fusion_mode"]),
    ]
    assert _classify(source, "Fusion", fusion).rule == "inputs"
    blind = _classify(source, "Fusion", [Row([-1, 6], 1, ["bifpn"])])  # without d the branch fails: no rule is told
    assert blind.rule == "branch" and "fails on every row" in blind.why  # (carried as written: the yamls judge it)
    concat = {"fusion_mode": "concat"}
    verdict = _classify(source, "Fusion", [Row([-1, 6], 1, ["concat"], d=concat, given=["fusion_mode"])])
    assert verdict.rule is None and "run as carried on the adopted row" in verdict.why  # it needs d on that row
    conv = [Row(2, 1, [256], d=d, given=["head_channel"]), Row(-1, 1, [256, 3, 2], d=d, given=["head_channel", 3, 2])]
    assert _classify(source, "Conv", conv).rule == "conv"


YAML = (
    b"# a fork's yaml\r\n"
    b"nc: 80\r\n"
    b"fusion_mode: bifpn\r\n"
    b"node_mode: C2f\r\n"
    b"head_channel: 256\r\n"
    b"backbone:\r\n"
    b"  - [-1, 1, Conv, [64, 3, 2]]  # 0\r\n"
    b"  - [-1, 1, RepNCSPELAN4, [64, 32, 16]]  # 1: the fork's class\r\n"
    b"head:\r\n"
    b"  - [0, 1, Conv, [head_channel]]   # keep this comment\r\n"
    b"  - [[-1, 1], 1, Fusion, ['fusion_mode']]\r\n"
    b"  - [-1, 3, node_mode, [head_channel]]\r\n"
    b"  - [[2, 3], 1, Detect, [nc]]\r\n"
)


def test_the_adopted_copy_has_its_variables_and_renamed_modules_replaced_and_nothing_else():
    cfg = yaml_rows.load(YAML)
    assert cfg is not None
    values = yaml_rows.variables(cfg)
    assert values == {"fusion_mode": "bifpn", "node_mode": "C2f", "head_channel": 256}  # nc is Ultralytics' own
    out = yaml_rows.rewrite(YAML, values, {"RepNCSPELAN4": "RepNCSPELAN4_fork"})
    expected = (
        YAML.replace(b"RepNCSPELAN4, [", b"RepNCSPELAN4_fork, [")
        .replace(b"[head_channel]", b"[256]")
        .replace(b"['fusion_mode']", b"[bifpn]")
        .replace(b"node_mode, [", b"C2f, [")
    )
    assert out == expected
    assert out.count(b"\r\n") == YAML.count(b"\r\n") and b"node_mode: C2f\r\n" in out  # the keys stay
    assert yaml_rows.rewrite(YAML, {}, {}) is YAML
    assert yaml_rows.load(out)["head"][2] == [-1, 3, "C2f", [256]]
    assert yaml_rows.module_of([-1, 3, "node_mode", []], values) == "C2f"


def test_a_branch_that_never_reads_the_rows_arguments_is_a_rule_on_rows_that_give_none():
    """``SDI``: ``args = [[ch[x] for x in f]]`` on rows ``[[-2, -1], 1, SDI, [1]]``: the branch drops the ``1``;
    'inputs' would pass it on, so the adopted rows give none (and the rewrite empties them)."""
    text = _source("", "", "if m in {Conv}:\n    c2 = args[0]\nelif m is SDI:\n    args = [[ch[x] for x in f]]\n")
    verdict = _classify(text, "SDI", [Row([-2, -1], 1, [1]), Row([-1, 15], 1, [1])])
    assert verdict.rule == "inputs" and verdict.drops_args, verdict.why
    reading = _source(
        "", "", "if m in {Conv}:\n    c2 = args[0]\nelif m is SDI:\n    args = [[ch[x] for x in f], args[0] * 2]\n"
    )
    verdict = _classify(reading, "SDI", [Row([-2, -1], 1, [1])])  # it reads them: no rule, no rewrite
    assert verdict.rule == "branch" and not verdict.drops_args, verdict.why  # (the branch is carried as written)
    data = b"head:\n  - [[-2, -1], 1, SDI, [1]]  # 5\n  - [-1, 1, Conv, [1]]\n"
    assert (
        yaml_rows.rewrite(data, {}, {}, {"SDI"}) == b"head:\n  - [[-2, -1], 1, SDI, []]  # 5\n  - [-1, 1, Conv, [1]]\n"
    )


def test_a_chain_that_opens_with_a_test_of_its_own_is_read():
    """``if isinstance(m, str):`` (a timm backbone by name) before the module tests: still the chain."""
    text = _source(
        "",
        "",
        """
        if isinstance(m, str):
            c2 = 3
        elif m in {Conv, EMA_Conv}:
            c2 = args[0]
        elif m is Concat:
            c2 = sum(ch[x] for x in f)
        """,
    )
    chain = parse_model_chain(text)
    assert chain is not None and chain.names() == ["Conv", "EMA_Conv", "Concat"]
    assert chain.branches[0].names == [] and chain.branch_of("EMA_Conv") is chain.branches[1]


# -- a name the target release defines too ---------------------------------------------------------------------
FORK_TASKS = """
from .Addmodules import *
from .modules import ADown, Conv


def parse_model(d, ch, verbose=True):
    for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
        if m in {Conv, RepNCSPELAN4, ADown}:
            c1, c2 = ch[f], args[0]
            args = [c1, c2, *args[1:]]
        elif m is Zoom:
            c2 = ch[f]
"""


def _collision_tree(tmp_path, in_place=False):
    """A fork whose nn/Addmodules defines RepNCSPELAN4(c1, c2, c5=1) and whose nn/modules (Ultralytics' own file)
    defines ADown; a target whose tasks.py binds both, RepNCSPELAN4 taking (c1, c2, c3, c4, n)."""
    fork = tmp_path / "fork" / "ultralytics"
    (fork / "nn" / "Addmodules").mkdir(parents=True)
    (fork / "nn" / "modules").mkdir()
    (fork / "nn" / "tasks.py").write_text(FORK_TASKS)
    (fork / "nn" / "Addmodules" / "__init__.py").write_text("from .elan import *\n")
    (fork / "nn" / "Addmodules" / "elan.py").write_text(
        "class RepNCSPELAN4:\n    def __init__(self, c1, c2, c5=1):\n        pass\n"
    )
    (fork / "nn" / "modules" / "__init__.py").write_text("class Conv:\n    pass\n\n\nclass ADown:\n    pass\n")
    target = tmp_path / "target" / "ultralytics"
    (target / "nn").mkdir(parents=True)
    (target / "nn" / "tasks.py").write_text(
        "class RepNCSPELAN4:\n    def __init__(self, c1, c2, c3, c4, n=1):\n        pass\n\n\nclass ADown:\n    pass\n"
    )
    install = Install(target, "8.4.190", sys.executable, "a test")
    theirs = {"nn/modules/__init__.py": fork / "nn" / "modules" / "__init__.py"}
    resolver = survey.Resolver(fork)
    layout = Layout(resolver, fork, theirs, [], [])  # (the release's files are the fork's own here)
    tree = survey._Tree(resolver, {}, theirs, [], install, layout, in_place)
    chain = parse_model_chain(FORK_TASKS)
    assert chain is not None
    return tree, chain, {"RepNCSPELAN4", "ADown"}


def test_the_forks_own_class_of_a_name_the_release_defines_is_carried_under_another_name(tmp_path):
    tree, chain, native = _collision_tree(tmp_path)
    rows = [Row(-1, 1, [256])]
    elan = survey._judge("RepNCSPELAN4", chain, native, rows, tree)
    assert (elan.status, elan.rule, elan.registered) == ("carried", "conv", "RepNCSPELAN4_fork"), elan
    assert "RepNCSPELAN4(c1, c2, c5=1) in the tree, RepNCSPELAN4(c1, c2, c3, c4, n=1) in 8.4.190" in elan.why
    assert "registered" not in elan.to_dict()  # (the record's row keeps the fields it always had)
    assert tree.resolver.define("nn/tasks.py", "ADown") == "nn/modules/__init__.py"
    own = survey._judge("ADown", chain, native, rows, tree)  # the fork's is Ultralytics' own file: the release's
    assert (own.status, own.registered) == ("native", None)
    edited_rel = ["nn/modules/__init__.py"]  # the fork's ADown, in an edited file whose release defines it too
    layout = Layout(tree.resolver, tree.layout.pristine, tree.theirs, edited_rel, [])
    edited = dataclasses.replace(tree, modified=edited_rel, layout=layout)
    added = survey._judge("ADown", chain, native, rows, edited)
    assert added.status == "native" and "edited in place" in added.why and "the rows use the release's" in added.why
    in_place, chain, native = _collision_tree(tmp_path / "again", in_place=True)
    kept = survey._judge("RepNCSPELAN4", chain, native, rows, in_place)  # in place too: its yamls are rewritten
    assert (kept.status, kept.registered) == ("carried", "RepNCSPELAN4_fork"), kept
    assert survey._fork_name("RepNCSPELAN4", {"RepNCSPELAN4_fork"}) == "RepNCSPELAN4_fork2"
