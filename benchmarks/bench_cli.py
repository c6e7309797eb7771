"""How long `apply --no-verify` and `check --static` take on a real release (no torch involved).

One run, side by side: each command is timed in a fresh process (the way a user or CI runs it,
interpreter start-up and imports included) over a fresh copy of the release's ``ultralytics/``,
median of ``--repeats`` rounds; ``revert`` is timed too, and ``--version`` gives the floor
(interpreter start-up and the tool's imports alone) to which the commands are compared.

    python benchmarks/bench_cli.py [--release 8.4.190] [--repeats 5]
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

CACHE = Path(os.environ.get("RTDETR_PATCH_WHEEL_CACHE") or Path.home() / ".cache" / "rtdetr-patch" / "wheels")


def wheel(release: str) -> Path:
    found = sorted(CACHE.glob(f"ultralytics-{release}-*.whl"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(CACHE),
                        f"ultralytics=={release}"], check=True)
        found = sorted(CACHE.glob(f"ultralytics-{release}-*.whl"))
    return found[0]


def timed(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "patcher", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rtdetr-patch {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="8.4.190")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtdetr-bench-"))
    try:
        pristine = work / "pristine"
        with zipfile.ZipFile(wheel(args.release)) as zf:
            zf.extractall(pristine, [n for n in zf.namelist() if n.startswith("ultralytics/")])
        env = {**os.environ, "RTDETR_PATCH_HOME": str(work / "state")}
        rows: dict[str, list[float]] = {"--version": [], "apply --no-verify": [], "check --static": [],
                                        "revert": []}
        for round_ in range(args.repeats):
            root = work / f"round{round_}"
            shutil.copytree(pristine, root)
            target = ["--target", str(root)]
            rows["--version"].append(timed(["--version"], env))
            rows["apply --no-verify"].append(timed(["apply", "--no-verify", *target], env))
            rows["check --static"].append(timed(["check", "--static", *target], env))
            rows["revert"].append(timed(["revert", *target], env))
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(rows["--version"])
    print(f"rtdetr-patch on Ultralytics {args.release}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, median of {args.repeats} fresh processes")
    print(f"{'command':<22}{'median s':>10}{'min s':>10}{'x --version':>13}")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"{name:<22}{med:>10.2f}{min(values):>10.2f}{med / floor:>13.1f}")


if __name__ == "__main__":
    main()
