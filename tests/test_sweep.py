"""The release sweep (``benchmarks/sweep_releases.py``) keeps working: CI runs it on a small fixed set.

The full sweep over every release writes ``docs/compatibility.md``; here it runs the same static
round trip on the oldest supported release, a release with no RT-DETR folder in its wheel, and the
newest, and its report must say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wheel

SWEEP = Path(__file__).resolve().parents[1] / "benchmarks" / "sweep_releases.py"


@pytest.mark.wheels  # the sweep downloads and reads real release wheels itself
def test_sweep_on_a_fixed_set(tmp_path):
    releases = ["8.0.136", "8.0.179", "8.4.190"]
    for release in releases:
        wheel(release)  # into the shared wheel cache, as the other tests do
    cache, out = tmp_path / "results.jsonl", tmp_path / "compatibility.md"
    done = subprocess.run(
        [
            sys.executable,
            str(SWEEP),
            "--releases",
            ",".join(releases),
            "--workers",
            "1",
            "--cache",
            str(cache),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=900,
    )
    assert done.returncode in (0, 1), done.stderr
    results = {r["release"]: r for r in map(json.loads, cache.read_text().splitlines())}
    assert set(results) == set(releases)
    assert results["8.0.136"]["outcome"] == "pass" and results["8.4.190"]["outcome"] == "pass", results
    # 8.0.179's wheel lacks cfg/models/rt-detr: refused as unsupported (exit 4), nothing written.
    assert results["8.0.179"]["outcome"].startswith("fail: apply: exit 4"), results["8.0.179"]
    report = out.read_text(encoding="utf-8")
    assert "8.0.136" in report and "8.4.190" in report and "8.0.179" in report
    assert not any(word in report.lower() for word in ("seed", "brief"))
