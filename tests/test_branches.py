"""adopt's reading of a fork's parse_model chain (patcher/adopt/branches.py), on small sources written here
in the shapes the public forks use: names listed in module-level tuples, a first test that sums tuples,
``frozenset`` unions, and the set names a later branch reads.
"""

from __future__ import annotations

import textwrap

from rtdetr_patch.patcher.adopt.branches import parse_model_chain

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
