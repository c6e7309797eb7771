"""How long the commands take on a real release (no torch involved), against the floor of any libcst tool.

One run, side by side, interleaved: each command is timed in a fresh process (the way a user or CI
runs it, interpreter start-up and imports included) over a fresh copy of the release's
``ultralytics/``, median of ``--repeats`` rounds. The floor is what any libcst-based patcher pays
at least: a fresh Python that imports libcst, click and rich, then parses and regenerates
``nn/tasks.py`` once. Each command is printed as a ratio to that floor; the targets are
``apply --no-verify`` <= 1.5x, ``check --static`` <= 1.0x, a repeated (no-op) ``apply`` <= 1.0x and
``revert`` <= 1.0x. ``--version`` is shown for reference.

    python benchmarks/bench_cli.py [--release 8.4.190] [--repeats 9]
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

FLOOR = (
    "import sys, libcst, click, rich\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "assert libcst.parse_module(data.decode('utf-8')).code.encode('utf-8') == data\n"
)
TARGETS = {"apply --no-verify": 1.5, "check --static": 1.0, "apply (no-op)": 1.0, "revert": 1.0}


def timed(args: list[str], env: dict, code: str | None = None) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "rtdetr_patch", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rtdetr-patch {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="8.4.190")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtdetr-bench-"))
    try:
        pristine = work / "pristine"
        with zipfile.ZipFile(wheel(args.release)) as zf:
            zf.extractall(pristine, [n for n in zf.namelist() if n.startswith("ultralytics/")])
        env = {**os.environ, "RTDETR_PATCH_HOME": str(work / "state")}
        rows: dict[str, list[float]] = {
            "floor": [],
            "--version": [],
            "apply --no-verify": [],
            "check --static": [],
            "apply (no-op)": [],
            "revert": [],
        }
        tasks = str(pristine / "ultralytics" / "nn" / "tasks.py")
        for round_ in range(args.repeats):
            root = work / f"round{round_}"
            shutil.copytree(pristine, root)
            target = ["--target", str(root)]
            rows["floor"].append(timed([tasks], env, code=FLOOR))
            rows["--version"].append(timed(["--version"], env))
            rows["apply --no-verify"].append(timed(["apply", "--no-verify", *target], env))
            rows["check --static"].append(timed(["check", "--static", *target], env))
            rows["apply (no-op)"].append(timed(["apply", "--no-verify", *target], env))
            rows["revert"].append(timed(["revert", *target], env))
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(rows["floor"])
    print(
        f"rtdetr-patch on Ultralytics {args.release}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, median of {args.repeats} fresh processes"
    )
    print("floor: a fresh Python imports libcst, click and rich, then parses and regenerates nn/tasks.py once")
    print(f"{'command':<20}{'median s':>10}{'min s':>10}{'x floor':>10}{'target':>9}")
    for name, values in rows.items():
        med = statistics.median(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"<= {target:.1f}" + (" ok" if med / floor <= target else " MISSED"))
        print(f"{name:<20}{med:>10.2f}{min(values):>10.2f}{med / floor:>10.2f}{verdict:>12}")


if __name__ == "__main__":
    main()
