"""Time of one box-loss step (IoU term forward and backward) per ``iou_loss`` variant, next to Ultralytics' own.

The variants come from ``templates/Addmodules/iou_losses.py`` (loaded by path, as the patched package holds
it); Ultralytics' own is the ``bbox_iou`` of the interpreter's installed release (the venv's 8.4.190 under
``make``), called as its losses call it: CIoU on YOLO's ``x1y1x2y2`` boxes in grid units, GIoU on RT-DETR's
normalised ``xywh``. Each row is the median of ``--runs`` steps after warm-ups (all cases in turns), on ``--boxes`` random box pairs,
CPU, in one process; ``ratio`` divides by the release's time for the same site. The giou (RT-DETR) and ciou
(YOLO) rows go through the release's own function, as a patched loss does; Wise-IoU v2/v3 keep their running
mean in a model buffer, as a patched model does.

    .venv/bin/python benchmarks/bench_losses.py [--boxes 2000] [--runs 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def load_variants():
    spec = importlib.util.spec_from_file_location("iou_losses", REPO / "templates" / "Addmodules" / "iou_losses.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def step(fn, pred, target) -> float:
    """Milliseconds of one ``(1 - fn(pred, target)).sum().backward()``."""
    p = pred.detach().requires_grad_()
    t0 = time.perf_counter()
    (1.0 - fn(p, target)).sum().backward()
    return (time.perf_counter() - t0) * 1e3


def medians(cases: dict, runs: int) -> dict:
    """Median per case, the cases taken in turns (each round runs every case once): other work on the cores
    slows every case alike instead of the ones that happened to run then."""
    times = {key: [] for key in cases}
    for i in range(runs + 3):
        for key, (fn, pred, target) in cases.items():
            took = step(fn, pred, target)
            if i >= 3:
                times[key].append(took)
    return {key: statistics.median(v) for key, v in times.items()}


def boxes(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    xy, wh = torch.rand(n, 2, generator=g) * 40, torch.rand(n, 2, generator=g) * 8 + 0.5
    target = torch.cat((xy, xy + wh), -1)
    pred = target + torch.randn(n, 4, generator=g) * 0.5
    return pred, target


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boxes", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ultralytics import __version__
    from ultralytics.utils.metrics import bbox_iou

    il = load_variants()
    yolo_pred, yolo_target = boxes(args.boxes, 0)
    xywh = lambda b: torch.cat(((b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]), -1) / 48  # noqa: E731
    detr_pred, detr_target = xywh(yolo_pred), xywh(yolo_target)
    # YOLO's context: all boxes on one level of a 48 x 48 grid, stride 8.
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(48) + 0.5, indexing="ij")
    anchors = torch.stack((xs, ys), -1).view(-1, 2)
    fg = torch.zeros(1, len(anchors), dtype=torch.bool)
    fg[0, : args.boxes] = True
    if args.boxes > len(anchors):
        raise SystemExit(f"--boxes at most {len(anchors)}")

    cases = {
        ("stock", "yolo"): (lambda p, t: bbox_iou(p, t, xywh=False, CIoU=True), yolo_pred, yolo_target),
        ("stock", "detr"): (lambda p, t: bbox_iou(p, t, xywh=True, GIoU=True), detr_pred, detr_target),
    }
    # Wise-IoU v2/v3 keep their running mean in the model's buffer, as a patched model's criterion does
    holder = il.rtdetr_patch_iou_state({"iou_loss": "wiou-v3"}, torch.nn.Sequential())
    for name in il.NAMES:
        yolo = il.IouLossChoice(il.make(name), name, strides=[8.0])
        detr = il.IouLossChoice(il.make(name), name, imgsz=384)
        for choice in (yolo, detr):
            if il.running(choice.variant):
                getattr(choice.variant, "base", choice.variant).bind(holder, 0)
        cases[name, "yolo"] = (
            lambda p, t, c=yolo: c(p, t, xywh=False, release=bbox_iou, anchors=anchors, fg=fg),
            yolo_pred,
            yolo_target,
        )
        cases[name, "detr"] = (
            lambda p, t, c=detr: c(p, t, xywh=True, release=bbox_iou, size=1.0),
            detr_pred,
            detr_target,
        )
    took = medians(cases, args.runs)
    stock_yolo, stock_detr = took["stock", "yolo"], took["stock", "detr"]
    print(
        f"Ultralytics {__version__}, torch {torch.__version__}, {args.boxes} boxes, {args.threads} threads, "
        f"median of {args.runs} steps (ms)"
    )
    print(f"{'iou_loss':<20}{'YOLO (ms)':>11}{'x CIoU':>9}{'RT-DETR (ms)':>15}{'x GIoU':>9}")
    print(f"{'(Ultralytics own)':<20}{stock_yolo:>11.3f}{1:>9.2f}{stock_detr:>15.3f}{1:>9.2f}")
    for name in il.NAMES:
        t_yolo, t_detr = took[name, "yolo"], took[name, "detr"]
        print(f"{name:<20}{t_yolo:>11.3f}{t_yolo / stock_yolo:>9.2f}{t_detr:>15.3f}{t_detr / stock_detr:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
