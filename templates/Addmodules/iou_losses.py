"""The box-regression IoU losses a model yaml can choose (``iou_loss: NAME``, ``iou_loss_args: {...}``).

One small class per variant, each citing its paper. A variant's ``loss(a, b, ctx)`` takes predicted and
target boxes as ``x1, y1, x2, y2`` tensors of shape ``(..., 4)`` and returns the per-box loss ``(..., 1)``.
``IouLossChoice`` is what a patched criterion calls in place of the release's ``bbox_iou``: it returns
``1 - loss``, so the release's own ``1.0 - iou`` gives the chosen loss. ``giou``, ``diou`` and ``ciou`` call
the release's own ``bbox_iou`` when the loss hands it over, so choosing the loss a release already uses
trains bit for bit as that release does; the classes below are their equations, used where no release
function is given (and as the check of the others).

Only the box-regression term changes: Ultralytics' assignment (TaskAlignedAssigner, the Hungarian matcher)
and its validation metrics keep the release's own IoU.

``rtdetr_patch_iou_loss`` checks a yaml's choice (``parse_model`` calls it when the model is built);
``rtdetr_patch_criterion`` attaches the choice to a criterion (every ``init_criterion`` of ``tasks.py``
hands its criterion through it); ``rtdetr_patch_iou_state`` gives parse_model's layers the buffer that holds
Wise-IoU v2/v3's running means (saved with the checkpoint). This file imports only ``math`` and ``torch``.
"""

from __future__ import annotations

import math

import torch

EPS = 1e-7
KEY, ARGS_KEY = "iou_loss", "iou_loss_args"
ATTR = "rtdetr_patch_iou"  # what a patched loss file reads
STATE = "rtdetr_patch_iou_mean"  # the buffer of parse_model's layers holding Wise-IoU v2/v3's running means
SLOTS = 2  # one running mean per box term: an end-to-end head's criterion has two (one-to-many, one-to-one)


class IouLossError(ValueError):
    """A model yaml's ``iou_loss`` / ``iou_loss_args`` that cannot be used."""


# -- geometry shared by the variants -----------------------------------------------------------------------
class Pair:
    """The quantities of a (predicted, target) box pair the papers' equations use; all ``(..., 1)``."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        self.ax1, self.ay1, self.ax2, self.ay2 = a.chunk(4, -1)
        self.bx1, self.by1, self.bx2, self.by2 = b.chunk(4, -1)
        self.aw, self.ah = self.ax2 - self.ax1, self.ay2 - self.ay1
        self.bw, self.bh = self.bx2 - self.bx1, self.by2 - self.by1
        self.dx = (self.bx1 + self.bx2 - self.ax1 - self.ax2) / 2  # centre offsets, target minus prediction
        self.dy = (self.by1 + self.by2 - self.ay1 - self.ay2) / 2
        self.inter = (self.ax2.minimum(self.bx2) - self.ax1.maximum(self.bx1)).clamp(0) * (
            self.ay2.minimum(self.by2) - self.ay1.maximum(self.by1)).clamp(0)
        self.union = self.aw * self.ah + self.bw * self.bh - self.inter + EPS
        self.iou = self.inter / self.union
        self.cw = self.ax2.maximum(self.bx2) - self.ax1.minimum(self.bx1)  # the smallest enclosing box
        self.ch = self.ay2.maximum(self.by2) - self.ay1.minimum(self.by1)
        self.c2 = self.cw.pow(2) + self.ch.pow(2) + EPS  # its squared diagonal
        self.rho2 = self.dx.pow(2) + self.dy.pow(2)  # squared distance of the centres


def overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plain IoU of ``x1y1x2y2`` boxes, ``(..., 1)``."""
    ax1, ay1, ax2, ay2 = a.chunk(4, -1)
    bx1, by1, bx2, by2 = b.chunk(4, -1)
    inter = (ax2.minimum(bx2) - ax1.maximum(bx1)).clamp(0) * (ay2.minimum(by2) - ay1.maximum(by1)).clamp(0)
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter + EPS
    return inter / union


