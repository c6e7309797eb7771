"""The smoke verification, run as a script in a fresh process of the target interpreter.

It imports nothing from rtdetr-patch (the target interpreter may not have it installed) and
prints one JSON object per line: ``{"stage": name}`` when a stage starts, then
``{"result": {...}}`` or ``{"error": {...}}`` at the end.

Stages: import torch and the patched Ultralytics (from ``--root``, first on ``sys.path``); build
``RTDETR(<yaml>)``; an eval forward at ``--imgsz`` with shape checks, also of each backbone
output; a train-mode loss on a small synthetic batch and a backward pass with finite gradients;
parameters and GFLOPs (the release's own ``get_flops``, the one ``model.info()`` prints); and
stock ``rtdetr-l.yaml`` still builds with its usual parameter count (``--no-stock`` skips that where the host
knows a passing run built it on the same package bytes); with ``--train``, one short epoch
through Ultralytics' own trainer on a generated dataset (``train_check.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Any

RTDETR_L_PARAMS = 32_970_476  # stock rtdetr-l.yaml at nc=80, every release from 8.0.136 to 8.4.190
STAGE = {"name": "start"}
from target_common import BACKBONES, PREFIX, unscaled  # noqa: E402  (beside this file: the script's folder is on sys.path)


def emit(**payload) -> None:
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def stage(name: str) -> None:
    STAGE["name"] = name
    emit(stage=name)


class Lap:
    """Seconds per stage, as the result reports them (``timings``)."""

    def __init__(self) -> None:
        self.t0 = self.t = time.perf_counter()
        self.timings: dict = {}

    def __call__(self, name: str) -> None:
        self.timings[name] = round(time.perf_counter() - self.t, 2)
        self.t = time.perf_counter()


def run(args) -> dict:
    lap = Lap()
    torch, ultralytics, where = imports(args, lap)
    yolo = is_yolo(args.yaml)
    stage(f"build {args.yaml}")
    model, backbone, split, registered = build(args, yolo)
    lap("build")

    stage("train-mode loss, backward and one optimizer step")
    step = train_step(torch, model, backbone, yolo, args.train_imgsz)
    lap("train loss + backward")

    stage(f"eval forward at {args.imgsz}")
    x = torch.zeros(1, 3, args.imgsz, args.imgsz)
    forward, head_inputs = eval_forward(torch, model, backbone, split, x, yolo)
    lap("eval forward")

    later = after_training(torch, model, x, head_inputs, args, step["nc"], yolo, lap)
    return {
        "release": ultralytics.__version__,
        "torch": torch.__version__,
        "package": where,
        "yaml": args.yaml,
        "imgsz": args.imgsz,
        "family": "yolo" if yolo else "rtdetr",
        "backbone": type(backbone).__name__ if backbone is not None else "(the yaml's own rows)",
        "registered_layers": registered,
        **forward,
        **step,
        **later,
        "timings": lap.timings,
        "seconds": round(time.perf_counter() - lap.t0, 2),
    }


def imports(args, lap: Lap) -> tuple:
    """The stages that import torch and the patched Ultralytics (the one under ``--root``, or an error)."""
    stage("import torch")
    import torch

    torch.set_num_threads(args.threads) if args.threads else None
    torch.manual_seed(0)
    lap("import torch")

    stage("import ultralytics")
    import ultralytics
    from ultralytics import RTDETR  # noqa: F401 - what the later stages use: they must import here
    from ultralytics.utils.torch_utils import get_flops  # noqa: F401

    where = os.path.dirname(os.path.abspath(ultralytics.__file__))
    expected = os.path.join(os.path.abspath(args.root), "ultralytics")
    if os.path.normcase(os.path.realpath(where)) != os.path.normcase(os.path.realpath(expected)):
        raise RuntimeError(f"imported ultralytics from {where}, expected the patched one at {expected}")
    lap("import ultralytics")
    return torch, ultralytics, where


def build(args, yolo: bool) -> tuple:
    """The model of the yaml, its backbone (None: the yaml's own rows), whether that backbone is Ultralytics'
    TorchVision row (its outputs start with the input) and the layers of the added package it holds."""
    model: Any  # (the release's own model class)
    if yolo:
        from ultralytics import YOLO
        from ultralytics.cfg import get_cfg

        model = YOLO(args.yaml, task="detect").model  # a head of the user's own: older releases cannot guess the task
        model.args = get_cfg()  # the trainer sets the loss gains (box, cls, dfl) from its arguments
    else:
        from ultralytics import RTDETR

        model = RTDETR(args.yaml).model
    backbones = [m for m in model.model if getattr(m, "backbone", False)]
    registered = [type(m).__name__ for m in model.model if type(m).__module__.startswith("ultralytics.nn.Addmodules")]
    own = own_yaml(args.yaml) is not None  # the user's own yaml: it may hold no added module at all
    if not backbones and not registered and not args.native and not own:
        raise RuntimeError(f"{args.yaml} built no added backbone or module: parse_model is not patched")
    backbone = None  # no added backbone: its backbone is its first rows (Ultralytics' or registered modules)
    if backbones:
        backbone = backbones[0]
    elif args.native:
        backbone = model.model[0]  # native: Ultralytics' TorchVision row
    return model, backbone, not backbones and backbone is not None, registered


def eval_forward(torch, model, backbone, split: bool, x, yolo: bool) -> tuple[dict, list]:
    """One eval forward, after the training step (its weights): the backbone's maps match its ``width_list``, the
    output has the head's shape and finite values. The same forward is counted by thop (GFLOPs at this size) and
    gives the head's inputs, which ``fuse_check`` compares after fusing. (figures, the head's inputs)"""
    seen: dict = {}

    def keep(name: str, value) -> None:  # a hook returns None: a value returned would replace the module's
        seen.setdefault(name, value)  # inputs or output (and a head that edits its input list would edit ours)

    hooks = [
        model.register_forward_hook(lambda module, inputs, out: keep("out", out)),
        model.model[-1].register_forward_pre_hook(lambda module, inputs: keep("head", clones(inputs))),
    ]
    if backbone is not None:
        hooks.append(backbone.register_forward_hook(lambda module, inputs, out: keep("feats", out)))
    model.eval()
    try:
        gflops = counted_forward(torch, model, x, seen)
    finally:
        for hook in hooks:
            hook.remove()
    feats = list(seen.get("feats") or [])
    if split:  # TorchVision with split=True: the input, then every child's output
        feats = feats[1:]
    widths = list(getattr(backbone, "width_list", [f.shape[1] for f in feats]))
    shapes = [list(f.shape) for f in feats]
    for f, w in zip(feats, widths):
        if f.shape[1] != w:
            raise RuntimeError(f"backbone output has {f.shape[1]} channels, width_list says {w}")
    y = first_tensor(seen["out"])
    if yolo:  # Detect: (1, 4 + nc, anchors) or, end to end, (1, detections, 6)
        if y is None or y.ndim != 3 or y.shape[0] != 1 or not torch.isfinite(y).all():
            raise RuntimeError(
                f"eval output is {None if y is None else tuple(y.shape)}, expected (1, ...) and finite values"
            )
    else:
        nq = model.model[-1].num_queries
        if y.ndim != 3 or tuple(y.shape[:2]) != (1, nq) or not torch.isfinite(y).all():
            raise RuntimeError(f"eval output has shape {tuple(y.shape)}, expected (1, {nq}, ...) and finite values")
    figures = {"backbone_widths": widths, "backbone_shapes": shapes, "output_shape": list(y.shape), **gflops}
    return figures, seen["head"]


def clones(inputs) -> list:
    """The tensors a head receives (a list of maps, or the maps themselves), cloned."""
    return [t.clone() for t in (inputs[0] if isinstance(inputs[0], (list, tuple)) else inputs)]


def counted_forward(torch, model, x, seen: dict) -> dict:
    """The eval forward, counted by thop (the count the release's ``get_flops`` gives at this size on a patched
    install, what ``model.info()`` prints). Where thop is missing or cannot count the model, a plain forward, and
    the release's own ``get_flops`` for the figure: a figure, never a reason to fail."""
    try:
        import thop

        macs = thop.profile(model, inputs=[x], verbose=False)[0]
        if "out" in seen and macs:
            return {"gflops": round(float(macs) * 2 / 1e9, 2), "gflops_source": "eval forward"}
    except Exception:  # a figure only: the forward below runs the model without it
        pass
    seen.clear()
    with torch.no_grad():
        model(x)
    from ultralytics.utils.torch_utils import get_flops

    gflops, source = flops(torch, model, int(x.shape[-1]), get_flops)
    return {"gflops": None if gflops is None else round(float(gflops), 2), "gflops_source": source}


