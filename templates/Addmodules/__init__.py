"""Modules added to Ultralytics by rtdetr-patch (blog steps 4.1 and 4.2).

``ultralytics/nn/tasks.py`` imports everything listed in ``__all__`` (blog step 4.3), because
``parse_model`` resolves the module names of a model yaml through the globals of ``tasks.py``.

* ``RTDETR_PATCH_BACKBONES`` is the registry of list-returning backbones: ``parse_model`` builds
  a class found here once, reads its ``width_list`` and gives each of its outputs a layer index.
  Adding a backbone means adding its class here; ``tasks.py`` needs no new edit.
* ``rtdetr_patch_channels`` and ``rtdetr_patch_outputs`` hold the index rule shared by
  ``parse_model`` and the layer loops: outputs are left-padded to five with placeholders, so
  that a backbone in yaml row 0 puts four outputs at indices 1-4 (three at 2-4, five at 0-4) and
  shifts every later layer by four, as the blog's yaml expects.
* ``RTDETR_PATCH_MODULES`` maps every other registered module (a class or a factory that a yaml
  row names) to its channel rule; ``parse_model`` has one branch for all of them, which calls
  ``rtdetr_patch_module_args`` (the rules are listed in ``RULES``, and explained in the README:
  "Your own modules"). ``ResNet.py`` is the series' ResNet base (``ConvNormLayer``, ``Blocks``).
* ``rtdetr_patch_deploy`` is called by ``model.fuse()``: ``switch_to_deploy()`` of every module
  defined in this package (re-parameterised blocks, batch-norm folding), and ``fuse_convs()``/``fuse()``
  where an added file writes them.
* ``rtdetr_patch_is_head`` lets a head registered with the rule ``head`` pass ``tasks.py``'s
  ``isinstance(m, Detect)`` checks; ``rtdetr_patch_preds`` hands the 8.4 loss a head's 8.0-8.3 list of
  maps as the dict it reads.
* ``rtdetr_patch_iou_loss`` (called first by ``parse_model``) checks a model yaml's ``iou_loss`` /
  ``iou_loss_args``, and ``rtdetr_patch_criterion`` (every ``init_criterion`` returns through it) attaches
  the chosen loss to the criterion's box term, and ``rtdetr_patch_iou_state`` (parse_model's layers pass
  through it) gives the model the buffer of Wise-IoU v2/v3's running means; they live in ``iou_losses.py``
  with the variants.
* ``RTDETR_PATCH_BRANCHES`` holds, for a module registered with the rule ``branch``, its branch of a
  fork's ``parse_model`` carried as written by ``rtdetr-patch adopt`` (where no rule expresses it).
* ``rtdetr_patch_probe_size`` keeps the release's own stride probe for stock models and uses
  640 only for a model that holds a registered backbone (blog step 4.8), or the probe size of the
  fork a module was adopted from (``RTDETR_PATCH_PROBE_SIZES``).
* ``rtdetr_patch_safe_globals`` is called by restricted loading (``ULTRALYTICS_SAFE_LOAD=1``)
  when it builds its allow-list, not at import: the classes of every registered backbone file,
  the classes from other packages they hold (``RTDETR_PATCH_SAFE_NAMES``, e.g. timm's layers),
  and methods of those classes stored as attributes (``self.forward = self.forward_det``).

Importing this package imports nothing heavier than ``torch`` (which ``tasks.py`` imports
anyway): torchvision is imported when a MobileNetV3 is built or the allow-list is computed.

This file is written by rtdetr-patch; ``rtdetr-patch revert`` removes the whole folder.
"""

import importlib as _importlib

import torch.nn as _nn

from . import MobileNetV3 as _mobilenetv3
from . import ResNet as _resnet
from .MobileNetV3 import MobileNetV3
from .ResNet import Blocks, ConvNormLayer
from .iou_losses import rtdetr_patch_criterion, rtdetr_patch_iou_loss, rtdetr_patch_iou_state