def to_xyxy(box: torch.Tensor, xywh: bool) -> torch.Tensor:
    if not xywh:
        return box
    x, y, w, h = box.chunk(4, -1)
    return torch.cat((x - w / 2, y - h / 2, x + w / 2, y + h / 2), -1)


class Context:
    """What the scale-dependent variants need: ``size``, the image's (width, height) in the boxes' units, and
    ``scale``, pixels per box unit; each broadcastable to ``(..., 1)``."""

    def __init__(self, size=None, scale=None):
        self.size, self.scale = size, scale


# -- the variants ------------------------------------------------------------------------------------------
class Variant:
    NAME = ""
    PARAMS: dict = {}  # name -> default
    RELEASE_FLAG: str | None = None  # the keyword of Ultralytics' bbox_iou that computes this same loss
    NEEDS: tuple = ()  # "size", "scale": what of the Context it reads

    def __init__(self, **params):
        for key, default in self.PARAMS.items():
            setattr(self, key, float(params.get(key, default)))

    def check(self) -> str | None:
        """Why the parameters cannot be used, or None."""
        return None

    def loss(self, a, b, ctx: Context | None = None) -> torch.Tensor:
        raise NotImplementedError


class GIoU(Variant):
    """GIoU loss: Rezatofighi et al., "Generalized Intersection over Union: A Metric and a Loss for Bounding
    Box Regression", CVPR 2019, arXiv:1902.09630: L = 1 - IoU + |C \\ (A ∪ B)| / |C|, C the smallest enclosing box."""

    NAME, RELEASE_FLAG = "giou", "GIoU"

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        area = p.cw * p.ch + EPS
        return 1 - p.iou + (area - p.union) / area


class DIoU(Variant):
    """DIoU loss: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
    AAAI 2020, arXiv:1911.08287, the DIoU loss: L = 1 - IoU + rho^2(b, b_gt) / c^2."""

    NAME, RELEASE_FLAG = "diou", "DIoU"

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        return 1 - p.iou + p.rho2 / p.c2


def _aspect(p: Pair) -> torch.Tensor:
    """CIoU's aspect-ratio term v = 4 / pi^2 (arctan(w_gt / h_gt) - arctan(w / h))^2."""
    return 4 / math.pi**2 * ((p.bw / (p.bh + EPS)).atan() - (p.aw / (p.ah + EPS)).atan()).pow(2)


class CIoU(Variant):
    """CIoU loss: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression",
    AAAI 2020, arXiv:1911.08287, the CIoU loss: L = 1 - IoU + rho^2 / c^2 + alpha v,
    alpha = v / ((1 - IoU) + v), alpha held constant in the backward pass (as Ultralytics' own CIoU does)."""

    NAME, RELEASE_FLAG = "ciou", "CIoU"

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        v = _aspect(p)
        with torch.no_grad():
            alpha = v / (1 - p.iou + v + EPS)
        return 1 - p.iou + p.rho2 / p.c2 + alpha * v


def _eiou(p: Pair) -> torch.Tensor:
    return (1 - p.iou + p.rho2 / p.c2 + (p.aw - p.bw).pow(2) / (p.cw.pow(2) + EPS)
            + (p.ah - p.bh).pow(2) / (p.ch.pow(2) + EPS))


class EIoU(Variant):
    """EIoU loss: Zhang et al., "Focal and Efficient IOU Loss for Accurate Bounding Box Regression",
    arXiv:2101.08158 (2021, v2 2022), the EIoU loss: L = 1 - IoU + rho^2(b, b_gt) / (w_c^2 + h_c^2)
    + rho^2(w, w_gt) / w_c^2 + rho^2(h, h_gt) / h_c^2."""

    NAME = "eiou"

    def loss(self, a, b, ctx=None):
        return _eiou(Pair(a, b))


class FocalEIoU(Variant):
    """Focal-EIoU loss: Zhang et al., "Focal and Efficient IOU Loss for Accurate Bounding Box Regression",
    arXiv:2101.08158, the Focal-EIoU loss: L = IoU^gamma L_EIoU, gamma = 0.5. IoU^gamma is a weight
    (no gradient through it: its derivative is infinite at IoU = 0)."""

    NAME, PARAMS = "focal-eiou", {"gamma": 0.5}

    def check(self):
        return None if self.gamma >= 0 else "gamma must be >= 0"

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        return p.iou.detach().clamp(0).pow(self.gamma) * _eiou(p)


