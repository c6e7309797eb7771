"""Before/after cases of parse-model-modules: the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing

MODULES_BEFORE = """\
def parse_model(d, ch, verbose=True):
    for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
        if m in {Conv, C2f}:
            c1, c2 = ch[f], args[0]
        elif m is Concat:
            c2 = sum(ch[x] for x in f)
        else:
            c2 = ch[f]
        m_ = m(*args)
        ch.append(c2)
"""


def test_parse_model_modules_before_after_and_missing():
    from rtdetr_patch.patches import ParseModelModules

    after = MODULES_BEFORE.replace(
        "        else:\n            c2 = ch[f]\n",
        "        elif m in RTDETR_PATCH_MODULES:  # rtdetr-patch: a module registered with `--module FILE.py:NAME[=RULE]`,"
        " by its channel rule\n"
        "            c2, args, n = rtdetr_patch_module_args(m, i, f, n, args, ch, nc, width, max_channels)\n"
        "        else:\n            c2 = ch[f]\n",
    )
    assert_before_after(ParseModelModules, MODULES_BEFORE, after)
    no_else = MODULES_BEFORE.replace("        else:\n            c2 = ch[f]\n", "")
    assert_missing(ParseModelModules, no_else, "chain ending in `else: c2 = ch[f]`")
