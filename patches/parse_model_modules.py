"""The series' other posts: one ``parse_model`` branch for every registered module (attention,
convolutions, C2f-style blocks, necks, up-sampling, fusion, heads, the ResNet base)."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type

from .base import MARK, Outcome, TargetMissing, Transform, block_of, statement, with_block
from .parse_model import chain_else, has_branch, insert_before_else, is_branch_chain, layer_loop

REGISTRY = "RTDETR_PATCH_MODULES"
BRANCH = f"""\
if m in {REGISTRY}:  # {MARK}: a module registered with `--module FILE.py:NAME[=RULE]`, by its channel rule
    c2, args, n = rtdetr_patch_module_args(m, i, f, n, args, ch, nc, width, max_channels)
"""
_OUR_TEST = m.Comparison(
    left=m.Name("m"), comparisons=[m.ComparisonTarget(operator=m.In(), comparator=m.Name(REGISTRY))]
)


class ParseModelModules(Transform):
    """One ``elif`` in ``parse_model`` for every module that ``rtdetr-patch apply --module`` registers.

    Each post of the series adds a module and a hand-written branch for it, copied from the nearest
    existing one: ``c1, c2 = ch[f], args[0]`` for a convolution, ``args.insert(2, n)`` for a
    C2f-style block, ``c2 = ch[f]; args = [c2, *args]`` for attention, ``sum(ch[x] for x in f)``
    for a fusion. Here the branch is written once: the module's rule, recorded beside it in the
    registry ``RTDETR_PATCH_MODULES`` of the added package, decides its input widths, its
    arguments and its output width ``c2`` (always set), so a new module needs no new edit of
    ``tasks.py``. It goes right before the chain's final ``else: c2 = ch[f]``, after Ultralytics'
    own branches, whose sets hold none of the registered classes.
    """

    NAME = "parse-model-modules"
    FILE = "nn/tasks.py"
    BLOG_STEP = "4.5"
    LOOKED_FOR = "def parse_model(...) with its module-type if/elif chain ending in `else: c2 = ch[f]`"
    SCOPE = ()
    STATEMENTS = False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        super().leave_FunctionDef(original, updated)
        if self.classes or self.functions or updated.name.value != "parse_model":
            return updated
        found = layer_loop(updated)
        if found is None:
            raise TargetMissing("the layer loop of parse_model (the `for` that assigns `m_`)")
        body, at = found
        loop = ensure_type(body[at], cst.For)
        loop_body = list(block_of(loop))
        chains = [i for i, s in enumerate(loop_body) if is_branch_chain(s)]
        if not chains:
            raise TargetMissing("the module-type if/elif chain ending in `else: c2 = ch[f]` in parse_model")
        chain = ensure_type(loop_body[chains[0]], cst.If)
        if has_branch(chain, _OUR_TEST):
            self.settle(Outcome.APPLIED)
            return updated
        if chain_else(chain) is None:
            raise TargetMissing("the final `else: c2 = ch[f]` of parse_model's module-type chain")
        loop_body[chains[0]] = insert_before_else(chain, ensure_type(statement(BRANCH), cst.If))
        body[at] = with_block(loop, loop_body)
        self.settle(Outcome.PATCHED)
        return with_block(updated, body)
