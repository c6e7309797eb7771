"""Inputs nobody tuned the tool for: the user's own yaml with few classes, and Ultralytics' own trainer with
the user's settings (TensorBoard on, as releases up to 8.3 wrote it) through ``--train``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import LATEST, OLD, snapshot, wheel
from rtdetr_patch.patcher.commands.verify import verify
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.install.locate import locate


def own_yaml(root: Path, shipped: str, nc: int, folder: Path) -> Path:
    """A copy of a yaml the install ships, as a user's own file with ``nc`` classes."""
    found = next((root / "ultralytics" / "cfg" / "models").rglob(shipped))
    text, count = re.subn(r"(?m)^nc: \d+", f"nc: {nc}", found.read_text(encoding="utf-8"))
    assert count == 1, shipped
    path = folder / shipped.replace(".yaml", f"-nc{nc}.yaml")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("shipped, nc", [("yolov8.yaml", 2)])  # RT-DETR, nc 1: the --train test below
def test_the_smoke_run_takes_a_yaml_with_few_classes(shipped, nc, tree, cli, tmp_path):
    """The smoke batch's class ids lie within the yaml's nc (ids 1, 5, 2 failed every yaml with nc of 5 or less)."""
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    yaml = own_yaml(root, shipped, nc, tmp_path)
    result = cli("check", "--target", root, "--json", "--yaml", yaml)
    assert result.exit_code == 0, result.output
    fig = json.loads(result.output)["verification"]
    assert fig["nc"] == nc and fig["loss"] > 0 and fig["stepped_tensors"] > 0
    if fig["family"] == "yolo":
        assert fig["output_shape"][:2] == [1, 4 + nc]  # boxes + nc class scores per anchor


def tensorboard_settings(root: Path, folder: Path) -> Path:
    """A settings file written by the release itself, with TensorBoard on (the default up to 8.3.x)."""
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\n"
        "from ultralytics.utils import SETTINGS\nSETTINGS.update(tensorboard=True)\n"
        "print(SETTINGS['tensorboard'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "YOLO_CONFIG_DIR": str(folder), "YOLO_OFFLINE": "1"},
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("True"), done.stderr[-2000:]
    return folder


@pytest.mark.slow
def test_train_with_tensorboard_on_trains_once_patched(tree, cli, tmp_path, monkeypatch):
    """With TensorBoard on, the trainer traces the live model under inference mode when training starts; on
    8.4 the RT-DETR decoder cached its anchors from that pass and the first backward failed. `check --train`
    goes through that trainer: it passes on the patched install, and, with only the decoder's file put back
    as the release ships it, fails with the trainer's own error and the fix."""
    import tensorboard  # noqa: F401  (the test extra installs it: without it, Ultralytics skips the callback)

    root = tree(LATEST)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # Ultralytics turns its logging callbacks off under pytest
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tensorboard_settings(root, tmp_path / "config")))
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    yaml = own_yaml(root, "rtdetr-MobileNetV3.yaml", 1, tmp_path)  # a user's own yaml with one class
    result = cli("check", "--target", root, "--json", "--train", "--yaml", yaml)
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output)["verification"]["trainer"]
    assert trained["integrations"] == ["tensorboard"] and trained["nc"] == 1
    assert trained["iterations"] == 2 and trained["losses"] and all(v > 0 for v in trained["losses"])

    head = root / "ultralytics" / "nn" / "modules" / "head.py"
    with zipfile.ZipFile(wheel(LATEST)) as zf:
        head.write_bytes(zf.read("ultralytics/nn/modules/head.py"))
    before = snapshot(root)
    with pytest.raises(PatchError) as info:
        verify(locate(None, str(root)), yaml=str(yaml), train=True)
    assert info.value.code == Exit.VERIFY
    assert "failed in Ultralytics' own trainer" in info.value.message
    assert "Inference tensors cannot be saved for backward" in info.value.message
    assert "decoder-anchors" in info.value.hint and "yolo settings tensorboard=False" in info.value.hint
    assert snapshot(root) == before  # the run's dataset and weights lived in a temporary folder


