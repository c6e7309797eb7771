"""Parameters, GFLOPs and CPU latency of the YOLO MobileNetV3 models next to the stock n and s models.

On a patched copy of the release (extracted from the cached wheel into a temporary folder; patched with
``rtdetr-patch apply --target ... --no-verify``, ``RTDETR_PATCH_HOME`` in the same folder), each model in
its own fresh process, one after the other: built from its yaml (nc=80, seed 0, no weights), parameters,
GFLOPs at 640 from the release's ``get_flops`` (what ``model.info()`` prints), and the median of
``--repeats`` batch-1 forwards at 640x640 in eval mode after 2 warm-ups, with ``--threads`` torch threads.

    .venv/bin/python benchmarks/bench_yolo.py [--release 8.4.190] [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_stock import PROJECT, trees

MODELS = (
    "yolov8n.yaml",
    "yolov8n-MobileNetV3.yaml",
    "yolov8s.yaml",
    "yolov8s-MobileNetV3.yaml",
    "yolo11n.yaml",
    "yolo11n-MobileNetV3.yaml",
    "yolo11s.yaml",
    "yolo11s-MobileNetV3.yaml",
    "yolo12n.yaml",
    "yolo12n-MobileNetV3.yaml",
    "yolo26n.yaml",
    "yolo26n-MobileNetV3.yaml",
)

PROBE = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[3]))
from ultralytics import YOLO
from ultralytics.utils.torch_utils import get_flops
torch.manual_seed(0)
model = YOLO(sys.argv[2]).model.eval()
x = torch.zeros(1, 3, 640, 640)
times = []
with torch.no_grad():
    for i in range(2 + int(sys.argv[4])):
        t = time.perf_counter()
        model(x)
        if i >= 2:
            times.append(time.perf_counter() - t)
print("@@" + json.dumps({"params": sum(p.numel() for p in model.parameters()), "gflops": get_flops(model, 640),
                         "median_ms": 1000 * statistics.median(times)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="8.4.190")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-yolo-"))
    rows = {}
    try:
        root = trees(args.release, work)["patched"]
        env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "config")}
        for name in args.models:
            done = subprocess.run(
                [sys.executable, "-c", PROBE, str(root), name, str(args.threads), str(args.repeats)],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
            rows[name] = json.loads(lines[-1][2:]) if lines else {"error": done.stderr[-500:]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nUltralytics {args.release}, nc=80, batch 1, 640x640, {args.threads} torch threads, median of "
        f"{args.repeats} forwards"
    )
    print(f"{'model':28} {'parameters':>12} {'GFLOPs':>8} {'CPU ms':>8}")
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:28} error: {r['error']}")
        else:
            print(f"{name:28} {r['params']:12,} {r['gflops']:8.1f} {r['median_ms']:8.0f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_yolo-{args.release}.json").write_text(json.dumps(rows, indent=1))
    return 0 if all("error" not in r for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
