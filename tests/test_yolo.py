"""The YOLO family: MobileNetV3 (and users' backbones) in YOLOv8, YOLO11, YOLO12 and YOLO26 heads.

* ``apply`` installs ``cfg/models/<family>/<family>-MobileNetV3.yaml`` (v8, 11, 12, 26) on the releases that
  ship those folders, and ``revert`` removes them;
* ``check --yaml yolo11n-MobileNetV3.yaml`` runs the smoke verification on a YOLO model (detection loss,
  backward, one optimizer step), on the latest release and on 8.0.x (YOLOv8 only there);
* a fixture backbone of the users' kind in a YOLO11 head;
* one DistributedDataParallel training run (gloo, 2 CPU processes) of the RT-DETR and YOLO11 MobileNetV3
  models: identical weights on both ranks, no unused-parameter error;
* Ultralytics' own command line: ``yolo train``, ``yolo predict``, ``yolo export format=onnx``, then ONNX
  against torch, on the latest release (YOLO11) and on 8.0.x (YOLOv8).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LATEST, OLD, snapshot
from helpers import assert_offline, make_dataset, offline_env, run_phase

from rtdetr_patch.cli import main as cli_main

FIXTURES = Path(__file__).parent / "fixtures" / "backbones"
DDP_WORKER = Path(__file__).with_name("ddp_worker.py")
FAMILY_YAMLS = {
    "v8": "cfg/models/v8/yolov8-MobileNetV3.yaml",
    "11": "cfg/models/11/yolo11-MobileNetV3.yaml",
    "12": "cfg/models/12/yolo12-MobileNetV3.yaml",
    "26": "cfg/models/26/yolo26-MobileNetV3.yaml",
}
# parameters at nc=80, scale n (MobileNetV3-Small at width 1.0, the family's head)
PARAMS = {
    "yolov8n-MobileNetV3.yaml": 3_260_640,
    "yolo11n-MobileNetV3.yaml": 2_880_336,
    "yolo12n-MobileNetV3.yaml": 2_862_960,
    "yolo26n-MobileNetV3.yaml": 2_828_536,
}
ONNX_TOLERANCE = 1e-3  # raw Detect outputs: boxes in pixels up to imgsz, scores in [0, 1]


@pytest.mark.parametrize(
    "release, families",
    [("8.0.136", {"v8"}), ("8.3.0", {"v8", "11"}), ("8.3.100", {"v8", "11", "12"}), (LATEST, {"v8", "11", "12", "26"})],
)
def test_yolo_yamls_go_where_each_family_lives(release, families, tree, cli):
    root = tree(release)
    before = snapshot(root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    package = root / "ultralytics"
    for family, rel in FAMILY_YAMLS.items():
        assert (package / rel).is_file() == (family in families), (release, rel)
        if family in families:
            text = (package / rel).read_text(encoding="utf-8")
            assert "[-1, 1, MobileNetV3, []]" in text and "Detect, [nc]" in text
    for family in FAMILY_YAMLS:
        assert (package / "cfg/models" / family).is_dir() == (family in families)  # only where the family lives
    report = json.loads(cli("check", "--target", root, "--static", "--json").output)
    assert report["ok"], report["problems"]
    assert {a["path"] for a in report["added"]} >= {FAMILY_YAMLS[f] for f in families}
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "release, yaml",
    [
        (LATEST, "yolo11n-MobileNetV3.yaml"),
        (LATEST, "yolov8n-MobileNetV3.yaml"),
        (LATEST, "yolo12n-MobileNetV3.yaml"),
        (LATEST, "yolo26n-MobileNetV3.yaml"),
        (OLD, "yolov8n-MobileNetV3.yaml"),
    ],
)
def test_check_verifies_a_yolo_model(release, yaml, tree, cli):
    root = tree(release)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    result = cli("check", "--target", root, "--json", "--yaml", yaml)
    assert result.exit_code == 0, result.output
    fig = json.loads(result.output)["verification"]
    assert fig["family"] == "yolo" and fig["backbone"] == "MobileNetV3"
    assert fig["params"] == PARAMS[yaml]
    assert fig["output_shape"][:2] == [1, 84]  # 4 box coordinates + 80 classes per anchor (YOLO26: one2many)
    assert fig["gflops"] > 0 and fig["stepped_tensors"] > 0


@pytest.mark.slow
def test_users_backbone_in_a_yolo11_head(tree, cli, tmp_path):
    root = tree(LATEST)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'repnet.py'}:repnet_m0")
    assert result.exit_code == 0, result.output
    template = (root / "ultralytics" / FAMILY_YAMLS["11"]).read_text(encoding="utf-8")
    (tmp_path / "yolo11-repnet.yaml").write_text(
        template.replace("[-1, 1, MobileNetV3, []]", "[-1, 1, repnet_m0, []]"), encoding="utf-8"
    )
    result = cli("check", "--target", root, "--json", "--yaml", tmp_path / "yolo11n-repnet.yaml")  # scale n
    assert result.exit_code == 0, result.output
    fig = json.loads(result.output)["verification"]
    assert fig["family"] == "yolo" and fig["backbone"] == "RepNet"
    assert fig["backbone_widths"] == [16, 32, 48, 64]
    assert fig["users_backbones"] == {"repnet_m0": "restricted reload ok"}


@pytest.mark.slow
@pytest.mark.parametrize("yaml", ["rtdetr-MobileNetV3.yaml", "yolo11n-MobileNetV3.yaml"])
def test_ddp_training_step(yaml, tree, cli, tmp_path):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    out = tmp_path / "ddp.json"
    done = subprocess.run(
        [sys.executable, str(DDP_WORKER), str(root), yaml, "128", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = json.loads(out.read_text(encoding="utf-8"))["ranks"]
    assert len(ranks) == 2
    for rank in ranks:
        assert "error" not in rank, f"rank {rank['rank']}: {rank.get('error')}\n{rank.get('traceback')}"
        assert rank["backbone"] == ["MobileNetV3"] and len(rank["losses"]) == 2
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients were averaged over both ranks
    assert ranks[0]["losses"][0] != ranks[1]["losses"][0]  # each rank trained on its own batch


@pytest.mark.slow
@pytest.mark.parametrize("release, yaml", [(LATEST, "yolo11n-MobileNetV3.yaml"), (OLD, "yolov8n-MobileNetV3.yaml")])
def test_yolo_cli_train_predict_export(release, yaml, release_trees, tmp_path, capsys):
    root = tmp_path / "site"
    shutil.copytree(release_trees(release), root)
    applied = CliRunner(env={"RTDETR_PATCH_HOME": str(tmp_path / "state")}).invoke(
        cli_main, ["apply", "--target", str(root), "--no-verify"]
    )
    assert applied.exit_code == 0, applied.output
    data = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    spec = {
        "root": str(root),
        "yaml": yaml,
        "data": str(data),
        "imgsz": 128,
        "project": str(tmp_path / "runs"),
        "image": str(data.parent / "images" / "val" / "val0.png"),
    }
    out, wall, log = run_phase("yolo_cli", spec, offline_env(tmp_path, release), run)
    assert out["ok"], f"{out.get('traceback')}\n{log}"
    assert_offline(out["network_attempts"], f"{release} yolo train/predict/export")
    assert out["best_exists"] and out["onnx_exists"], out
    assert out["model_class"] == "DetectionModel" and out["backbone"] == ["MobileNetV3"], out
    assert out["onnx_shape"] == out["torch_shape"], out
    assert out["max_abs_diff"] < ONNX_TOLERANCE, out
    with capsys.disabled():
        s = out["seconds"]
        print(
            f"\n[yolo cli] {release} {yaml}: train {s['train']:.0f} s, predict {s['predict']:.1f} s, export "
            f"{s['export']:.1f} s; ONNX vs torch max |diff| {out['max_abs_diff']:.2g} (outputs up to "
            f"{out['max_abs_ref']:.3g})"
        )