def test_the_family_of_a_users_yaml_comes_from_its_rows_not_its_comments(tmp_path):
    """A YOLO yaml whose comment names RTDETRDecoder (a repository's note on its Detect row) is a YOLO model."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "patcher" / "target"))
    try:
        import smoke
    finally:
        sys.path.pop(0)
    rows = "backbone:\n  - [-1, 1, Conv, [64, 3, 2]]\nhead:\n  - [[-1], 1, {head}, [nc]]  # {note}\n"
    yolo = tmp_path / "yolo11-ASF.yaml"
    yolo.write_text(
        "nc: 2\n" + rows.format(head="Detect", note="RTDETRDecoder would take P3-P5 here"), encoding="utf-8"
    )
    rtdetr = tmp_path / "rtdetr-own.yaml"
    rtdetr.write_text("nc: 2\n" + rows.format(head="RTDETRDecoder", note="Detect"), encoding="utf-8")
    assert smoke.is_yolo(str(yolo)) is True
    assert smoke.is_yolo(str(rtdetr)) is False


@pytest.mark.parametrize("command", ["apply", "check"])
def test_a_yaml_name_nobody_ships_is_refused_before_anything_is_written(command, tree, cli, state_home):
    """A misspelt bare name (MobileNetV4 for MobileNetV3) is refused up front with the closest names, not after
    writing the patch by twenty lines of Ultralytics traceback from the smoke run."""
    root = tree(LATEST)
    if command == "check":
        assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    before = snapshot(root)
    result = cli(command, "--target", root, "--yaml", "rtdetr-MobileNetV4.yaml")
    assert result.exit_code == Exit.USAGE, result.output
    out = " ".join(result.output.split())
    assert "--yaml rtdetr-MobileNetV4.yaml: Ultralytics 8.4.190" in out and "ships no yaml of that name" in out
    assert "Did you mean rtdetr-MobileNetV3.yaml" in out and "Nothing was written." in out
    assert snapshot(root) == before
    if command == "apply":
        assert not list(state_home.rglob("manifest.json"))


@pytest.mark.slow
@pytest.mark.parametrize(("release", "yolo_yaml"), [(LATEST, "yolo11.yaml"), (OLD, "yolov8.yaml")])
def test_iou_loss_chosen_in_the_yaml_trains_through_ultralytics_trainer(
    release, yolo_yaml, tree, cli, tmp_path, monkeypatch
):
    """An RT-DETR and a YOLO yaml each choose an IoU loss (``iou_loss``), on the latest release and on 8.0.x;
    `check --train` reports that loss in the smoke run's criterion and in the criterion of Ultralytics' own
    trainer, called in every iteration; the model reloaded from the run's best.pt chooses the same loss, and
    Wise-IoU v3's running mean comes back from it as training moved it (below 1).
    A name that does not exist is refused when the model is built, naming the key and the accepted values."""
    if release.startswith("8.0."):  # 8.0.x loads its own checkpoints with a torch.load that torch 2.6+ refuses
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    root = tree(release)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    rtdetr = own_yaml(root, "rtdetr-MobileNetV3.yaml", 1, tmp_path)
    rtdetr.write_text(
        rtdetr.read_text(encoding="utf-8") + "\niou_loss: wiou-v3\niou_loss_args: {momentum: 0.05}\n", encoding="utf-8"
    )
    yolo = own_yaml(root, yolo_yaml, 2, tmp_path)
    yolo = yolo.rename(tmp_path / yolo_yaml.replace(".yaml", "n-mpdiou.yaml"))  # Ultralytics' scale letter: n
    yolo.write_text(yolo.read_text(encoding="utf-8") + "\niou_loss: mpdiou\n", encoding="utf-8")
    for yaml, name, args in ((rtdetr, "wiou-v3", {"momentum": 0.05}), (yolo, "mpdiou", {})):
        result = cli("check", "--target", root, "--json", "--train", "--yaml", yaml)
        assert result.exit_code == 0, result.output
        fig = json.loads(result.output)["verification"]
        assert fig["iou_loss"]["name"] == name and fig["iou_loss"]["args"] == args, fig["iou_loss"]
        assert fig["iou_loss"]["source"] == "model yaml" and fig["iou_loss"]["calls"] >= 1
        trained = fig["trainer"]
        assert trained["iou_loss"]["name"] == name and trained["iou_loss"]["calls"] >= trained["iterations"] == 2
        assert all(v > 0 for v in trained["losses"])
        best = trained["best_iou_loss"]
        assert best["name"] == name and best["args"] == args and best["source"] == "best.pt", best
        if name == "wiou-v3":
            assert best["running_mean_saved"] and 0 < best["running_mean"][0] < 1, best

    if release != LATEST:
        return
    yolo.write_text(yolo.read_text(encoding="utf-8").replace("iou_loss: mpdiou", "iou_loss: mpd-iou"), encoding="utf-8")
    refused = cli("check", "--target", root, "--json", "--yaml", yolo)
    assert refused.exit_code == Exit.VERIFY
    assert (
        "`iou_loss: mpd-iou`" in refused.output and "Accepted values" in refused.output and "mpdiou" in refused.output
    )
