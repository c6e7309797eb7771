"""Before/after cases of restricted-layers (blog step 5.2): the transform on small sources shaped like the real code."""

from __future__ import annotations

import textwrap

import libcst as cst
from helpers import assert_before_after
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.restricted_layers import RestrictedLayers

RESTRICTED_BEFORE = """\
def parse_model(d, ch, verbose=True):
    restricted = _SafeLoad.restricted()
    for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
        m = globals()[m]
        if restricted and not (isinstance(m, type) and issubclass(m, torch.nn.Module)):
            # Under restricted loading, only known model layers may be named here.
            raise TypeError(f"module '{m}' is not a permitted model layer under restricted loading.")
"""


def test_restricted_layers_before_after_and_not_needed():
    after = RESTRICTED_BEFORE.replace(
        "torch.nn.Module)):\n",
        "torch.nn.Module)) and m not in RTDETR_PATCH_BACKBONES and m not in RTDETR_PATCH_MODULES:  # rtdetr-patch: "
        "registered backbones and modules may be factories (blog step 5.2)\n",
    )
    assert_before_after(RestrictedLayers, RESTRICTED_BEFORE, after)
    plain = RESTRICTED_BEFORE.replace("    restricted = _SafeLoad.restricted()\n", "").replace("restricted and ", "")
    same, outcome = RestrictedLayers().run(cst.parse_module(plain))
    assert outcome is Outcome.NOT_NEEDED and same.code == plain
    # a `restricted` check elsewhere (a method, not parse_model) is not touched
    method = "class A:\n    def parse_model(self):\n" + textwrap.indent(RESTRICTED_BEFORE.split("\n", 1)[1], "    ")
    same, outcome = RestrictedLayers().run(cst.parse_module(method))
    assert outcome is Outcome.NOT_NEEDED and same.code == method