class SIoU(Variant):
    """SIoU loss: Gevorgyan, "SIoU Loss: More Powerful Learning for Bounding Box Regression", arXiv:2205.12740,
    2022: angle cost Lambda = 1 - 2 sin^2(arcsin(x) - pi/4), x = |c_h| / sigma (the centres' height offset
    over their distance); distance cost Delta = sum_{t=x,y} (1 - exp(-gamma rho_t)), rho_x = (dx / c_w)^2,
    rho_y = (dy / c_h)^2 over the enclosing box, gamma = 2 - Lambda; shape cost
    Omega = sum_{t=w,h} (1 - exp(-omega_t))^theta, omega_w = |w - w_gt| / max(w, w_gt), theta = 4;
    L = 1 - IoU + (Delta + Omega) / 2."""

    NAME, PARAMS = "siou", {"theta": 4.0}

    def check(self):
        return None if self.theta >= 1 else "theta must be >= 1"

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        sigma = (p.rho2 + EPS).sqrt()
        x = (p.dy.abs() / sigma).clamp(0, 1 - 1e-6)  # sin(alpha); kept off 1, where arcsin's slope is infinite
        angle = 1 - 2 * torch.sin(torch.arcsin(x) - math.pi / 4).pow(2)
        gamma = 2 - angle
        rho_x = (p.dx / (p.cw + EPS)).pow(2)
        rho_y = (p.dy / (p.ch + EPS)).pow(2)
        distance = 2 - torch.exp(-gamma * rho_x) - torch.exp(-gamma * rho_y)
        omega_w = (p.aw - p.bw).abs() / (p.aw.maximum(p.bw) + EPS)
        omega_h = (p.ah - p.bh).abs() / (p.ah.maximum(p.bh) + EPS)
        shape = (1 - torch.exp(-omega_w)).pow(self.theta) + (1 - torch.exp(-omega_h)).pow(self.theta)
        return 1 - p.iou + (distance + shape) / 2


class _WIoU(Variant):
    """Shared by the Wise-IoU versions: Tong et al., "Wise-IoU: Bounding Box Regression Loss with Dynamic
    Focusing Mechanism", arXiv:2301.10051, 2023. v1: L = R_WIoU L_IoU,
    R_WIoU = exp(((x - x_gt)^2 + (y - y_gt)^2) / (W_g^2 + H_g^2)*), * = no gradient (the enclosing box)."""

    def _v1(self, p: Pair):
        l_iou = 1 - p.iou
        return torch.exp(p.rho2 / p.c2.detach()) * l_iou, l_iou


class WIoUv1(_WIoU):
    __doc__ = _WIoU.__doc__
    NAME = "wiou-v1"

    def loss(self, a, b, ctx=None):
        return self._v1(Pair(a, b))[0]


class _Running(_WIoU):
    """A running mean of L_IoU (the paper's \\bar{L_IoU}): updated with ``momentum`` from each batch computed
    with gradients (training), read as it stands by the validator's loss. The paper sets m = 1 - 0.05^(1/(t n))
    for t epochs of n batches; the trainer's t and n are unknown where the criterion is built, so momentum is a
    parameter (default 0.01).

    Where the model holds a slot for it (``bind``: one element of the ``STATE`` buffer that parse_model registers
    for these variants), the mean lives there, so the checkpoint saves it and a resumed run starts from it;
    otherwise this instance holds it (starting at 1)."""

    def __init__(self, **params):
        super().__init__(**params)
        self._own = torch.tensor(1.0)
        self._owner, self._slot = None, 0

    def bind(self, owner: torch.nn.Module, slot: int) -> None:
        """Keep the mean in ``owner``'s ``STATE`` buffer, element ``slot`` (looked up at each call: moving the
        model to another device or dtype replaces the buffer's tensor)."""
        self._owner, self._slot = owner, slot

    def _buffer(self):
        buffers = getattr(self._owner, "_buffers", None)
        return buffers.get(STATE) if buffers is not None else None

    @property
    def mean(self) -> torch.Tensor:
        buf = self._buffer()
        return self._own if buf is None else buf[self._slot]

    def _ratio(self, l_iou: torch.Tensor) -> torch.Tensor:
        mean = self.mean.detach().to(l_iou.device, l_iou.dtype, copy=True)
        beta = l_iou.detach() / mean.clamp(min=EPS)
        if torch.is_grad_enabled() and l_iou.numel():
            with torch.no_grad():
                new = (1 - self.momentum) * mean + self.momentum * l_iou.detach().mean()
                buf = self._buffer()
                if buf is None:
                    self._own = new
                else:
                    if buf.is_inference():  # built under inference mode: a tensor that cannot change in place
                        buf = self._owner._buffers[STATE] = buf.clone()
                    buf[self._slot] = new.to(buf.dtype)
        return beta


