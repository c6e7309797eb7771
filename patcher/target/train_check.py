"""``--train``: one short epoch through Ultralytics' own trainer, in the smoke run's process.

The smoke run calls ``model.loss`` directly, so it cannot see what only the trainer does: the
callbacks the user's Ultralytics settings turn on (TensorBoard traces the live model when training
starts), the dataloader and its augmentations, the optimizer and scheduler Ultralytics builds,
EMA, and the validation at the end of the epoch. This builds a tiny dataset (a few generated images
with boxes of the yaml's own classes, in Ultralytics' layout) in a temporary folder, then runs
``RTDETR(yaml).train(...)`` / ``YOLO(yaml).train(...)`` for one epoch of two iterations on the CPU,
with the user's settings as they are. Everything it writes (dataset, run folder, weights) lives in
that temporary folder and is removed afterwards; integrations the settings enable log this run as
they would log any other.

It imports nothing from rtdetr-patch (it runs in the target interpreter, beside ``smoke.py``).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from typing import Any

TRAIN_IMAGES, VAL_IMAGES, BATCH = 4, 2, 2  # two iterations of two images, then the epoch's validation


def make_dataset(folder: str, nc: int, size: int) -> str:
    """Images with one to three filled boxes of classes 0..nc-1, YOLO labels, and the data yaml; its path."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)  # the same images on every run
    for split, count in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        os.makedirs(os.path.join(folder, "images", split), exist_ok=True)
        os.makedirs(os.path.join(folder, "labels", split), exist_ok=True)
        for i in range(count):
            img = Image.new("RGB", (size, size), tuple(rng.randint(0, 80) for _ in range(3)))
            draw = ImageDraw.Draw(img)
            lines = []
            for _ in range(rng.randint(1, 3)):
                cls = rng.randrange(nc)
                w, h = rng.randint(size // 6, size // 2), rng.randint(size // 6, size // 2)
                x0, y0 = rng.randint(0, size - w - 1), rng.randint(0, size - h - 1)
                draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(rng.randint(120, 255) for _ in range(3)))
                lines.append(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
            img.save(os.path.join(folder, "images", split, f"{split}{i}.png"))
            with open(os.path.join(folder, "labels", split, f"{split}{i}.txt"), "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
    data = os.path.join(folder, "data.yaml")
    with open(data, "w", encoding="utf-8") as handle:
        handle.write(
            f"path: {folder.replace(os.sep, '/')}\ntrain: images/train\nval: images/val\nnames:\n"
            + "".join(f"  {i}: class{i}\n" for i in range(nc))
        )
    return data


def integrations(trainer) -> list[str]:
    """The logging integrations whose callbacks the trainer ran: those the user's Ultralytics settings turn on
    and whose package is installed (Ultralytics also leaves them out while pytest runs)."""
    prefix = "ultralytics.utils.callbacks."
    found = {
        fn.__module__[len(prefix) :]
        for fns in getattr(trainer, "callbacks", {}).values()
        for fn in fns
        if getattr(fn, "__module__", "").startswith(prefix)
    }
    return sorted(found - {"base", "hub", "platform", ""})  # Ultralytics' own: active only with an account session


def quiet_font_check() -> None:
    """The dataset check asks for Arial.ttf (for plots) and downloads it when missing; offline, older releases
    fail there. The run makes no plots, so in this process a missing font is not an error."""
    import importlib

    for where in ("ultralytics.data.utils", "ultralytics.yolo.data.utils"):
        try:
            module = importlib.import_module(where)
        except ImportError:
            continue
        original = getattr(module, "check_font", None)
        if original is None:
            continue

        def tolerant(font="Arial.ttf", _original=original):
            try:
                return _original(font)
            except Exception:  # a font for plots, which this run does not make
                return None

        setattr(module, "check_font", tolerant)  # noqa: B010 - (an attribute some releases' module lacks)


def train_run(yaml: str, yolo: bool, nc: int, imgsz: int) -> dict:
    """One epoch of ``BATCH``-image iterations through the release's trainer; its figures."""

    quiet_font_check()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rtdetr-patch-train-") as folder:
        data = make_dataset(os.path.join(folder, "data"), nc, imgsz)
        model: Any  # (the release's own model class)
        if yolo:
            from ultralytics import YOLO

            model = YOLO(yaml, task="detect")
        else:
            from ultralytics import RTDETR

            model = RTDETR(yaml)
        batches: list[list[float]] = []  # the running mean losses after each iteration, as the trainer logs them

        def record(trainer) -> None:
            batches.append(_numbers(trainer.tloss))

        model.add_callback("on_train_batch_end", record)
        model.train(
            data=data,
            epochs=1,
            imgsz=imgsz,
            batch=BATCH,
            workers=0,
            device="cpu",
            amp=False,
            plots=False,
            project=os.path.join(folder, "runs"),
            name="train",
            exist_ok=True,
            verbose=False,
            seed=0,
            deterministic=False,
        )
        trainer = model.trainer
        if not batches:
            raise RuntimeError("the trainer ran no iteration")
        losses = [round(v, 4) for v in batches[-1]]
        if not all(map(_finite, losses)):
            raise RuntimeError(f"the trainer's losses are not finite: {losses}")
        best = getattr(trainer, "best", None)
        saved = bool(best) and os.path.isfile(str(best))
        iou = iou_loss_in_use(trainer.model, yolo)
        return {
            "iou_loss": iou,
            "best_iou_loss": iou_loss_of_checkpoint(str(best), yolo) if saved else None,
            "epochs": 1,
            "iterations": len(batches),
            "imgsz": imgsz,
            "nc": nc,
            "loss_names": list(getattr(trainer, "loss_names", [])),
            "losses": losses,
            "saved_weights": saved,
            "integrations": integrations(trainer),
            "seconds": round(time.perf_counter() - t0, 2),
        }


def iou_loss_in_use(model, yolo: bool) -> dict:
    """The box-regression IoU loss the model's criterion uses: the model yaml's ``iou_loss`` (name, parameters,
    calls so far), or the release's own (CIoU for YOLO, GIoU for RT-DETR). A yaml that chooses one whose
    criterion does not use it is an error: the loss files are not patched."""
    cfg = getattr(model, "yaml", None)
    chosen = cfg.get("iou_loss") if isinstance(cfg, dict) else None
    try:
        from ultralytics.nn.Addmodules.iou_losses import rtdetr_patch_iou_in_use
    except ImportError:  # an added package from before the losses
        found = None
    else:
        found = rtdetr_patch_iou_in_use(getattr(model, "criterion", None))
    if chosen is not None and (found is None or not found["calls"]):
        raise RuntimeError(
            f"the model yaml chooses `iou_loss: {chosen}`, but the criterion "
            f"{'does not hold it' if found is None else 'never called it'}: rtdetr-patch apply "
            "patches nn/tasks.py, utils/loss.py and models/utils/loss.py; run it again"
        )
    if found is not None:
        return {**found, "source": "model yaml"}
    return {"name": "ciou" if yolo else "giou", "args": {}, "calls": None, "source": "Ultralytics"}


def iou_loss_of_checkpoint(path: str, yolo: bool) -> dict:
    """The box IoU loss a model reloaded from ``path`` (the run's ``best.pt``) trains with: the checkpoint's
    ``model.yaml`` keeps the yaml's ``iou_loss``, a criterion built from the reloaded model finds the variant, and
    a Wise-IoU v2/v3 reads the running mean the checkpoint saved. An error where the checkpoint lost the choice."""
    model: Any  # (the release's own model class)
    if yolo:
        from ultralytics import YOLO

        model = YOLO(path).model
    else:
        from ultralytics import RTDETR

        model = RTDETR(path).model
    cfg = getattr(model, "yaml", None)
    chosen = cfg.get("iou_loss") if isinstance(cfg, dict) else None
    try:
        from ultralytics.nn.Addmodules.iou_losses import rtdetr_patch_iou_in_use
    except ImportError:  # an added package from before the losses
        return {"name": "ciou" if yolo else "giou", "args": {}, "calls": None, "source": "Ultralytics"}
    found = rtdetr_patch_iou_in_use(model.init_criterion())
    if chosen is not None and (found is None or found["name"] != str(chosen).lower()):
        raise RuntimeError(
            f"the model reloaded from best.pt chooses `iou_loss: {chosen}`, but its criterion holds "
            f"{found['name'] if found else 'none'}"
        )
    if found is None:
        return {"name": "ciou" if yolo else "giou", "args": {}, "calls": None, "source": "Ultralytics"}
    return {**found, "calls": None, "source": "best.pt"}


def _numbers(loss) -> list[float]:
    """The trainer's running losses as floats: a tensor (8.0-8.3), a dict of them (8.4), or a number."""
    import torch

    if isinstance(loss, dict):
        return [v for item in loss.values() for v in _numbers(item)]
    if isinstance(loss, torch.Tensor):
        return [float(v) for v in loss.detach().flatten()]
    return [float(loss)] if loss is not None else []


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")
