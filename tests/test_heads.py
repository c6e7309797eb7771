"""Files nobody tuned for: re-parameterised blocks that fuse through ``fuse_convs()``/``fuse()``, and
detection heads of the Ultralytics 8.0-8.3 contract (a list of maps in training) on 8.4.

The fixtures (``fixtures/modules/reparam.py``, ``legacy_heads.py``, ``yolo-legacy-head.yaml``) are
written here in the series' conventions: a RepConvN/GELAN pair, a RepVGGDW-style ``fuse()``, a
subclass of Ultralytics' own RepConv (fused by the release, once), a plain ``nn.Module`` head and a
``Detect`` subclass with branches of its own. Each is applied with ``--module`` and verified by the
smoke run (build, eval forward, a training step, ``model.fuse()`` agreeing to 1e-4), then driven
further in a fresh process: the task guessed from the yaml, the validator's loss on eval output,
``predict``, ``half()`` moving the head's strides, and a stock model's loss bit for bit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LATEST, OLD, snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "modules"
YAML = FIXTURES / "yolo-legacy-head.yaml"
MODULES = (
    "--module",
    f"{FIXTURES / 'reparam.py'}:RepELAN,RepDW,CountedRep",
    "--module",
    f"{FIXTURES / 'legacy_heads.py'}:LegacyHead,LegacyDetect",
)


def flat(text: str) -> str:
    return " ".join(text.split())


def detect_yaml(tmp_path: Path) -> Path:
    """The same model with the ``Detect`` subclass as its head."""
    text = YAML.read_text(encoding="utf-8")
    assert "LegacyHead, [nc]]" in text
    out = tmp_path / "yolo-legacy-detect.yaml"
    out.write_text(text.replace("LegacyHead, [nc]]", "LegacyDetect, [nc]]"), encoding="utf-8")
    return out


def run_script(code: str, timeout: int = 600) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "YOLO_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """\
import json, sys
sys.path.insert(0, {root!r})
import numpy as np, torch, yaml
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.nn.Addmodules import rtdetr_patch_preds
from ultralytics.nn.tasks import guess_model_task