class WIoUv2(_Running):
    """Wise-IoU v2: Tong et al., "Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing Mechanism",
    arXiv:2301.10051, 2023, monotonic focusing: L = (L_IoU* / mean(L_IoU))^gamma L_WIoUv1, gamma = 0.5."""

    NAME, PARAMS = "wiou-v2", {"gamma": 0.5, "momentum": 0.01}

    def check(self):
        return None if 0 < self.momentum <= 1 and self.gamma >= 0 else "momentum must be in (0, 1], gamma >= 0"

    def loss(self, a, b, ctx=None):
        v1, l_iou = self._v1(Pair(a, b))
        return self._ratio(l_iou).pow(self.gamma) * v1


class WIoUv3(_Running):
    """Wise-IoU v3: Tong et al., "Wise-IoU: Bounding Box Regression Loss with Dynamic Focusing Mechanism",
    arXiv:2301.10051, 2023, non-monotonic focusing: beta = L_IoU* / mean(L_IoU), r = beta / (delta alpha^(beta - delta)),
    L = r L_WIoUv1; alpha = 1.9, delta = 3 (the paper's choice)."""

    NAME, PARAMS = "wiou-v3", {"alpha": 1.9, "delta": 3.0, "momentum": 0.01}

    def check(self):
        if not 0 < self.momentum <= 1:
            return "momentum must be in (0, 1]"
        return None if self.alpha > 0 and self.delta > 0 else "alpha and delta must be > 0"

    def loss(self, a, b, ctx=None):
        v1, l_iou = self._v1(Pair(a, b))
        beta = self._ratio(l_iou)
        return beta / (self.delta * torch.pow(torch.tensor(self.alpha), beta - self.delta)) * v1


class MPDIoU(Variant):
    """MPDIoU loss: Ma and Xu, "MPDIoU: A Loss for Efficient and Accurate Bounding Box Regression",
    arXiv:2307.07662, 2023: d_1^2, d_2^2 = squared distances of the top-left and
    of the bottom-right corners, MPDIoU = IoU - d_1^2 / (w^2 + h^2) - d_2^2 / (w^2 + h^2) with w, h the
    input image's width and height; L = 1 - MPDIoU."""

    NAME, NEEDS = "mpdiou", ("size",)

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        w, h = ctx.size
        norm = w * w + h * h
        d1 = (p.ax1 - p.bx1).pow(2) + (p.ay1 - p.by1).pow(2)
        d2 = (p.ax2 - p.bx2).pow(2) + (p.ay2 - p.by2).pow(2)
        return 1 - (p.iou - d1 / norm - d2 / norm)