def train_step(torch, model, backbone, yolo: bool, size: int) -> dict:
    """A train-mode loss on a small synthetic batch, its backward (gradients reach the backbone and every registered
    module, all finite), and one optimizer step that moves the weights and keeps the loss finite."""
    model.train()
    nc = int(getattr(model.model[-1], "nc", None) or model.yaml.get("nc", 80))
    model.nc = nc  # the trainer sets this from the dataset
    batch = {
        "img": torch.rand(2, 3, size, size),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[float(c % nc)] for c in (1, 5, 2)]),  # class ids the yaml's nc has (nc: 1 included)
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.25, 0.3, 0.2, 0.2], [0.6, 0.4, 0.5, 0.3]]),
    }
    torch.manual_seed(1)  # RT-DETR's denoising queries are random: the same draw before and after the step
    loss = model.loss(batch)
    total = (loss[0] if isinstance(loss, (list, tuple)) else loss).sum()
    if not torch.isfinite(total):
        raise RuntimeError(f"train-mode loss is not finite: {total}")
    from train_check import iou_loss_in_use  # beside this file

    iou_loss = iou_loss_in_use(model, yolo)
    total.backward()
    grads = gradients(torch, model, backbone)
    moved = optimizer_step(torch, model, batch)
    return {
        "nc": nc,
        "loss": round(float(total.detach()), 4),
        "iou_loss": iou_loss,
        "stepped_tensors": moved,
        "backbone_grad_tensors": len(grads),
    }


