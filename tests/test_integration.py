"""Real installs with torch: apply (with the smoke verification), check, revert.

Runs on the latest release and on an 8.0.x release, each a fresh copy of the real wheel's
``ultralytics/`` verified by the interpreter running the tests (which has torch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LATEST, OLD, snapshot
from rtdetr_patch.patcher.errors import Exit

pytestmark = pytest.mark.slow  # real torch builds or killed runs: minutes (`make test-fast` leaves them out)

MOBILENETV3_PARAMS = 9_847_760  # RT-DETR with MobileNetV3-Small (the blog's yaml), nc=80


def flops_of(root: Path, yaml: str) -> float:
    """GFLOPs the release's own get_flops reports for a model (what model.info() prints)."""
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "from ultralytics import RTDETR\n"
        "from ultralytics.utils.torch_utils import get_flops\n"
        f"print('GFLOPS', get_flops(RTDETR({yaml!r}).model, 640))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    line = [l for l in done.stdout.splitlines() if l.startswith("GFLOPS")][-1]
    return float(line.split()[1])


@pytest.mark.parametrize("release", [LATEST, OLD])
def test_apply_check_revert_with_smoke(release, tree, cli):
    root = tree(release)
    before = snapshot(root)

    applied = cli("apply", "--target", root)
    assert applied.exit_code == 0, applied.output
    assert "Patched and verified" in applied.output
    assert "9.85 M" in applied.output

    checked = cli("check", "--target", root, "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["ok"] is True and report["ultralytics"]["release"] == release
    fig = report["verification"]
    assert fig["params"] == MOBILENETV3_PARAMS
    assert fig["backbone_widths"] == [16, 24, 48, 576]
    assert [s[2] for s in fig["backbone_shapes"]] == [160, 80, 40, 20]  # strides 4, 8, 16, 32 at 640
    assert fig["output_shape"][:2] == [1, 300]
    assert 20 < fig["gflops"] < 35  # 26 GFLOPs at 640 (the blog's figure)
    assert fig["rtdetr_l_params"] == 32_970_476

    reverted = cli("revert", "--target", root)
    assert reverted.exit_code == 0, reverted.output
    assert snapshot(root) == before


def test_old_release_prints_gflops_only_after_the_patch(tree, cli):
    """8.0.x: stock rtdetr-l reports 0 GFLOPs (the 32x32 probe fails); the patch makes it real."""
    root = tree(OLD)
    assert flops_of(root, "rtdetr-l.yaml") == 0
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    assert 100 < flops_of(root, "rtdetr-l.yaml") < 120  # 109.5 GFLOPs at 640 (the blog's figure)


def test_blog_yaml_does_not_build_on_a_pristine_install(tree):
    """What the patch is for: without it the blog's yaml cannot even name its backbone."""
    root = tree(LATEST)
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "from ultralytics import RTDETR\nRTDETR('rtdetr-MobileNetV3.yaml')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=600)
    assert done.returncode != 0


def test_verification_without_torch_fails_clearly(tree, cli, tmp_path):
    """An interpreter without torch: apply writes the patch, then verification fails with its own exit code."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    root = tree(LATEST)
    result = cli("apply", "--target", root, "--python", python)
    assert result.exit_code == Exit.VERIFY, result.output
    assert "import torch" in result.output and "--no-verify" in result.output
    assert cli("check", "--target", root, "--static").exit_code == 0
    assert cli("check", "--target", root, "--python", python).exit_code == Exit.VERIFY


@pytest.fixture(scope="module")
def patched_latest(release_trees, tmp_path_factory):
    """One patched copy of the latest release, shared by the per-yaml checks."""
    import shutil

    from click.testing import CliRunner

    from rtdetr_patch.cli import main

    root = tmp_path_factory.mktemp("patched") / "site"
    shutil.copytree(release_trees(LATEST), root)
    mp = pytest.MonkeyPatch()
    mp.setenv("RTDETR_PATCH_HOME", str(root.parent / "state"))
    result = CliRunner().invoke(main, ["apply", "--target", str(root), "--no-verify"])
    assert result.exit_code == 0, result.output
    yield root, mp
    mp.undo()


@pytest.mark.parametrize(
    "yaml, widths, params",
    [
        ("rtdetr-MobileNetV3-small.yaml", [16, 24, 48, 576], MOBILENETV3_PARAMS),
        ("rtdetr-MobileNetV3-large.yaml", [24, 40, 112, 960], 12_011_488),
        ("rtdetr-MobileNetV3-tv.yaml", [16, 24, 24, 40, 40, 40, 48, 48, 96, 96, 96, 576], 9_847_760),
    ],
)
def test_each_shipped_yaml_trains_one_step(patched_latest, yaml, widths, params):
    """Every shipped yaml passes the smoke verification: eval forward, loss, backward, one SGD step."""
    root, mp = patched_latest
    from click.testing import CliRunner

    from rtdetr_patch.cli import main

    result = CliRunner().invoke(main, ["check", "--target", str(root), "--json", "--yaml", yaml])
    assert result.exit_code == 0, result.output
    fig = json.loads(result.output)["verification"]
    assert fig["yaml"] == yaml
    assert fig["params"] == params
    assert fig["backbone_widths"][-len(widths) :] == widths
    assert (
        fig["stepped_tensors"] > 0 and fig["loss"] == fig["loss"]
    )  # finite: NaN != NaN, and the smoke checked isfinite
    assert fig["gflops"] > 20


def test_pretrained_weights_through_the_yaml(patched_latest, tmp_path):
    """A local torchvision checkpoint named in the yaml row is loaded into the backbone, key for key."""
    root, _ = patched_latest
    small = (root / "ultralytics/cfg/models/rt-detr/rtdetr-MobileNetV3-small.yaml").read_text(encoding="utf-8")
    yaml = tmp_path / "rtdetr-mnv3-pretrained.yaml"
    yaml.write_text(
        small.replace("MobileNetV3, [small, 1.0]]", "MobileNetV3, [small, 1.0, weights/mnv3.pth]]"), encoding="utf-8"
    )
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "import os, torch, torchvision\n"
        "torch.manual_seed(1)\n"
        "ref = torchvision.models.mobilenet_v3_small()\n"
        "os.makedirs('weights', exist_ok=True); torch.save(ref.state_dict(), 'weights/mnv3.pth')\n"
        "from ultralytics import RTDETR\n"
        f"net = RTDETR({str(yaml)!r}).model\n"
        "bb = [m for m in net.model if getattr(m, 'backbone', False)][0]\n"
        "ours = bb.features.state_dict(); theirs = ref.features.state_dict()\n"
        "assert ours.keys() == theirs.keys()\n"
        "print('MATCHED', sum(torch.equal(ours[k], theirs[k]) for k in ours), len(ours))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    matched, total = map(int, done.stdout.split("MATCHED")[-1].split())
    assert matched == total > 100