class ShapeIoU(Variant):
    """Shape-IoU loss: Zhang and Zhang, "Shape-IoU: More Accurate Metric considering Bounding Box Shape and
    Scale", arXiv:2312.17663, 2023: ww = 2 w_gt^s / (w_gt^s + h_gt^s), hh = 2 h_gt^s / (w_gt^s + h_gt^s);
    distance = hh (x_c - x_c^gt)^2 / c^2 + ww (y_c - y_c^gt)^2 / c^2; omega_w = hh |w - w_gt| / max(w, w_gt),
    omega_h = ww |h - h_gt| / max(h, h_gt), Omega = sum_t (1 - exp(-omega_t))^4;
    L = 1 - IoU + distance + 0.5 Omega. ``scale`` (s) relates to the dataset's object sizes: 0 by default."""

    NAME, PARAMS = "shape-iou", {"scale": 0.0}

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        sw, sh = p.bw.clamp(min=0).pow(self.scale), p.bh.clamp(min=0).pow(self.scale)
        ww, hh = 2 * sw / (sw + sh + EPS), 2 * sh / (sw + sh + EPS)
        distance = hh * p.dx.pow(2) / p.c2 + ww * p.dy.pow(2) / p.c2
        omega_w = hh * (p.aw - p.bw).abs() / (p.aw.maximum(p.bw) + EPS)
        omega_h = ww * (p.ah - p.bh).abs() / (p.ah.maximum(p.bh) + EPS)
        shape = (1 - torch.exp(-omega_w)).pow(4) + (1 - torch.exp(-omega_h)).pow(4)
        return 1 - p.iou + distance + 0.5 * shape


class AlphaIoU(Variant):
    """Alpha-IoU loss: He et al., "Alpha-IoU: A Family of Power Intersection over Union Losses for Bounding Box
    Regression", NeurIPS 2021, arXiv:2110.13675: the plain member of the family (a power IoU term, no power
    regularisation term), L = 1 - IoU^alpha, alpha = 3."""

    NAME, PARAMS = "alpha-iou", {"alpha": 3.0}

    def check(self):
        return None if self.alpha >= 1 else "alpha must be >= 1 (below 1 the slope is infinite at IoU = 0)"

    def loss(self, a, b, ctx=None):
        return 1 - Pair(a, b).iou.clamp(0).pow(self.alpha)


class NWD(Variant):
    """NWD loss blended with the IoU loss: Wang et al., "A Normalized Gaussian Wasserstein Distance for Tiny
    Object Detection", arXiv:2110.13389, 2021: each box is the Gaussian N([cx, cy],
    diag(w^2/4, h^2/4)); W_2^2 = ||(cx_a, cy_a, w_a/2, h_a/2) - (cx_b, cy_b, w_b/2, h_b/2)||^2 in pixels;
    NWD = exp(-sqrt(W_2^2) / C), C a constant of the dataset (12.8 by default, a value used for AI-TOD);
    L = ratio (1 - NWD) + (1 - ratio) (1 - IoU), ratio = 0.5."""

    NAME, PARAMS, NEEDS = "nwd", {"ratio": 0.5, "constant": 12.8}, ("scale",)

    def check(self):
        if not 0 <= self.ratio <= 1:
            return "ratio must be in [0, 1]"
        return None if self.constant > 0 else "constant must be > 0"

    def loss(self, a, b, ctx=None):
        p = Pair(a, b)
        w2 = p.rho2 + ((p.aw - p.bw) / 2).pow(2) + ((p.ah - p.bh) / 2).pow(2)
        distance = (w2 + 1e-12).sqrt() * ctx.scale  # the epsilon keeps the slope finite at W_2 = 0
        nwd = torch.exp(-distance / self.constant)
        return self.ratio * (1 - nwd) + (1 - self.ratio) * (1 - p.iou)


class Inner(Variant):
    """Inner-IoU: Zhang, Xu and Zhang, "Inner-IoU: More Effective Intersection over Union Loss with Auxiliary
    Bounding Box", arXiv:2311.02877, 2023: auxiliary boxes of the same centres, width and height times the
    scaling factor ``ratio``; IoU_inner is their IoU; L_Inner-BASE = L_BASE + IoU - IoU_inner; 0.75 here."""

    PREFIX, PARAMS = "inner-", {"ratio": 0.75}

    def __init__(self, base: Variant, **params):
        super().__init__(**params)
        self.base, self.NAME, self.NEEDS = base, self.PREFIX + base.NAME, base.NEEDS

    def check(self):
        return None if self.ratio > 0 else "ratio must be > 0"

    def loss(self, a, b, ctx=None):
        return self.base.loss(a, b, ctx) + self.term(a, b, overlap(a, b))

    def term(self, a, b, iou):
        def shrink(box):
            x1, y1, x2, y2 = box.chunk(4, -1)
            cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * self.ratio / 2, (y2 - y1) * self.ratio / 2
            return torch.cat((cx - hw, cy - hh, cx + hw, cy + hh), -1)

        return iou - overlap(shrink(a), shrink(b))