RTDETR_PATCH_BACKBONES = frozenset({MobileNetV3})
RTDETR_PATCH_MODULES = {ConvNormLayer: "conv", Blocks: "resnet-stage"}  # module -> its channel rule
RTDETR_PATCH_SAFE_MODULES = [_mobilenetv3, _resnet]  # files whose classes a trained checkpoint may hold
RTDETR_PATCH_SAFE_NAMES = []  # "package.module.Class" of other packages' layers inside those backbones
CONTRACT = ("width_list", "channel")  # where a backbone lists its output channels
PADDED_OUTPUTS = 5  # the blog's layout: index of the backbone row + four feature maps
PROBE_SIZE = 640  # blog step 4.8: the stride probe size for models with a registered backbone
RTDETR_PATCH_BRANCHES = {}  # module -> its fork's parse_model branch (rule "branch"; written by rtdetr-patch adopt)
RTDETR_PATCH_PROBE_SIZES = {}  # module -> the stride probe size of the fork it was adopted from


def rtdetr_patch_module_classes(*modules) -> tuple:
    """The ``nn.Module`` classes each given module defines (what a checkpoint of a backbone pickles)."""
    return tuple(v for mod in modules for v in vars(mod).values()
                 if isinstance(v, type) and issubclass(v, _nn.Module) and v.__module__ == mod.__name__)


def rtdetr_patch_safe_globals(allow=()) -> list:
    """Entries that restricted loading must accept in a trained checkpoint with an added backbone.

    The classes of every registered backbone file, torchvision's layers that MobileNetV3 is built
    from (Conv2dNormActivation, InvertedResidual, SqueezeExcitation, ...), the other packages'
    classes recorded in ``RTDETR_PATCH_SAFE_NAMES``, and, when ``allow`` (the release's own list)
    holds a ``builtins.getattr`` entry, a stricter-than-nothing replacement that also lets those
    classes' own methods through (a checkpoint pickles ``self.forward = self.forward_det`` as
    ``getattr(module, "forward_det")``); anything else still goes to the release's own rule.
    """
    import torchvision.models.mobilenetv3 as tv_mobilenetv3
    import torchvision.ops.misc as tv_misc

    classes = list(rtdetr_patch_module_classes(*RTDETR_PATCH_SAFE_MODULES, tv_misc, tv_mobilenetv3))
    entries: list = list(classes)
    for dotted in RTDETR_PATCH_SAFE_NAMES:
        obj = _resolve(dotted)
        if obj is None:
            continue  # that package is gone from this environment: its checkpoints cannot load anyway
        entries.append((obj, dotted))  # keyed by the name the checkpoint pickles
        if isinstance(obj, type) and issubclass(obj, _nn.Module):
            classes.append(obj)
    release_getattr = next((e[0] for e in allow if isinstance(e, tuple) and e[1] == "builtins.getattr"), None)
    if release_getattr is not None:
        known = tuple(classes)

        def _getattr(obj, name):
            if isinstance(obj, known) and not name.startswith("_") and any(
                    callable(vars(c).get(name)) for c in type(obj).__mro__ if c not in (_nn.Module, object)):
                return getattr(obj, name)
            return release_getattr(obj, name)

        entries.append((_getattr, "builtins.getattr"))
    return entries