out = {{}}
for path in {yamls!r}:
    cfg = yaml.safe_load(open(path, encoding="utf-8"))
    model = YOLO(path)  # no task=: guessed from the yaml's last row
    net, head = model.model, model.model.model[-1]
    net.args = get_cfg()
    torch.manual_seed(0)
    img = torch.rand(2, 3, 256, 256)
    batch = {{"img": img, "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[1.0], [2.0]]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.3, 0.3, 0.2, 0.2]])}}
    net.eval()
    with torch.no_grad():
        preds = net(img)  # (y, maps): what the validator hands to model.loss
        items = net.loss(batch, preds)[1]
    stock = {{"boxes": torch.zeros(1)}}
    results = model.predict(np.zeros((256, 256, 3), dtype=np.uint8), imgsz=256, conf=1e-4, verbose=False)
    net.half()
    out[type(head).__name__] = {{
        "guess_yaml": guess_model_task(cfg), "task": model.task,
        "guess_modules": guess_model_task(torch.nn.Sequential(head)),
        "stride": head.stride.float().tolist(), "stride_dtype": str(head.stride.dtype),
        "eval_maps": isinstance(preds, tuple) and isinstance(preds[1], list),
        "val_loss": [float(v) for v in (items.values() if isinstance(items, dict) else items)],
        "dict_passes_through": rtdetr_patch_preds(head, stock) is stock and rtdetr_patch_preds(head, (img, stock))[1] is stock,
        "predicted": list(results[0].boxes.xyxy.shape),
    }}
print(json.dumps(out))
"""


@pytest.mark.parametrize("release", [LATEST, pytest.param(OLD, marks=pytest.mark.slow)])
def test_heads_of_the_8_0_contract_train_fuse_and_predict(release, tree, cli, tmp_path):
    root = tree(release)
    pristine = snapshot(root)
    applied = cli("apply", "--target", root, *MODULES, "--yaml", YAML, "--json")
    assert applied.exit_code == 0, applied.output
    report = json.loads(applied.stdout)
    fig = report["verification"]
    assert {"LegacyHead", "RepELAN", "RepDW", "CountedRep"} <= set(fig["registered_layers"])
    assert fig["output_shape"][:2] == [1, 84] and fig["loss"] > 0 and fig["stepped_tensors"] > 0
    # four RepConvN (fuse_convs) and one RepDW (fuse); CountedRep is Ultralytics' RepConv: the release fuses it
    assert fig["fuse"]["deploy_modules"] == 5 and fig["fuse"]["max_abs_diff"] < 1e-4

    other = detect_yaml(tmp_path)
    checked = cli("check", "--target", root, "--yaml", other, "--json")
    assert checked.exit_code == 0, checked.stdout
    fig = json.loads(checked.stdout)["verification"]
    assert "LegacyDetect" in fig["registered_layers"] and fig["fuse"]["max_abs_diff"] < 1e-4

    got = run_script(PROBE.format(root=str(root), yamls=[str(YAML), str(other)]))
    for name in ("LegacyHead", "LegacyDetect"):
        head = got[name]
        assert head["guess_yaml"] == head["task"] == head["guess_modules"] == "detect", name
        assert head["stride"] == [8.0, 16.0, 32.0] and head["stride_dtype"] == "torch.float16", name
        assert head["eval_maps"] and head["dict_passes_through"], name
        assert len(head["val_loss"]) == 3 and all(0 < v < 1e4 for v in head["val_loss"]), name
        assert head["predicted"][0] > 0 and head["predicted"][1] == 4, name

    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == pristine


FUSE = """\
import json, sys
sys.path.insert(0, {root!r})
import torch
from ultralytics import YOLO
from ultralytics.nn.Addmodules import rtdetr_patch_deploy, rtdetr_patch_deployable
from ultralytics.nn.Addmodules.reparam import CountedRep, RepConvN, RepDW

net = YOLO({yaml!r}, task="detect").model.eval()
x = torch.rand(1, 3, 128, 128)
with torch.no_grad():
    before = net(x)[0]
    names = sorted(type(m).__name__ + "." + name for m, name in rtdetr_patch_deployable(net))
    net.fuse(verbose=False)
    after = net(x)[0]
    net.fuse(verbose=False)
reps = [m for m in net.modules() if isinstance(m, RepConvN)]
dws = [m for m in net.modules() if isinstance(m, RepDW)]
counted = [m for m in net.modules() if isinstance(m, CountedRep)]
print(json.dumps({{
    "deployable": names, "again": rtdetr_patch_deploy(net),
    "rep_fused": all(hasattr(m, "conv") and not hasattr(m, "conv1") and m.forward == m.forward_fuse for m in reps),
    "dw_fused": all(hasattr(m, "merged") and not hasattr(m, "conv") for m in dws),
    "counted_calls": [getattr(m, "fuse_calls", 0) for m in counted],
    "diff": float((before - after).abs().max()), "scale": float(before.abs().max()),
}}))
"""


def test_fuse_convs_and_fuse_of_added_files_only_once(tree, cli, tmp_path):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify", *MODULES).exit_code == 0
    got = run_script(FUSE.format(root=str(root), yaml=str(detect_yaml(tmp_path))))
    # LegacyDetect inherits Detect.fuse (Ultralytics' own, called by the release) and CountedRep RepConv's
    # fuse_convs: neither is called here
    assert got["deployable"] == ["RepConvN.fuse_convs"] * 4 + ["RepDW.fuse"]
    assert got["rep_fused"] and got["dw_fused"]
    assert got["counted_calls"] == [1]  # fused by the release's own loop, not a second time by ours
    assert got["again"] == 0  # each module switches once, however often fuse() runs
    assert got["diff"] <= 1e-4 * max(got["scale"], 1.0)


STOCK = """\
import hashlib, json, sys
sys.path.insert(0, {root!r})
import torch
from ultralytics import YOLO
from ultralytics.cfg import get_cfg

torch.manual_seed(0)
net = YOLO("yolov8n.yaml").model
net.args = get_cfg()
torch.manual_seed(1)
batch = {{"img": torch.rand(2, 3, 128, 128), "batch_idx": torch.tensor([0.0, 1.0]),
         "cls": torch.tensor([[1.0], [2.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.3, 0.3, 0.2, 0.2]])}}
loss, items = net.loss(batch)
loss.sum().backward()
grads = b"".join(p.grad.numpy().tobytes() for p in net.parameters() if p.grad is not None)
print(json.dumps({{"loss": loss.detach().numpy().tobytes().hex(), "grads": hashlib.sha256(grads).hexdigest(),
                  "stride": net.stride.tolist()}}))
"""


def test_stock_training_loss_is_bit_identical(tree, cli, tmp_path):
    pristine = tree(LATEST)
    root = tmp_path / "patched"
    shutil.copytree(pristine, root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    assert b"rtdetr_patch_preds(self.model[-1], preds)" in (root / "ultralytics/nn/tasks.py").read_bytes()
    want = run_script(STOCK.format(root=str(pristine)))
    got = run_script(STOCK.format(root=str(root)))
    assert got == want and want["stride"] == [8.0, 16.0, 32.0]


def test_a_head_without_nc_or_reg_max_is_named_with_what_to_do(tree, cli, tmp_path):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify", *MODULES).exit_code == 0
    code = (
        f"import sys\nsys.path.insert(0, {str(root)!r})\nimport torch\n"
        "from ultralytics.nn.Addmodules import rtdetr_patch_preds\n"
        "from ultralytics.nn.Addmodules.legacy_heads import LegacyHead\n"
        "head = LegacyHead(3, [8])\nhead.reg_max = None\n"
        "try:\n    rtdetr_patch_preds(head, [torch.zeros(1, 67, 4, 4)])\n"
        "except TypeError as exc:\n    print(exc)\n"
        "head.reg_max = 16\n"
        "try:\n    rtdetr_patch_preds(head, [torch.zeros(1, 60, 4, 4)])\n"
        "except TypeError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()[-2:]
    assert "LegacyHead (" in first and "legacy_heads.py" in first and f"Ultralytics {LATEST}" in first
    assert "set `self.nc` and `self.reg_max` in its __init__" in first
    assert "maps of [60] channels" in second and "4 * reg_max + nc = 67" in second
