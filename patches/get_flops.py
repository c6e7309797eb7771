"""Blog step 4.9: ``torch_utils.get_flops`` reports real GFLOPs for RT-DETR models."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.helpers import ensure_type

from .base import MARK, Outcome, Transform, compound_statement

# ``torch.empty((1, c, *imgsz), ...)``: the release already profiles at the real image size.
_REAL_SIZE_PROBE = m.Call(
    func=m.Attribute(value=m.Name("torch"), attr=m.Name("empty")),
    args=[
        m.Arg(value=m.Tuple(elements=[m.ZeroOrMore(), m.StarredElement(value=m.Name("imgsz")), m.ZeroOrMore()])),
        m.ZeroOrMore(),
    ],
)

FALLBACK = f"""\
try:  # {MARK}: the stride-sized probe fails for RT-DETR, profile at the real image size (blog step 4.9)
    imgsz = imgsz if isinstance(imgsz, list) else [imgsz, imgsz]  # expand if int/float
    im = torch.empty((1, p.shape[1], *imgsz), device=p.device)  # input image in BCHW format
    return thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1e9 * 2  # imgsz GFLOPs
except Exception:
    {{body}}
"""  # ``{body}``: the release's own ``except`` block, spliced in by ``libcst.helpers.parse_template_statement``


class GetFlopsRealSize(Transform):
    """Fall back to profiling at the real image size when the stride-sized probe fails (blog step 4.9).

    On 8.0.x ``get_flops`` profiles a ``stride x stride`` (32x32) image and scales the result; an
    RT-DETR decoder cannot select its 300 queries from so few anchors, the call raises and the
    function returns 0, so ``model.info()`` prints no GFLOPs even for stock ``rtdetr-l``. The
    transform wraps the original ``except`` body: first try the real size, then do what the
    release did. From 8.1 the release has this fallback itself (and 8.4 profiles stride-aware at
    the real size): there the transform is not needed and the file is left alone.
    """

    NAME = "get-flops"
    FILE = "utils/torch_utils.py"
    BLOG_STEP = "4.9"
    LOOKED_FOR = "a top-level `try: ... except Exception:` in the module function get_flops"
    RELEASES = ((8, 0, 0), (8, 0, 9999))  # 8.0.x only: from 8.1 the release falls back by itself
    SCOPE = ()
    STATEMENTS = False

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.BaseStatement:
        super().leave_FunctionDef(original, updated)
        if self.classes or self.functions or updated.name.value != "get_flops":
            return updated
        body = list(updated.body.body)
        tries = [i for i, s in enumerate(body) if isinstance(s, cst.Try)]
        if not tries:
            return updated
        outer = ensure_type(body[tries[-1]], cst.Try)
        handler = outer.handlers[-1] if outer.handlers else None
        if handler is None:
            return updated
        first = handler.body.body[0] if handler.body.body else None
        if isinstance(first, cst.Try) and _is_ours(first):
            self.settle(Outcome.APPLIED)
            return updated
        if m.findall(updated, _REAL_SIZE_PROBE):
            self.settle(Outcome.NOT_NEEDED)
            return updated
        self.settle(Outcome.PATCHED)
        fallback = compound_statement(FALLBACK, body=handler.body)
        new_handler = handler.with_changes(body=handler.body.with_changes(body=[fallback]))
        body[tries[-1]] = outer.with_changes(handlers=[*outer.handlers[:-1], new_handler])
        return updated.with_changes(body=updated.body.with_changes(body=body))


def _is_ours(stmt: cst.Try) -> bool:
    """Our fallback: a ``try:`` whose header comment carries the mark."""
    comment = stmt.body.header.comment if isinstance(stmt.body, cst.IndentedBlock) else None
    return comment is not None and MARK in comment.value