def _resolve(dotted: str):
    """The object a dotted name (module path, then attribute path) names, or None."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = _importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            return obj
        except AttributeError:
            return None
    return None


# The channel rules. Single-input rules take one ``from`` index; the others a list of them.
SINGLE = ("conv", "conv-n", "same", "plain", "resnet-stage")
MULTI = ("concat", "first", "last", "inputs", "inputs-out", "count", "head")
RULES = SINGLE + MULTI + ("branch",)


class RtdetrPatchRowError(TypeError):
    """A yaml row that does not fit the rule its module is registered with."""


def _scaled(c2, nc, width, max_channels):
    """An output width as Ultralytics scales its own convolutions: times ``width``, capped, a multiple of 8."""
    if c2 == nc:
        return c2
    return int(-(-min(c2, max_channels) * width // 8) * 8)


def rtdetr_patch_module_args(m, i, f, n, args, ch, nc, width, max_channels):
    """``(c2, args, n)`` for a row whose module is in ``RTDETR_PATCH_MODULES``, by the module's rule.

    ``c2`` is always set (a branch that leaves it unset passes the previous row's width on).
    """
    rule = RTDETR_PATCH_MODULES[m]
    name = getattr(m, "__name__", str(m))
    many = isinstance(f, (list, tuple))
    row = f"row {i} of the model yaml ([{f}, {n}, {name}, {list(args)}])"
    if rule in SINGLE and many:
        raise RtdetrPatchRowError(
            f"{row}: {name} is registered with the rule '{rule}', which takes one input, but the row gives it "
            f"{len(f)}. A module that takes several inputs needs one of the rules {', '.join(MULTI)}: "
            f"rtdetr-patch apply --module FILE.py:{name}=RULE")
    if rule in MULTI and rule != "head" and not many:
        raise RtdetrPatchRowError(
            f"{row}: {name} is registered with the rule '{rule}', which takes several inputs ([[-1, 6], ...]), "
            f"but the row gives it one. Give the row a list of inputs, or register it with a single-input rule "
            f"({', '.join(SINGLE[:4])}): rtdetr-patch apply --module FILE.py:{name}=RULE")
    args = list(args)
    if rule in ("conv", "conv-n"):
        if not args:
            raise RtdetrPatchRowError(f"{row}: the rule '{rule}' takes the output width as the row's first "
                                      f"argument, and the row has none; or register {name} with '=same'/'=plain'")
        c1, c2 = ch[f], _scaled(args[0], nc, width, max_channels)
        args = [c1, c2, *args[1:]]
        if rule == "conv" and n > 1 and c1 != c2:
            raise RtdetrPatchRowError(
                f"{row}: under the rule 'conv' the row's {n} repeats chain {n} copies of {name}({c1} -> {c2} "
                f"channels), and the second would get {c2} channels where it takes {c1}. If {name} takes the repeat "
                f"count itself (C2f-style; a parameter such as n or c5), register it with "
                f"rtdetr-patch apply --module FILE.py:{name}=conv-n; else set the row's repeats to 1")
        if rule == "conv-n":
            args.insert(2, n)
            n = 1
    elif rule == "same":
        c2 = ch[f]
        args = [c2, *args]
    elif rule == "plain":
        c2 = ch[f]
    elif rule == "resnet-stage":  # the series' Blocks: [ch_out, block, stage_num, ...]; the repeats column counts blocks
        block = _resnet.block_class(args[1])
        c2 = args[0] * getattr(block, "expansion", 1)
        args = [ch[f], args[0], n, *args[1:]]
        n = 1
    elif rule == "concat":
        c2 = sum(ch[x] for x in f)
    elif rule in ("first", "last"):
        c2 = ch[f[0] if rule == "first" else f[-1]]
    elif rule == "inputs":
        c2 = ch[f[0]]
        args = [[ch[x] for x in f], *args]
    elif rule == "inputs-out":
        if not args:
            raise RtdetrPatchRowError(f"{row}: the rule 'inputs-out' takes the output width as the row's first "
                                      "argument, and the row has none")
        c2 = _scaled(args[0], nc, width, max_channels)
        args = [[ch[x] for x in f], c2, *args[1:]]
    elif rule == "count":
        c2 = ch[f[0]]
        args = [len(f), *args]
    elif rule == "head":
        inputs = f if many else [f]
        c2 = ch[inputs[-1]]
        args = [*args, [ch[x] for x in inputs]]
    elif rule == "branch":  # the fork's own branch, as written there (RTDETR_PATCH_BRANCHES)
        c2, args, n = RTDETR_PATCH_BRANCHES[m](m, i, f, n, args, ch, nc, width, max_channels)
    else:
        raise RtdetrPatchRowError(f"{row}: unknown rule {rule!r} (known: {', '.join(RULES)})")
    _fits(m, args, row, name, rule)
    return c2, args, n


def _fits(m, args, row, name, rule) -> None:
    """The arguments the rule built must fit the constructor: else say so with the row, not deep inside it."""
    import inspect

    try:
        signature = inspect.signature(m)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args)
    except TypeError as exc:
        raise RtdetrPatchRowError(
            f"{row}: under the rule '{rule}' {name} is called as {name}({', '.join(map(repr, args))}), which does not "
            f"fit {name}{signature}: {exc}. Change the row's arguments, or register {name} with the rule that "
            f"builds its arguments: rtdetr-patch apply --module FILE.py:{name}=RULE") from None


DEPLOY_METHODS = ("switch_to_deploy", "fuse_convs", "fuse")  # the series' names for "switch to the deploy form"


def rtdetr_patch_deployable(model) -> list:
    """(module, method name) for every module that ``model.fuse()`` switches through ``rtdetr_patch_deploy``.

    ``switch_to_deploy()`` of any module of a class an added file defines (DBB, the shipped MobileNetV3
    and ResNet). ``fuse_convs()`` (the series' RepConv variants, the GELAN family's RepConvN) and
    ``fuse()`` (RepVGGDW-style blocks) only where that method is written in an added file and in no
    other class of the module's MRO: where Ultralytics' own class (RepConv, RepVGGDW, Detect) defines
    it, the release's own loop calls it, and calling it here too would fuse twice. A ``fuse`` that takes
    arguments (a fusion block's ``fuse(a, b)``) is not a deploy switch and is left alone.
    """
    import inspect

    mine = tuple(rtdetr_patch_module_classes(*RTDETR_PATCH_SAFE_MODULES))
    found = []
    for layer in model.modules():
        if not isinstance(layer, mine) or getattr(layer, "_rtdetr_patch_deployed", False):
            continue
        for name in DEPLOY_METHODS:
            method = getattr(layer, name, None)
            if not callable(method):
                continue
            if name != "switch_to_deploy":
                owners = [c for c in type(layer).__mro__ if name in vars(c)]
                if not owners or any(c not in mine for c in owners):
                    continue  # not written in an added file, or also Ultralytics' own: the release calls it
                try:
                    inspect.signature(method).bind()
                except (TypeError, ValueError):
                    continue
            found.append((layer, name))
            break
    return found


def rtdetr_patch_deploy(model) -> int:
    """Switch every deployable module (``rtdetr_patch_deployable``) to its deploy form; the number switched.

    Called by ``model.fuse()`` before the release's own loop, while the branches' batch norms are still
    there to fold. After ``fuse_convs()``/``fuse()`` the module's ``forward_fuse`` becomes its forward,
    as Ultralytics does for its RepConv; each module is switched once, however often ``fuse()`` runs.
    """
    switched = 0
    for layer, name in rtdetr_patch_deployable(model):
        getattr(layer, name)()
        if name != "switch_to_deploy" and callable(getattr(layer, "forward_fuse", None)):
            layer.forward = layer.forward_fuse
        layer._rtdetr_patch_deployed = True
        switched += 1
    return switched


def rtdetr_patch_is_head(m) -> bool:
    """Whether ``m`` (a module, or a yaml row's module name) is a head registered with the rule ``head``.

    ``tasks.py`` asks this beside its own ``isinstance(m, Detect)`` checks (the stride probe, ``_apply``
    moving the head's strides and anchors, ``guess_model_task``), which a head written as a plain
    ``nn.Module`` does not pass: the series' repositories add each such head to those checks by hand.
    """
    heads = [c for c, rule in RTDETR_PATCH_MODULES.items() if rule == "head" and isinstance(c, type)]
    if isinstance(m, str):
        return m.lower() in {c.__name__.lower() for c in heads}
    return isinstance(m, tuple(heads))


class RtdetrPatchHeadError(TypeError):
    """A head of the 8.0-8.3 contract whose list of maps cannot be read as this release's prediction dict."""


def _where(head) -> str:
    import inspect

    import ultralytics

    try:
        path = inspect.getsourcefile(type(head)) or type(head).__module__
    except TypeError:
        path = type(head).__module__
    return f"{type(head).__name__} ({path}, Ultralytics {ultralytics.__version__})"


def _maps_to_dict(head, maps) -> dict:
    """The release's ``{"boxes", "scores", "feats"}`` from the 8.0-8.3 head output: one ``[b, 4*reg_max+nc, h, w]``
    map per level, box distributions first (the split the loss of those releases made itself)."""
    import torch

    nc, reg_max = getattr(head, "nc", None), getattr(head, "reg_max", None)
    if not isinstance(nc, int) or not isinstance(reg_max, int):
        raise RtdetrPatchHeadError(
            f"{_where(head)} returns a list of feature maps in training (the contract of Ultralytics 8.0-8.3), and "
            f"this release's loss reads a dict of boxes and scores. Splitting the maps needs the head's `nc` and "
            f"`reg_max` as ints (got nc={nc!r}, reg_max={reg_max!r}): set `self.nc` and `self.reg_max` in its __init__")
    no = nc + 4 * reg_max
    if any(t.shape[1] != no for t in maps):
        raise RtdetrPatchHeadError(
            f"{_where(head)} returns maps of {[int(t.shape[1]) for t in maps]} channels in training, where "
            f"4 * reg_max + nc = {no}: each map must hold the box distributions then the class scores "
            f"(torch.cat((cv2(x), cv3(x)), 1), as the 8.0-8.3 Detect does)")
    flat = torch.cat([t.view(t.shape[0], no, -1) for t in maps], 2)
    boxes, scores = flat.split((4 * reg_max, nc), 1)
    return {"boxes": boxes, "scores": scores, "feats": list(maps)}


def _is_maps(x) -> bool:
    import torch

    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(t, torch.Tensor) and t.ndim == 4 for t in x)


def rtdetr_patch_preds(head, preds):
    """A head's raw output in the form this release's detection loss reads (Ultralytics 8.4 and later).

    From 8.4 ``Detect`` returns ``{"boxes", "scores", "feats"}`` in training and ``(y, that dict)`` in eval;
    heads written for 8.0-8.3 return their list of maps (and ``(y, maps)``). Those are turned into the
    dict; anything else (every stock head's dict, an RT-DETR tuple, a tensor) is returned as it is, the
    same object. Only a head registered with the rule ``head`` is read so: a stock head's output is never
    touched, whatever its form.
    """
    if not rtdetr_patch_is_head(head):
        return preds
    if _is_maps(preds):
        return _maps_to_dict(head, preds)
    if isinstance(preds, tuple) and len(preds) == 2 and not isinstance(preds[1], dict) and _is_maps(preds[1]):
        return preds[0], _maps_to_dict(head, preds[1])
    return preds


def rtdetr_patch_probe_size(layers, size: int) -> int:
    """The stride probe size: 640 if a layer is a registered backbone (blog step 4.8), the largest probe size of
    the forks its adopted modules come from (``RTDETR_PATCH_PROBE_SIZES``), else ``size``."""
    sizes = [PROBE_SIZE for layer in layers if getattr(layer, "backbone", False)]
    if RTDETR_PATCH_PROBE_SIZES:  # (a row with repeats is an nn.Sequential of its copies)
        rows = [x for layer in layers for x in (layer.children() if type(layer) is _nn.Sequential else (layer,))]
        sizes += [RTDETR_PATCH_PROBE_SIZES[type(x)] for x in rows if type(x) in RTDETR_PATCH_PROBE_SIZES]
    return max(sizes, default=size)


def _padded(items: list, placeholder):
    """Left-padded with placeholders to five entries (blog steps 4.6 and 4.7): four maps take indices
    1-4 as in the blog, three maps (P3-P5) indices 2-4, five maps indices 0-4."""
    return [placeholder] * (PADDED_OUTPUTS - len(items)) + list(items)


def rtdetr_patch_channels(module) -> list:
    """The channel entries ``parse_model`` adds to ``ch`` for a backbone, from ``width_list`` or ``channel``."""
    if not isinstance(module, _nn.Module):
        raise TypeError(f"a registered backbone must build a torch.nn.Module, got {type(module).__name__}")
    attr = next((a for a in CONTRACT if getattr(module, a, None) is not None), "width_list")
    widths = getattr(module, attr, None)
    if not isinstance(widths, (list, tuple)) or not 0 < len(widths) <= PADDED_OUTPUTS \
            or not all(isinstance(w, int) for w in widths):
        raise TypeError(f"{type(module).__name__}.{attr} must list the channels of its three to five outputs "
                        f"as ints, got {widths!r}")
    return _padded([int(w) for w in widths], 0)


def rtdetr_patch_outputs(outputs, y: list, save) -> object:
    """Append a backbone's outputs to ``y`` (one entry per layer index) and return the last one."""
    if not isinstance(outputs, (list, tuple)):
        raise TypeError(f"a backbone must return a list of feature maps, got {type(outputs).__name__}")
    outputs = _padded(outputs, None)
    for out in outputs:
        y.append(out if len(y) in save else None)
    return outputs[-1]


__all__ = ["MobileNetV3", "ConvNormLayer", "Blocks", "RTDETR_PATCH_BACKBONES",
           "RTDETR_PATCH_MODULES", "rtdetr_patch_channels", "rtdetr_patch_outputs", "rtdetr_patch_module_args",
           "rtdetr_patch_deploy", "rtdetr_patch_probe_size", "rtdetr_patch_safe_globals", "rtdetr_patch_is_head",
           "rtdetr_patch_preds", "rtdetr_patch_iou_loss", "rtdetr_patch_criterion", "rtdetr_patch_iou_state"]
