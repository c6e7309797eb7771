"""Latency before and after ``model.fuse()`` (what predict, val and export call), side by side in one run.

A temporary copy of Ultralytics (the wheel cache's release, default 8.4.190) is patched with the test
fixtures' modules (a re-parameterised ``RepBlock`` among them), then, in this process, each model is built
twice, one copy fused, and the two are timed in turns (median of ``--runs`` forwards at 640 after two
warm-ups, batch 1, CPU). Models: the shipped MobileNetV3 (ours) and the same network through Ultralytics'
native TorchVision rows, the series' ResNet18, and the fixtures' ResNet18 yaml with a module of every rule.

    .venv/bin/python benchmarks/bench_fuse.py [--release 8.4.190] [--runs 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from release_wheels import wheel  # beside this script

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "modules"
MODULES = (
    f"{FIXTURES / 'attention.py'}:ChannelGate,ParamFree,make_gate",
    f"{FIXTURES / 'convs.py'}:SpaceConv,CSPBlock,RepBlock",
    f"{FIXTURES / 'fusion.py'}:WeightedSum=count,ZoomCat=concat,Inject=inputs,ScaleSeq=inputs-out,Multiply=first",
    f"{FIXTURES / 'blocks.py'}:BasicBlockGate=block",
    f"{FIXTURES / 'heads.py'}:LiteDetect",
)


def patched_tree(release: str, folder: Path) -> Path:
    root = folder / "site"
    with zipfile.ZipFile(wheel(release)) as zf:
        zf.extractall(root, [n for n in zf.namelist() if n.startswith("ultralytics/")])
    args = [sys.executable, "-m", "rtdetr_patch", "apply", "--target", str(root), "--no-verify", "-q"]
    for spec in MODULES:
        args += ["--module", spec]
    env = {**os.environ, "RTDETR_PATCH_HOME": str(folder / "state")}
    subprocess.run(args, check=True, env=env)
    return root


def median_ms(model, x, runs: int) -> float:
    import torch

    times = []
    with torch.no_grad():
        for i in range(runs + 2):
            t0 = time.perf_counter()
            model(x)
            if i >= 2:
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--release", default="8.4.190")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = patched_tree(args.release, Path(folder))
        sys.path.insert(0, str(root))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        import torch
        from ultralytics import RTDETR

        torch.set_num_threads(args.threads)
        x = torch.rand(1, 3, 640, 640)
        yamls = [
            "rtdetr-MobileNetV3.yaml",
            "rtdetr-MobileNetV3-tv.yaml",
            "rtdetr-resnet18.yaml",
            str(FIXTURES / "rtdetr-r18-modules.yaml"),
        ]
        print(
            f"Ultralytics {args.release}, torch {torch.__version__}, {args.threads} threads, 640x640, batch 1, "
            f"median of {args.runs}"
        )
        print(f"{'model':<40} {'before ms':>10} {'fused ms':>10} {'ratio':>6} {'deploy':>7}")
        for yaml in yamls:
            plain = RTDETR(yaml).model.eval()
            fused = copy.deepcopy(plain)
            deploy = sum(1 for m in fused.modules() if callable(getattr(m, "switch_to_deploy", None)))
            fused.fuse(verbose=False)
            before, after = [], []
            for _ in range(3):  # in turns, so drift of the machine hits both alike
                before.append(median_ms(plain, x, args.runs))
                after.append(median_ms(fused, x, args.runs))
            b, a = statistics.median(before), statistics.median(after)
            print(f"{Path(yaml).name:<40} {b:>10.0f} {a:>10.0f} {a / b:>6.2f} {deploy:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