def gradients(torch, model, backbone) -> list:
    """The backbone's gradients after the backward; every registered module of the yaml got its own, all finite."""
    grads = [p.grad for p in (backbone or model).parameters() if p.grad is not None]
    if not grads:
        raise RuntimeError("no gradient reached the backbone")
    for layer in model.model:  # every registered module of the yaml trains
        if (
            type(layer).__module__.startswith("ultralytics.nn.Addmodules")
            and any(p.requires_grad for p in layer.parameters())
            and not any(p.grad is not None for p in layer.parameters())
        ):
            raise RuntimeError(f"no gradient reached layer {layer.i} ({type(layer).__name__})")
    bad = sum(1 for p in model.parameters() if p.grad is not None and not torch.isfinite(p.grad).all())
    if bad:
        raise RuntimeError(f"{bad} parameter tensors have non-finite gradients")
    return grads


def optimizer_step(torch, model, batch: dict) -> int:
    """One training step: the weights must move and stay finite (the eval forward after it runs on them and checks
    its output is finite). The tensors moved."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    moved = sum(1 for b, p in zip(before, model.parameters()) if not torch.equal(b, p.detach()))
    if not moved:
        raise RuntimeError("one optimizer step moved no weight")
    bad = sum(1 for p in model.parameters() if not torch.isfinite(p).all())
    if bad:
        raise RuntimeError(f"one optimizer step left {bad} parameter tensors with non-finite values")
    optimizer.zero_grad()
    return moved


def after_training(torch, model, x, head_inputs: list, args, nc: int, yolo: bool, lap: Lap) -> dict:
    """The stages after the eval forward: fusing, stock rtdetr-l, the users' backbones, the trainer."""
    from ultralytics import RTDETR

    model.eval()
    params = sum(p.numel() for p in model.parameters())
    stage("fuse for deploy")
    fusion = fuse_check(torch, model, x, head_inputs)
    lap("fuse")

    stock_params = None  # --no-stock: a passing run built it on these very package bytes (the host knows)
    if args.stock:
        stage("stock rtdetr-l.yaml")
        stock: Any = RTDETR(args.stock_yaml).model
        stock_params = sum(p.numel() for p in stock.parameters())
        if stock_params != RTDETR_L_PARAMS:
            raise RuntimeError(f"stock rtdetr-l has {stock_params:,} parameters, expected {RTDETR_L_PARAMS:,}")
        lap("rtdetr-l build")

    reloaded = {}
    if users_backbones():  # a stage of its own only where the user registered a backbone
        stage("your backbones: restricted reload")
        reloaded = users_backbones_reload(torch, args.root)
        lap("users' backbones")

    trained = None
    if args.train:
        from train_check import train_run  # beside this file

        stage("one epoch through Ultralytics' trainer")
        trained = train_run(args.yaml, yolo, nc, args.train_imgsz)
        lap("trainer")
    return {
        "params": params,
        "rtdetr_l_params": stock_params,
        "users_backbones": reloaded,
        "fuse": fusion,
        "trainer": trained,
    }


