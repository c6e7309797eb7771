"""RT-DETR's decoder rebuilds anchors it cached under inference mode before it trains on them."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import MARK, Outcome, Transform, expression, trailing_comment

STALE = "(self.anchors.is_inference() and not torch.is_inference_mode_enabled())"
_SHAPES_TEST = m.Comparison(
    left=m.Attribute(value=m.Name("self"), attr=m.Name("shapes")),
    comparisons=[m.ComparisonTarget(operator=m.NotEqual(), comparator=m.Name("shapes"))],
)
_ANCHORS_CALL = m.Call(func=m.Attribute(value=m.Name("self"), attr=m.Name("_generate_anchors")))
_UNCACHED = m.Assign(
    targets=[m.AssignTarget(target=m.Tuple(elements=[m.Element(m.Name()), m.Element(m.Name())]))], value=_ANCHORS_CALL
)


class DecoderAnchors(Transform):
    """Rebuild ``RTDETRDecoder``'s cached anchors when they were made under ``torch.inference_mode()``.

    From 8.3.206 on, ``RTDETRDecoder._get_decoder_input`` caches its anchors and valid mask per
    feature-map shape (``if self.dynamic or self.shapes != shapes:``). A pass under inference mode
    at the training size leaves inference tensors in that cache, and the next training forward at
    the same size multiplies and indexes with them, so the first backward fails with "Inference
    tensors cannot be saved for backward". The TensorBoard callback makes exactly that pass (it
    traces the live model under ``smart_inference_mode`` when training starts), and TensorBoard was
    on by default in Ultralytics' settings up to 8.3.x; the settings file keeps it after an upgrade.
    Not a blog step: it is what keeps ``model.train()`` of any RT-DETR model (stock ``rtdetr-l``
    included) running on those releases. The test gains ``or (self.anchors.is_inference() and not
    torch.is_inference_mode_enabled())``: false for every tensor made outside inference mode, so
    the cache and every output stay as the release makes them. Releases that rebuild the anchors on
    every call (no cache) do not need it.
    """

    NAME = "decoder-anchors"
    FILE = "nn/modules/head.py"
    BLOG_STEP = "-"
    LOOKED_FOR = "`self._generate_anchors(...)` in RTDETRDecoder._get_decoder_input"
    RELEASES = ((8, 3, 200), (999,))  # the cache appeared between 8.3.205 and 8.3.210; the shape check decides
    SCOPE = ("RTDETRDecoder._get_decoder_input",)

    def __init__(self) -> None:
        super().__init__()
        self.uncached = False  # `anchors, valid_mask = self._generate_anchors(...)`: built on every call

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If:
        if not self.in_method("RTDETRDecoder", "_get_decoder_input"):
            return updated
        tests = _terms(updated.test)
        if not any(m.matches(t, _SHAPES_TEST) for t in tests) or not m.findall(updated.body, _ANCHORS_CALL):
            return updated
        if any(_is_ours(t) for t in tests):
            self.settle(Outcome.APPLIED)
            return updated
        self.settle(Outcome.PATCHED)
        test = cst.BooleanOperation(left=updated.test, operator=cst.Or(), right=expression(STALE))
        header = trailing_comment(f"{MARK}: anchors cached under inference mode are rebuilt to train")
        return updated.with_changes(test=test, body=updated.body.with_changes(header=header))

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if self.in_method("RTDETRDecoder", "_get_decoder_input") and m.matches(updated, _UNCACHED):
            self.uncached = True
        return updated

    def not_needed(self) -> bool:
        """No cached test, and the anchors are built on every call: nothing can go stale."""
        return self.outcome is None and self.uncached


def _terms(test: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of an ``or`` chain (parentheses kept on each)."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.Or):
        return _terms(test.left) + _terms(test.right)
    return [test]


def _is_ours(term: cst.BaseExpression) -> bool:
    code = cst.Module(body=[]).code_for_node(term)
    return "is_inference()" in code and "is_inference_mode_enabled()" in code
