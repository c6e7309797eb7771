"""Restricted loading builds a model whose yaml names a registered backbone factory."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type

from .base import MARK, Outcome, TargetMissing, Transform, block_of, expression, methods, statements, trailing_comment

REGISTRY = "RTDETR_PATCH_BACKBONES"
MODULES = "RTDETR_PATCH_MODULES"
ALSO = f"m not in {REGISTRY} and m not in {MODULES}"

# ``if restricted and not (isinstance(m, type) and issubclass(m, torch.nn.Module)):``
_CHECK = m.BooleanOperation(left=m.Name("restricted"), operator=m.And(), right=m.UnaryOperation(operator=m.Not()))
_OURS = m.BooleanOperation(
    left=m.BooleanOperation(
        left=_CHECK,
        operator=m.And(),
        right=m.Comparison(
            left=m.Name("m"), comparisons=[m.ComparisonTarget(operator=m.NotIn(), comparator=m.Name(REGISTRY))]
        ),
    ),
    operator=m.And(),
    right=m.Comparison(
        left=m.Name("m"), comparisons=[m.ComparisonTarget(operator=m.NotIn(), comparator=m.Name(MODULES))]
    ),
)


_RESTRICTED = m.Assign(targets=[m.AssignTarget(target=m.Name("restricted"))])


class RestrictedLayers(Transform):
    """Let restricted model construction accept the registry's names (blog step 5.2: training works).

    Under ``ULTRALYTICS_SAFE_LOAD=1`` (8.4.x), ``parse_model`` refuses any yaml name that is not a
    ``torch.nn.Module`` class: ``if restricted and not (isinstance(m, type) and issubclass(m,
    torch.nn.Module)): raise TypeError(...)``. The series' yamls mostly name factory functions
    (``repvit_m0_9``, ``efficientformerv2_s2``), so a model with such a backbone could not even be
    built for training, and the same holds for modules registered by a factory (``--module
    FILE.py:make_gate``). The check gains ``and m not in RTDETR_PATCH_BACKBONES and m not in
    RTDETR_PATCH_MODULES``: the registries' entries were checked by ``apply``; every other name is
    refused exactly as before. Releases without restricted loading do not need it.
    """

    NAME = "restricted-layers"
    FILE = "nn/tasks.py"
    BLOG_STEP = "5.2"
    LOOKED_FOR = "`if restricted and not (...)` in the layer loop of parse_model"
    SCOPE = ("parse_model",)
    STATEMENTS = False

    def __init__(self) -> None:
        super().__init__()
        self.has_restricted = False  # parse_model computes `restricted = ...` (releases with _SafeLoad)

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If:
        if self.functions[-1:] != ["parse_model"]:
            return updated
        if m.matches(updated.test, _OURS):
            self.settle(Outcome.APPLIED)
        elif m.matches(updated.test, _CHECK) and any(
            m.matches(s, m.SimpleStatementLine(body=[m.Raise()])) for s in block_of(updated)
        ):
            self.settle(Outcome.PATCHED)
            test = cst.BooleanOperation(left=updated.test, operator=cst.And(), right=expression(ALSO))
            header = ensure_type(updated.body, cst.IndentedBlock).header  # block_of found the raise in it
            if header.comment is None:
                header = trailing_comment(f"{MARK}: registered backbones and modules may be factories (blog step 5.2)")
            return updated.with_changes(test=test, body=updated.body.with_changes(header=header))
        return updated

    def outcome_before_walk(self, module: cst.Module) -> Outcome | None:
        """A look at parse_model's statements first: most releases have no `restricted` at all (not needed), and
        a patched one needs no walk; only a pristine check is rewritten by the (statement-level) walk."""
        body = next((f for cls, f in methods(module) if cls is None and f.name.value == "parse_model"), None)
        shapes = list(statements(block_of(body))) if body is not None else []
        self.has_restricted = any(
            isinstance(s, cst.SimpleStatementLine)
            and any(m.matches(x, _RESTRICTED) for x in s.body if isinstance(x, cst.Assign))
            for s in shapes
        )
        if not self.has_restricted:
            return Outcome.NOT_NEEDED
        ifs = [s for s in shapes if isinstance(s, cst.If)]
        if any(m.matches(s.test, _OURS) for s in ifs):
            return Outcome.APPLIED
        if not any(m.matches(s.test, _CHECK) for s in ifs):
            raise TargetMissing(self.LOOKED_FOR)
        return None
