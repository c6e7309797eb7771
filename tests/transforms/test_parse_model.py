"""Before/after cases of parse-model (blog steps 4.4-4.6): the transform on small sources shaped like the real code."""

from __future__ import annotations

import re

import pytest
from helpers import assert_before_after, assert_missing, src, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.parse_model import ParseModelBackbones

PARSE_BEFORE = src('''
    def parse_model(d, ch, verbose=True):
        """Parse a YOLO model.yaml dictionary into a PyTorch model."""
        nc, act, scales = (d.get(x) for x in ("nc", "activation", "scales"))
        ch = [ch]
        layers, save, c2 = [], [], ch[-1]  # layers, savelist, ch out
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            m = getattr(torch.nn, m[3:]) if "nn." in m else globals()[m]  # get module
            n = n_ = max(round(n * depth), 1) if n > 1 else n  # depth gain
            if m in {Conv, C2f, RepC3}:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
            elif m is Concat:
                c2 = sum(ch[x] for x in f)
            else:
                c2 = ch[f]

            m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)  # module
            t = str(m)[8:-2].replace("__main__.", "")  # module type
            m_.np = sum(x.numel() for x in m_.parameters())  # number params
            m_.i, m_.f, m_.type = i, f, t  # attach index, 'from' index, type
            save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)  # append to savelist
            layers.append(m_)
            if i == 0:
                ch = []
            ch.append(c2)
        return nn.Sequential(*layers), sorted(save)
''')
PARSE_AFTER = src('''
    def parse_model(d, ch, verbose=True):
        """Parse a YOLO model.yaml dictionary into a PyTorch model."""
        nc, act, scales = (d.get(x) for x in ("nc", "activation", "scales"))
        ch = [ch]
        layers, save, c2 = [], [], ch[-1]  # layers, savelist, ch out
        backbone_shift = 0  # rtdetr-patch: index shift added by list-returning backbones (blog step 4.4)
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            m = getattr(torch.nn, m[3:]) if "nn." in m else globals()[m]  # get module
            n = n_ = max(round(n * depth), 1) if n > 1 else n  # depth gain
            backbone_built = m in RTDETR_PATCH_BACKBONES  # rtdetr-patch: this row builds a registered backbone (blog step 4.4)
            if m in {Conv, C2f, RepC3}:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
            elif m is Concat:
                c2 = sum(ch[x] for x in f)
            elif backbone_built:  # rtdetr-patch: a backbone that returns a list of feature maps (blog step 4.5)
                m_ = m(*args)
                m_.backbone = True
                c2 = rtdetr_patch_channels(m_)  # one channel entry per output, padded to five (blog step 4.6)
                backbone_shift += len(c2) - 1
            else:
                c2 = ch[f]

            if not backbone_built:  # rtdetr-patch: the backbone was built above (blog step 4.6)
                m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)  # module
            t = str(m)[8:-2].replace("__main__.", "")  # module type
            m_.np = sum(x.numel() for x in m_.parameters())  # number params
            m_.i, m_.f, m_.type = i + backbone_shift, f, t  # attach index, 'from' index, type
            save.extend(x % (i + backbone_shift) for x in ([f] if isinstance(f, int) else f) if x != -1)  # append to savelist
            layers.append(m_)
            if i == 0:
                ch = []
            if backbone_built:  # rtdetr-patch: each backbone output takes one index (blog step 4.6)
                ch.extend(c2)
                c2 = c2[-1]
            else:
                ch.append(c2)
        return nn.Sequential(*layers), sorted(save)
''')


def test_parse_model():
    assert_before_after(ParseModelBackbones, PARSE_BEFORE, PARSE_AFTER)


def test_parse_model_plain_if_else_chain():
    before = PARSE_BEFORE.replace(
        """        elif m is Concat:
            c2 = sum(ch[x] for x in f)
""",
        "",
    )
    code, outcome = transform(ParseModelBackbones, before)
    assert outcome is Outcome.PATCHED
    assert re.search(r"args = \[c1, c2, \*args\[1:\]\]\n        elif backbone_built:  # rtdetr-patch", code)
    assert transform(ParseModelBackbones, code) == (code, Outcome.APPLIED)


@pytest.mark.parametrize(
    "drop, words",
    [
        (
            "        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)  # append to savelist\n",
            ("`save.extend(...)`", "parse_model"),
        ),
        (
            "        m_.i, m_.f, m_.type = i, f, t  # attach index, 'from' index, type\n",
            ("`m_.i, m_.f, m_.type = ...`",),
        ),
        ("        ch.append(c2)\n", ("`ch.append(c2)`",)),
        ("        else:\n            c2 = ch[f]\n", ("the module-type if/elif chain ending in `else: c2 = ch[f]`",)),
    ],
)
def test_parse_model_missing_piece(drop, words):
    assert drop in PARSE_BEFORE
    assert_missing(ParseModelBackbones, PARSE_BEFORE.replace(drop, ""), *words)


def test_parse_model_missing_function():
    message = assert_missing(
        ParseModelBackbones, PARSE_BEFORE.replace("def parse_model(", "def parse_yaml("), "def parse_model(...)"
    )
    assert message == ParseModelBackbones.LOOKED_FOR


def test_parse_model_save_without_modulo():
    code = PARSE_BEFORE.replace(
        "save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)",
        "save.extend(x for x in ([f] if isinstance(f, int) else f) if x != -1)",
    )
    assert_missing(ParseModelBackbones, code, "`x % i`", "save.extend")


@pytest.mark.parametrize(
    "undo, words",
    [
        (
            (
                "        if backbone_built:  # rtdetr-patch: each backbone output takes one index (blog step 4.6)\n"
                "            ch.extend(c2)\n            c2 = c2[-1]\n        else:\n            ch.append(c2)\n",
                "        ch.append(c2)\n",
            ),
            "shift, flag, branch, guard, attach, save already present",
        ),
        (
            (
                "    backbone_shift = 0  # rtdetr-patch: index shift added by list-returning backbones (blog step 4.4)\n",
                "",
            ),
            "flag, branch, guard, attach, save, ch already present",
        ),
    ],
)
def test_parse_model_partly_patched_is_refused(undo, words):
    old, new = undo
    assert old in PARSE_AFTER
    assert_missing(ParseModelBackbones, PARSE_AFTER.replace(old, new), "partly patched", words, "hand-edited")