class Focaler(Inner):
    """Focaler-IoU: Zhang and Zhang, "Focaler-IoU: More Focused Intersection over Union Loss",
    arXiv:2401.10525, 2024, linear interval mapping: IoU_focaler = 0 below d, (IoU - d) / (u - d) between, 1 above u;
    L_Focaler-BASE = L_BASE + IoU - IoU_focaler; d = 0, u = 0.95 here."""

    PREFIX, PARAMS = "focaler-", {"d": 0.0, "u": 0.95}

    def check(self):
        return None if 0 <= self.d < self.u <= 1 else "needs 0 <= d < u <= 1"

    def term(self, a, b, iou):
        return iou - ((iou - self.d) / (self.u - self.d)).clamp(0, 1)


VARIANTS: dict[str, type[Variant]] = {v.NAME: v for v in (
    GIoU, DIoU, CIoU, EIoU, FocalEIoU, SIoU, WIoUv1, WIoUv2, WIoUv3, MPDIoU, ShapeIoU, AlphaIoU, NWD)}
MODIFIERS: dict[str, type[Inner]] = {m.PREFIX: m for m in (Inner, Focaler)}
BASES = ("giou", "diou", "ciou", "eiou", "siou", "mpdiou", "shape-iou", "wiou-v1", "wiou-v2", "wiou-v3")
NAMES = tuple(VARIANTS) + tuple(f"{p}{b}" for p in MODIFIERS for b in BASES)


def accepted() -> str:
    return (", ".join(VARIANTS) + "; and " + ", ".join(f"{p}BASE" for p in MODIFIERS) + " with BASE one of "
            + ", ".join(BASES))


def make(name, args=None) -> Variant:
    """The variant a yaml names, with its parameters checked; IouLossError says what is wrong and what to do."""
    where = f"the model yaml's `{KEY}: {name}`"
    if not isinstance(name, str) or name.lower() not in NAMES:
        raise IouLossError(f"{where} is not a loss rtdetr-patch knows. Accepted values: {accepted()}. Fix the "
                           f"`{KEY}` key of the yaml, or remove it to train with Ultralytics' own loss.")
    name = name.lower()
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise IouLossError(f"the model yaml's `{ARGS_KEY}` is {args!r}; it must be a mapping such as "
                           f"`{ARGS_KEY}: {{ratio: 0.75}}`, or left out for the papers' defaults.")
    prefix = next((p for p in MODIFIERS if name.startswith(p)), None)
    base_cls = VARIANTS[name[len(prefix):] if prefix else name]
    takes = dict(base_cls.PARAMS)
    if prefix:
        takes.update(MODIFIERS[prefix].PARAMS)
    for key, value in args.items():
        if key not in takes:
            offer = ", ".join(f"{k} (default {v})" for k, v in takes.items()) or "no parameters"
            raise IouLossError(f"the model yaml's `{ARGS_KEY}` has `{key}`, which `{KEY}: {name}` does not take; it "
                               f"takes {offer}. Remove `{key}` from `{ARGS_KEY}`.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise IouLossError(f"the model yaml's `{ARGS_KEY}` gives `{key}: {value!r}`; it must be a finite number "
                               f"(default {takes[key]}).")
    base = base_cls(**{k: v for k, v in args.items() if k in base_cls.PARAMS})
    variant = MODIFIERS[prefix](base, **{k: v for k, v in args.items() if k in MODIFIERS[prefix].PARAMS}) \
        if prefix else base
    for part in (base, variant):
        problem = part.check()
        if problem:
            raise IouLossError(f"the model yaml's `{ARGS_KEY}` for `{KEY}: {name}`: {problem} (given {args}). Fix "
                               f"the value, or leave it out for the default.")
    return variant


