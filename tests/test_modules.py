"""Users' own backbones: apply --module FILE.py[:ClassName], checked before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LATEST, snapshot
from rtdetr_patch.patcher.errors import Exit

BACKBONE = '''
import torch
from torch import nn


class {name}(nn.Module):
    """Four maps at strides 4, 8, 16, 32, like the blog series' backbones."""

    def __init__(self, width=8):
        super().__init__()
        chans = [width, width * 2, width * 4, width * 8]
        layers, c_in = [], 3
        for i, c in enumerate(chans):
            layers.append(nn.Sequential(nn.Conv2d(c_in, c, 3, 4 if i == 0 else 2, 1), nn.BatchNorm2d(c), nn.ReLU()))
            c_in = c
        self.stages = nn.ModuleList(layers)
        self.width_list = chans{extra}

    def forward(self, x):
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs{cut}
'''


def backbone(
    folder: Path, file: str = "tiny_backbone.py", name: str = "TinyNet", extra: str = "", cut: str = "", head: str = ""
) -> Path:
    path = folder / file
    path.write_text(head + BACKBONE.format(name=name, extra=extra, cut=cut), encoding="utf-8")
    return path


def test_module_is_copied_registered_built_and_reverted(tree, cli, tmp_path):
    root = tree(LATEST)
    before = snapshot(root)
    source = backbone(tmp_path)
    applied = cli("apply", "--target", root, "--no-verify", "--module", source)
    assert applied.exit_code == 0, applied.output
    assert (root / "ultralytics/nn/Addmodules/tiny_backbone.py").read_bytes() == source.read_bytes()
    report = json.loads(cli("check", "--target", root, "--static", "--json").output)
    assert report["ok"] and report["modules"] == [
        {"file": "nn/Addmodules/tiny_backbone.py", "classes": ["TinyNet"], "rules": {"TinyNet": "backbone"}}
    ]

    yaml = tmp_path / "rtdetr-tiny.yaml"
    seed_yaml = (root / "ultralytics/cfg/models/rt-detr/rtdetr-MobileNetV3.yaml").read_text(encoding="utf-8")
    yaml.write_text(seed_yaml.replace("MobileNetV3, []]", "TinyNet, []]"), encoding="utf-8")
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r})\nimport torch\n"
        "from ultralytics import RTDETR\n"
        f"net = RTDETR({str(yaml)!r}).model.eval()\n"
        "bb = net.model[0]\n"
        "print('WIDTHS', type(bb).__name__, bb.width_list, net(torch.zeros(1, 3, 256, 256))[0].shape[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "WIDTHS TinyNet [8, 16, 32, 64] 300" in done.stdout

    assert cli("apply", "--target", root, "--no-verify").exit_code == 0  # re-apply keeps the module
    assert (root / "ultralytics/nn/Addmodules/tiny_backbone.py").is_file()
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == before


def test_explicit_class_name(tree, cli, tmp_path):
    root = tree(LATEST)
    source = backbone(tmp_path, name="Alpha")
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{source}:Alpha")
    assert result.exit_code == 0, result.output
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert "from .tiny_backbone import Alpha" in init and "RTDETR_PATCH_BACKBONES | {Alpha}" in init


@pytest.mark.parametrize(
    "case, words",
    [
        ("not-identifier", "not a Python identifier"),
        ("collides", "would shadow"),
        ("does-not-import", "-m pip install package_that_is_not_there"),
        ("fails-at-import", "running the file at import fails: RuntimeError: boom"),
        ("wrong-widths", "width_list says"),
        ("two-maps", "returns 2 feature maps; three to five are needed"),
        ("no-width-list", "sets `width_list` or `channel`"),
        ("not-a-module", "returns int, not a torch.nn.Module"),
        ("reserved-file", "cannot be a module"),
        ("our-name", "is the name of one of rtdetr-patch's own modules"),
        ("missing-class", "defines no class or function"),
        ("missing-file", "nowhere.py does not exist"),
        ("not-python", "is not a Python file"),
    ],
)
def test_bad_modules_change_nothing(case, words, tree, cli, tmp_path, state_home):
    root = tree(LATEST)
    if case == "not-identifier":
        spec = f"{backbone(tmp_path)}:1Bad"
    elif case == "collides":
        spec = str(backbone(tmp_path, name="Conv"))
    elif case == "does-not-import":
        spec = str(backbone(tmp_path, head="import package_that_is_not_there\n"))
    elif case == "fails-at-import":
        spec = str(backbone(tmp_path, head="raise RuntimeError('boom')\n"))
    elif case == "wrong-widths":
        spec = str(backbone(tmp_path, cut="[:3]"))
    elif case == "two-maps":
        spec = str(backbone(tmp_path, extra="[:2]", cut="[:2]"))
    elif case == "not-a-module":
        spec = f"{backbone(tmp_path, head='def make_it():' + chr(10) + '    return 3' + chr(10))}:make_it"
    elif case == "our-name":
        spec = str(backbone(tmp_path, name="MobileNetV3"))
    elif case == "no-width-list":
        path = tmp_path / "plain.py"
        path.write_text("class Plain:\n    pass\n", encoding="utf-8")
        spec = str(path)
    elif case == "reserved-file":
        spec = str(backbone(tmp_path, file="MobileNetV3.py"))
    elif case == "missing-class":
        spec = f"{backbone(tmp_path)}:Other"
    elif case == "not-python":
        (tmp_path / "notes.txt").write_text("not code\n", encoding="utf-8")
        spec = str(tmp_path / "notes.txt")
    else:
        spec = str(tmp_path / "nowhere.py")
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify", "--module", spec)
    # a path that names no Python file is a usage error, as click's own (issue 27); the file's content is MODULE's
    assert result.exit_code == (Exit.USAGE if case in ("missing-file", "not-python") else Exit.MODULE), result.output
    assert words in result.output
    assert snapshot(root) == before
    assert not list(state_home.rglob("manifest.json"))