def flops(torch, model, imgsz: int, get_flops) -> tuple[float | None, str]:
    """GFLOPs at ``imgsz`` and where they came from: the release's own ``get_flops`` (what ``model.info()``
    prints), else thop on a copy of the model at the full size (some releases' ``get_flops`` give 0 for models
    its stride-sized probe cannot run), else None: a figure, never a reason to fail."""
    try:
        found = get_flops(model, imgsz)
    except Exception:  # a figure only
        found = 0
    if found:
        return float(found), "get_flops"
    try:
        import copy

        import thop

        with torch.no_grad():
            macs = thop.profile(copy.deepcopy(model), inputs=[torch.zeros(1, 3, imgsz, imgsz)], verbose=False)[0]
        if macs:
            return macs * 2 / 1e9, "thop"
    except Exception:
        pass
    return None, "not available"


class HeadReached(Exception):
    """Raised by ``fuse_check``'s hook once the fused model's head has its inputs: the head itself is not run."""


def fuse_check(torch, model, x, before: list) -> dict:
    """``model.fuse()`` (what predict, val and export call): the head's inputs after fusing must agree with
    ``before``, those of the eval forward on the same input. The fused forward stops at the head: RT-DETR's query
    selection (a top-k over near-equal scores of an untrained model) may pick other queries after any float
    change, so the head's own output is not compared."""
    seen: list = []

    def reached(module, inputs):
        seen.append(clones(inputs))
        raise HeadReached

    model.eval()
    deploy = deployable(model)
    model.fuse(verbose=False)
    hook = model.model[-1].register_forward_pre_hook(reached)
    try:
        with torch.no_grad():
            model(x)
    except HeadReached:
        pass
    finally:
        hook.remove()
    if not seen:
        raise RuntimeError("the fused model's forward did not reach its head")
    diff = max(float((a - b).abs().max()) for a, b in zip(before, seen[0]))
    scale = max(float(a.abs().max()) for a in before) or 1.0
    if not diff <= 1e-4 * max(scale, 1.0):
        raise RuntimeError(
            f"model.fuse() changed the features the head receives: max |diff| {diff:.3g} (largest value {scale:.3g})"
        )
    return {"max_abs_diff": diff, "deploy_modules": deploy, "head_inputs": len(before)}


def deployable(model) -> int:
    """How many modules ``model.fuse()`` switches to deploy through the added package (switch_to_deploy,
    fuse_convs, fuse of the added files), by the package's own count where it has one."""
    from ultralytics.nn import Addmodules  # type: ignore[attr-defined]  # (the added package: a patched install)

    count = getattr(Addmodules, "rtdetr_patch_deployable", None)
    if count is not None:
        return len(count(model))
    return sum(1 for m in model.modules() if callable(getattr(m, "switch_to_deploy", None)))


def own_yaml(yaml: str) -> str | None:
    """The file of the user's own yaml (a path; with Ultralytics' scale letter, yolo11n-x.yaml is yolo11-x.yaml)."""
    if not os.path.isabs(yaml):
        return None
    plain = os.path.join(os.path.dirname(yaml), unscaled(os.path.basename(yaml)))
    return next((p for p in (yaml, plain) if os.path.isfile(p)), None)


