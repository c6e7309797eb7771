"""What the patch costs stock Ultralytics: import time and stock yaml build time, patched / pristine.

One run, side by side, on a release extracted from the cached wheel into a temporary folder:
``pristine/`` and ``patched/`` (``rtdetr-patch apply --target patched --no-verify``, with
``RTDETR_PATCH_HOME`` in the same temporary folder). Each round starts one fresh process per tree,
in alternating order (AB, BA, ...), so drift on a shared machine hits both alike. A process:

* times ``from ultralytics import YOLO`` + ``import ultralytics.nn.tasks`` (and records whether that
  imported torchvision);
* builds ``yolov8n.yaml`` once to warm up, then times one build of each stock yaml (``--yamls``:
  yolov8n, yolo11n, yolov8n-seg and yolov9c by default) with ``torch.manual_seed(0)`` and the same
  thread count, and hashes the parameters (both trees must build the same weights).

Prints the medians per tree and the ratios patched/pristine; writes every timing to
``<out>/bench_stock-<release>.json``. Exit 1 if the weights differ.

    .venv/bin/python benchmarks/bench_stock.py [--release 8.4.190] [--rounds 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench_models import PROJECT, wheel  # the cached release wheels, shared by the benchmarks

YAMLS = ("yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml", "yolov9c.yaml")

PROBE = r"""
import hashlib, json, os, sys, time
sys.path.insert(0, sys.argv[1])
t0 = time.perf_counter()
from ultralytics import YOLO
import ultralytics.nn.tasks
import_s = time.perf_counter() - t0
tv = "torchvision" in sys.modules
import torch
torch.set_num_threads(int(sys.argv[2]))
YOLO("yolov8n.yaml")  # warm-up: one-time imports and caches
out = {"import_s": import_s, "torchvision": tv, "build_s": {}, "weights": {}}
for name in sys.argv[3:]:
    torch.manual_seed(0)
    t = time.perf_counter()
    model = YOLO(name).model
    out["build_s"][name] = time.perf_counter() - t
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    out["weights"][name] = h.hexdigest()
print("@@" + json.dumps(out))
"""


def trees(release: str, work: Path) -> dict[str, Path]:
    out = {}
    for side in ("pristine", "patched"):
        with zipfile.ZipFile(wheel(release)) as zf:
            zf.extractall(work / side, [n for n in zf.namelist() if n.startswith("ultralytics/")])
        out[side] = work / side
    env = {**os.environ, "RTDETR_PATCH_HOME": str(work / "state")}
    subprocess.run(
        [sys.executable, "-m", "rtdetr_patch", "apply", "--target", str(out["patched"]), "--no-verify"],
        cwd=PROJECT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def probe(root: Path, threads: int, yamls: list[str], work: Path) -> dict:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "config")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), str(threads), *yamls],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode or not lines:
        raise SystemExit(f"the probe failed on {root}:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][2:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="8.4.190")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--yamls", nargs="+", default=list(YAMLS))
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stock-"))
    try:
        roots = trees(args.release, work)
        runs: dict[str, list[dict]] = {"pristine": [], "patched": []}
        for r in range(args.rounds):
            order = ("pristine", "patched") if r % 2 == 0 else ("patched", "pristine")
            for side in order:
                runs[side].append(probe(roots[side], args.threads, args.yamls, work))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(side: str, key: str, name: str | None = None) -> float:
        return statistics.median(run[key][name] if name else run[key] for run in runs[side])

    rows = [("import ultralytics + nn.tasks", median("pristine", "import_s"), median("patched", "import_s"))]
    rows += [
        (f"build {name}", median("pristine", "build_s", name), median("patched", "build_s", name))
        for name in args.yamls
    ]
    print(
        f"\nUltralytics {args.release}, {args.rounds} interleaved rounds, torch threads {args.threads}, "
        f"medians of fresh processes"
    )
    print(f"{'':32} {'pristine s':>11} {'patched s':>11} {'ratio':>7}")
    for label, a, b in rows:
        print(f"{label:32} {a:11.3f} {b:11.3f} {b / a:7.2f}")
    tv = {side: any(run["torchvision"] for run in runs[side]) for side in runs}
    print(f"torchvision imported by `from ultralytics import YOLO`: pristine {tv['pristine']}, patched {tv['patched']}")
    same = all(a["weights"] == b["weights"] for a, b in zip(runs["pristine"], runs["patched"]))
    print(f"weights bit-identical: {same}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_stock-{args.release}.json").write_text(
        json.dumps({"release": args.release, "threads": args.threads, "rows": rows, "runs": runs}, indent=1)
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