def rtdetr_patch_iou_loss(cfg) -> Variant | None:
    """The variant a model yaml (dict) chooses, checked; None when it chooses none (Ultralytics' own loss)."""
    if not isinstance(cfg, dict) or cfg.get(KEY) is None:
        if isinstance(cfg, dict) and cfg.get(ARGS_KEY) is not None:
            raise IouLossError(f"the model yaml has `{ARGS_KEY}` but no `{KEY}`. Add `{KEY}: NAME` "
                               f"(one of {accepted()}), or remove `{ARGS_KEY}`.")
        return None
    return make(cfg[KEY], cfg.get(ARGS_KEY))


def running(variant: Variant | None) -> bool:
    """Whether the variant (or the base under its inner-/focaler- modifier) keeps a running mean."""
    return isinstance(getattr(variant, "base", variant), _Running)


def rtdetr_patch_iou_state(cfg, layers: torch.nn.Module) -> torch.nn.Module:
    """``parse_model``'s layers (``nn.Sequential``), with a ``STATE`` buffer of ``SLOTS`` running means (each 1)
    registered on them when the yaml chooses a Wise-IoU v2/v3: the model, its EMA copy and so the checkpoint
    (``last.pt``, ``best.pt``) hold the means, and resuming loads them back. Any other yaml's layers are returned
    untouched (the same keys in the state_dict as Ultralytics' own model)."""
    if running(rtdetr_patch_iou_loss(cfg)):
        layers.register_buffer(STATE, torch.ones(SLOTS))
    return layers


class IouLossChoice:
    """What a patched criterion calls instead of the release's ``bbox_iou``: ``1 - loss`` of the chosen variant.

    ``release``: the release's ``bbox_iou``, which giou/diou/ciou call with their own keyword (bit for bit the
    release's value). ``size=1.0``: normalised boxes (RT-DETR), whose pixel scale is the training size.
    ``anchors``/``fg``: YOLO's anchor points and foreground mask, from which each box's feature level gives
    its units (one grid cell = that level's stride in pixels, the image = that level's grid).
    """

    def __init__(self, variant: Variant, name: str, args: dict | None = None, strides=None, imgsz=640):
        self.variant, self.name, self.args = variant, name, dict(args or {})
        self.strides = [float(s) for s in strides] if strides is not None else None
        self.imgsz = float(imgsz)
        self.calls = 0

    def __call__(self, pred, target, xywh=True, release=None, size=None, anchors=None, fg=None):
        self.calls += 1
        flag = self.variant.RELEASE_FLAG
        if release is not None and flag:
            return release(pred, target, xywh=xywh, **{flag: True})
        a, b = to_xyxy(pred, xywh), to_xyxy(target, xywh)
        ctx = Context()
        if self.variant.NEEDS:
            if anchors is not None and fg is not None:
                ctx = self._grid(anchors, fg, a)
            else:
                unit = 1.0 if size is None else float(size)
                ctx = Context(size=(unit, unit), scale=self.imgsz / unit)
        return 1.0 - self.variant.loss(a, b, ctx)

    def _grid(self, anchors: torch.Tensor, fg, a: torch.Tensor) -> Context:
        """Each foreground box's level, from the anchor points (each level's grid starts at the first point)."""
        first = anchors[0]
        starts = (anchors == first).all(-1)
        level = starts.long().cumsum(0) - 1
        n = int(level.max()) + 1
        grid = torch.stack([anchors[level == i].amax(0) for i in range(n)]) + first  # (W, H) of each level's grid
        index = fg[-1] if isinstance(fg, tuple) else fg.nonzero(as_tuple=True)[-1]
        box_level = level[index]
        wh = grid[box_level].to(a.dtype)
        strides = self.strides if self.strides is not None and len(self.strides) == n else [8.0 * 2**i for i in range(n)]
        scale = torch.tensor(strides, dtype=a.dtype, device=a.device)[box_level].unsqueeze(-1)
        return Context(size=(wh[:, :1], wh[:, 1:]), scale=scale)