def is_yolo(yaml: str) -> bool:
    """A YOLO model (Detect head): a shipped yaml by its name, the user's own by its head."""
    found = own_yaml(yaml)
    if found:
        return "RTDETRDecoder" not in row_modules(found)
    return os.path.basename(yaml).lower().startswith("yolo")


def row_modules(path: str) -> set[str]:
    """The module names the rows of a model yaml give (comments and other keys are not rows)."""
    import yaml as pyyaml  # PyYAML: Ultralytics reads its yamls with it

    with open(path, encoding="utf-8") as handle:
        data = pyyaml.safe_load(handle) or {}
    rows = [row for key in ("backbone", "head") for row in (data.get(key) or []) if isinstance(row, list)]
    return {str(row[2]) for row in rows if len(row) > 2}


def first_tensor(out):
    """The first tensor of a model output (a tensor, a tuple or list, or a dict of them)."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    items = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else ()
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def users_backbones() -> list:
    """The backbones the user registered (``apply --module``): every registered one but rtdetr-patch's MobileNetV3."""
    from ultralytics.nn import Addmodules  # type: ignore[attr-defined]  # (the added package: a patched install)

    own = {Addmodules.MobileNetV3}
    return sorted(getattr(Addmodules, BACKBONES) - own, key=lambda e: e.__name__)


def users_backbones_reload(torch, root: str) -> dict:
    """Each registered backbone of the user's (``apply --module``), saved as a checkpoint holds it and
    loaded back with the release's restricted loader (``ULTRALYTICS_SAFE_LOAD``), where it has one.

    A backbone that needs arguments is skipped (its yaml row carries them), and so is one that does not build with
    its defaults in this interpreter (a fork's backbone that needs a package it lacks, such as mmcv): named with its
    error, not checked; the yaml of the smoke run builds the backbones it uses. A global the allow-list still
    blocks is reported by name.
    """
    import tempfile

    from ultralytics.nn import tasks

    out = {}
    for entry in users_backbones():
        name = entry.__name__
        try:
            net = entry()
        except TypeError as exc:
            if "required" in str(exc) and "argument" in str(exc):
                out[name] = "needs arguments: not checked"
                continue
            out[name] = f"does not build with its defaults here ({type(exc).__name__}: {exc}): not checked"
            continue
        except Exception as exc:  # (its own failure, not the patch's: the yamls that use it were built already)
            out[name] = f"does not build with its defaults here ({type(exc).__name__}: {exc}): not checked"
            continue
        if not hasattr(tasks, "_SafeLoad") or not getattr(tasks._SafeLoad, "SUPPORTED", False):
            out[name] = "built (this release has no restricted loading)"
            continue
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "backbone.pt")
            torch.save({"model": net}, path)
            try:
                tasks.torch_safe_load(path, safe_only=True)
            except Exception as exc:
                blocked = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path))
                raise RuntimeError(
                    f"a checkpoint of {name} does not load under ULTRALYTICS_SAFE_LOAD=1: {exc} "
                    f"(globals it holds: {blocked})"
                ) from exc
        out[name] = "restricted reload ok"
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True, help="folder holding the patched ultralytics/")
    parser.add_argument("--yaml", default="rtdetr-MobileNetV3.yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--train-imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--native", action="store_true", help="the yaml uses Ultralytics' TorchVision rows")
    parser.add_argument("--train", action="store_true", help="also one short epoch through Ultralytics' trainer")
    parser.add_argument("--no-stock", dest="stock", action="store_false", help="do not build stock rtdetr-l.yaml")
    parser.add_argument(  # a fork that deleted Ultralytics' RT-DETR yamls: the release's own copy, from its wheel
        "--stock-yaml", default="rtdetr-l.yaml", help="the stock rtdetr-l.yaml to build (default: the install's)"
    )
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.root))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        emit(result=run(args))
        return 0
    except BaseException as exc:  # everything is reported to the parent
        emit(
            error={
                "stage": STAGE["name"],
                "type": type(exc).__name__,
                "message": str(exc)[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
