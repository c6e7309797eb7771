"""The Ultralytics release wheels the benchmarks read, from the cache the tests fill (one copy on disk).

``RTDETR_PATCH_WHEEL_CACHE`` moves the cache, as for the tests; a wheel missing there is downloaded once.
Imported by the benchmark scripts, which run from the repository (``python benchmarks/bench_cli.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("RTDETR_PATCH_WHEEL_CACHE") or Path.home() / ".cache" / "rtdetr-patch" / "wheels")


def wheel(release: str) -> Path:
    """The wheel of ``ultralytics==release`` in the cache, downloaded first when it is not there."""
    found = sorted(CACHE.glob(f"ultralytics-{release}-*.whl"))
    if not found:
        CACHE.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(CACHE)]
        subprocess.run([*pip, f"ultralytics=={release}"], check=True)
        found = sorted(CACHE.glob(f"ultralytics-{release}-*.whl"))
    if not found:
        raise SystemExit(f"no wheel for ultralytics {release} in {CACHE}")
    return found[0]
