"""What a full ``check`` costs next to the least any smoke verification must do (issue 27: at most 1.1x).

One run, side by side, interleaved: on a patched project-local copy of the release (extracted from the wheel,
``apply --target DIR --no-verify``), each round times in fresh processes

* ``rtdetr-patch check --fresh --target DIR``: the whole command, interpreter start-up, the static check of
  every patched file and the smoke run in the target interpreter;
* the bare smoke script below: a fresh Python that imports torch and that Ultralytics, builds the yaml, runs
  one eval forward at 640 and one train-mode loss on a batch of two 320 images with its backward. That is
  the minimum a verification of the patch must do (the model builds, infers and trains), written plainly;
* ``rtdetr-patch check`` again, answered from the last verified run (nothing changed), for reference.

It prints the median of ``--repeats`` rounds of each and the ratio of the full check to the bare script, with
the machine's load average at the start and at the end. Wall time is what the goal is about, but on a busy
machine it is mostly the other work's noise; the CPU time of each process (user + system, its children
included; not on Windows) is printed beside it, and moves much less with the load.

    python benchmarks/bench_check.py [--release 8.4.190] [--repeats 5] [--yaml rtdetr-MobileNetV3.yaml] [--threads N]

``--threads N`` sets ``OMP_NUM_THREADS`` for every process (both sides alike): with other work on the cores, one
thread per process keeps torch's threads from waiting on each other, and the ratio steadier.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from release_wheels import wheel

GOAL = 1.1

# The bare smoke script: argv = [root, yaml]. No checks beyond what raises on its own.
BARE = """\
import os, sys
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("YOLO_OFFLINE", "1")
import torch
from ultralytics import RTDETR
torch.manual_seed(0)
model = RTDETR(sys.argv[2]).model
model.eval()
with torch.no_grad():
    model(torch.zeros(1, 3, 640, 640))
model.train()
model.nc = model.model[-1].nc  # the trainer sets it from the dataset
batch = {
    "img": torch.rand(2, 3, 320, 320),
    "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
    "cls": torch.tensor([[1.0], [5.0], [2.0]]),
    "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.25, 0.3, 0.2, 0.2], [0.6, 0.4, 0.5, 0.3]]),
}
loss = model.loss(batch)
(loss[0] if isinstance(loss, (list, tuple)) else loss).sum().backward()
"""


def cpu_seconds() -> float:
    """User + system seconds of every child process that has ended (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``."""
    cpu, start = cpu_seconds(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, cpu_seconds() - cpu


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):  # Windows has no load average
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="8.4.190")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--yaml", default="rtdetr-MobileNetV3.yaml")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for every process (0: torch's own)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtdetr-bench-check-"))
    started_load = load()
    try:
        root = work / "site"
        with zipfile.ZipFile(wheel(args.release)) as zf:
            zf.extractall(root, [n for n in zf.namelist() if n.startswith("ultralytics/")])
        env = {**os.environ, "RTDETR_PATCH_HOME": str(work / "state")}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        tool = [sys.executable, "-m", "rtdetr_patch"]
        target = ["--target", str(root), "--yaml", args.yaml]
        timed([*tool, "apply", "--no-verify", "--target", str(root)], env)
        bare = [sys.executable, "-c", BARE, str(root), args.yaml]
        timed(bare, env)  # a warm-up of each: the first import of torch reads it from disk
        timed([*tool, "check", "--fresh", *target], env)
        rows: dict[str, list[tuple[float, float]]] = {
            "check --fresh": [],
            "bare smoke script": [],
            "check (cached)": [],
        }
        for _ in range(args.repeats):  # interleaved, so drift of the machine hits each alike
            rows["check --fresh"].append(timed([*tool, "check", "--fresh", *target], env))
            rows["bare smoke script"].append(timed(bare, env))
            rows["check (cached)"].append(timed([*tool, "check", *target], env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bare_wall = statistics.median(w for w, _ in rows["bare smoke script"])
    bare_cpu = statistics.median(c for _, c in rows["bare smoke script"]) or 1.0
    print(
        f"check on Ultralytics {args.release} ({args.yaml}): {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, median of {args.repeats} fresh processes, "
        f"{args.threads or 'default'} torch threads, "
        f"load average {started_load} at the start, {load()} at the end"
    )
    print(f"{'':<20}{'median s':>10}{'min s':>10}{'max s':>10}{'x bare':>10}{'CPU s':>10}{'CPU x bare':>12}")
    for name, values in rows.items():
        walls = [w for w, _ in values]
        med, cpu = statistics.median(walls), statistics.median(c for _, c in values)
        print(
            f"{name:<20}{med:>10.2f}{min(walls):>10.2f}{max(walls):>10.2f}{med / bare_wall:>10.2f}"
            f"{cpu:>10.2f}{cpu / bare_cpu:>12.2f}"
        )
    ratio = statistics.median(w for w, _ in rows["check --fresh"]) / bare_wall
    print(f"full check / bare smoke script: {ratio:.2f}x (goal <= {GOAL}x): {'ok' if ratio <= GOAL else 'MISSED'}")


if __name__ == "__main__":
    main()