def _box_terms(criterion):
    """The objects whose box term a patched release routes through ``rtdetr_patch_iou``: RT-DETR's DETRLoss
    (``_get_loss_bbox``) and YOLO's BboxLoss (not RotatedBboxLoss: OBB's term is probiou), at any depth of the
    criterion's plain attributes (E2ELoss holds two detection losses)."""
    found, stack, seen = [], [(criterion, 0)], set()
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or isinstance(obj, (torch.Tensor, str, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        if callable(getattr(type(obj), "_get_loss_bbox", None)) or type(obj).__name__ == "BboxLoss":
            found.append(obj)
        if depth < 3:
            inner = obj.children() if isinstance(obj, torch.nn.Module) else vars(obj).values() if hasattr(
                obj, "__dict__") else ()
            stack.extend((v, depth + 1) for v in inner)
    return found


def _state_holder(model):
    """The module holding the ``STATE`` buffer: parse_model's layers (``model.model``), or None (a model built
    before the patch registered it, e.g. an install not patched again since: the criterion keeps the mean)."""
    layers = getattr(model, "model", None)
    if STATE in getattr(layers, "_buffers", {}):
        return layers
    return next((mod for mod in model.modules() if STATE in mod._buffers), None) if isinstance(
        model, torch.nn.Module) else None


def rtdetr_patch_criterion(model, criterion):
    """``init_criterion``'s criterion with the model yaml's ``iou_loss`` attached; the same object untouched
    when the yaml chooses none."""
    cfg = getattr(model, "yaml", None)
    variant = rtdetr_patch_iou_loss(cfg)
    if variant is None:
        return criterion
    targets = _box_terms(criterion)
    if not targets:
        raise IouLossError(f"the model yaml's `{KEY}: {cfg[KEY]}` chooses the box-regression IoU loss, but this "
                           f"model's loss ({type(criterion).__name__}) has no such term (it applies to detection, "
                           f"segmentation and pose models of YOLO, and to RT-DETR). Remove `{KEY}` from the yaml.")
    for target in targets:
        method = getattr(type(target), "_get_loss_bbox", None) or type(target).forward
        if ATTR not in getattr(getattr(method, "__code__", None), "co_names", ()):
            where = "models/utils/loss.py" if hasattr(type(target), "_get_loss_bbox") else "utils/loss.py"
            raise IouLossError(f"the model yaml's `{KEY}: {cfg[KEY]}` cannot be used: the box term of {where} "
                               f"({type(target).__name__}) is not the release's (edited by hand), so rtdetr-patch left "
                               f"it as it is. Remove `{KEY}` from the yaml, or put back the release's {where} and run "
                               "`rtdetr-patch apply` again.")
    hyp = getattr(model, "args", None)
    imgsz = hyp.get("imgsz", 640) if isinstance(hyp, dict) else getattr(hyp, "imgsz", 640)
    imgsz = max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz
    stride = getattr(model, "stride", None)
    holder = _state_holder(model)
    for i, target in enumerate(targets):  # one instance each: E2ELoss's two branches keep their own running means
        each = variant if i == 0 else make(cfg[KEY], cfg.get(ARGS_KEY))
        if holder is not None and running(each) and i < SLOTS:
            getattr(each, "base", each).bind(holder, i)
        target.rtdetr_patch_iou = IouLossChoice(each, str(cfg[KEY]).lower(), cfg.get(ARGS_KEY), stride, imgsz or 640)
    return criterion


def rtdetr_patch_iou_in_use(criterion) -> dict | None:
    """The choice attached to a criterion (name, parameters, calls so far, and for Wise-IoU v2/v3 the running
    mean of each box term and whether the model holds it), or None: Ultralytics' own loss."""
    found = None
    for target in _box_terms(criterion):
        choice = getattr(target, "rtdetr_patch_iou", None)
        if choice is None:
            continue
        if found is None:
            found = {"name": choice.name, "args": choice.args, "calls": choice.calls}
        if running(choice.variant):
            base = getattr(choice.variant, "base", choice.variant)
            found.setdefault("running_mean", []).append(round(float(base.mean), 6))
            found["running_mean_saved"] = found.get("running_mean_saved", True) and base._buffer() is not None
    return found
