"""Stock Ultralytics stays as it was: every stock yaml builds the same on a patched install.

For the latest release and an 8.1.x release (YOLOv9's ``CBLinear``/``CBFuse`` rows exist there,
and their ``c2`` is a list), a pristine and a patched copy of the real wheel's ``ultralytics/`` are
each imported in a fresh process (``stock_worker.py``), which builds every yaml under
``cfg/models`` with seed 0 and runs one eval forward. Every yaml that builds on the pristine copy
must build on the patched one with the same parameter count, bit-identical weights and
bit-identical outputs; and importing Ultralytics must not import torchvision on either copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LATEST

from rtdetr_patch.cli import main as cli_main

WORKER = Path(__file__).with_name("stock_worker.py")
STOCK_RELEASES = (LATEST, "8.1.47")
# yamls that must be among those building on pristine (the regression this file guards against)
MUST_BUILD = ("v9/yolov9e.yaml", "v9/yolov9e-seg.yaml", "v9/yolov9c.yaml", "v8/yolov8.yaml", "rt-detr/rtdetr-l.yaml")
MIN_BUILT = {LATEST: 60, "8.1.47": 30}  # of 66 and 31 yamls (a few need downloads offline)

pytestmark = pytest.mark.slow


def run_workers(trees: dict[str, Path], yamls: list[str], work: Path) -> dict[str, dict]:
    """Both trees side by side, one torch thread each, in fresh processes."""
    env = {**os.environ, "YOLO_OFFLINE": "1", "STOCK_THREADS": "1", "YOLO_CONFIG_DIR": str(work / "config")}
    procs = {}
    for side, root in trees.items():
        out = work / f"{side}.json"
        log = (work / f"{side}.log").open("w")
        procs[side] = (
            subprocess.Popen(
                [sys.executable, str(WORKER), str(root), str(out), *yamls],
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            ),
            out,
            log,
        )
    results = {}
    for side, (proc, out, log) in procs.items():
        assert proc.wait(timeout=1500) == 0, (work / f"{side}.log").read_text()[-3000:]
        log.close()
        results[side] = json.loads(out.read_text())
    return results


@pytest.fixture(scope="module")
def stock(release_trees, tmp_path_factory):
    cache: dict[str, dict[str, dict]] = {}

    def get(release: str) -> dict[str, dict]:
        if release not in cache:
            work = tmp_path_factory.mktemp(f"stock-{release}")
            pristine, patched = work / "pristine", work / "patched"
            shutil.copytree(release_trees(release), pristine)
            shutil.copytree(release_trees(release), patched)
            env = {"RTDETR_PATCH_HOME": str(work / "state")}
            applied = CliRunner(env=env).invoke(cli_main, ["apply", "--target", str(patched), "--no-verify"])
            assert applied.exit_code == 0, applied.output
            models = pristine / "ultralytics" / "cfg" / "models"
            yamls = sorted(p.relative_to(models).as_posix() for p in models.rglob("*.yaml"))
            cache[release] = run_workers({"pristine": pristine, "patched": patched}, yamls, work)
        return cache[release]

    return get


@pytest.mark.parametrize("release", STOCK_RELEASES)
def test_every_stock_yaml_builds_bit_identical(stock, release, capsys):
    result = stock(release)
    pristine, patched = result["pristine"]["yamls"], result["patched"]["yamls"]
    assert pristine.keys() == patched.keys()
    built = [name for name, entry in pristine.items() if "error" not in entry]
    assert len(built) >= MIN_BUILT[release], {k: v for k, v in pristine.items() if "error" in v}
    for name in MUST_BUILD:
        assert name in built, (name, pristine.get(name))
    differ = {}
    for name in built:
        want, got = pristine[name], patched[name]
        if "error" in got or any(want[k] != got[k] for k in ("params", "weights", "outputs")):
            differ[name] = got.get("error") or {k: (want[k], got[k]) for k in ("params", "weights", "outputs")}
    assert not differ, differ
    # a yaml that fails on pristine (it needs a download) fails the same way on the patched copy
    assert {n for n, e in patched.items() if "error" in e} == set(pristine) - set(built)
    with capsys.disabled():
        slow = sum(patched[n]["build_s"] for n in built) / sum(pristine[n]["build_s"] for n in built)
        print(
            f"\n{release}: {len(built)}/{len(pristine)} stock yamls build bit-identical on the patched copy "
            f"(total build time patched/pristine {slow:.2f}, side by side)"
        )


@pytest.mark.parametrize("release", STOCK_RELEASES)
def test_importing_ultralytics_imports_nothing_more(stock, release):
    """``from ultralytics import YOLO`` + ``ultralytics.nn.tasks`` import torchvision exactly when pristine does
    (8.4 defers it on purpose, and Ultralytics' own tests check that)."""
    result = stock(release)
    assert result["patched"]["torchvision_at_import"] == result["pristine"]["torchvision_at_import"]
    if release == LATEST:
        assert result["patched"]["torchvision_at_import"] is False
