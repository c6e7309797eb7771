"""``adopt --from`` a fork that defines a class the target release also defines (``RepNCSPELAN4`` with other
arguments), and whose ``parse_model`` substitutes yaml-level variables (``node_mode``, ``head_channel``).

A small tree written here (a real 8.0.x release, edited by hand as the extra_modules family's forks are): the
fork's class is carried under another name, the adopted yaml's rows name it, and the yaml builds on the latest
release with the fork's parameter count; the release's own class stays the one of its name.
"""

from __future__ import annotations

import sys
import zipfile

import pytest
from conftest import LATEST, OLD, snapshot, wheel
from helpers import apply_channel_gate

from rtdetr_patch import api

pytestmark = pytest.mark.slow

ELAN = b'''"""The fork's own RepNCSPELAN4: two arguments and a repeat count (8.4's takes c1, c2, c3, c4, n)."""
import torch.nn as nn


class RepNCSPELAN4(nn.Module):
    def __init__(self, c1, c2, c5=1):
        super().__init__()
        self.cv = nn.Sequential(*(nn.Conv2d(c1 if i == 0 else c2, c2, 3, padding=1) for i in range(c5)))

    def forward(self, x):
        return self.cv(x)


class GhostConv(nn.Module):
    """The fork's own GhostConv, which its tasks.py imports after Ultralytics' (a plain strided convolution)."""

    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2)

    def forward(self, x):
        return self.conv(x)
'''
YAML = (
    b"# the fork's yaml: a yaml-level module and width, and the fork's RepNCSPELAN4\r\n"
    b"nc: 80\r\n"
    b"node_mode: RepNCSPELAN4\r\n"
    b"head_channel: 64\r\n"
    b"backbone:\r\n"
    b"  - [-1, 1, Conv, [32, 3, 2]]  # 0-P1/2\r\n"
    b"  - [-1, 1, Conv, [head_channel, 3, 2]]  # 1-P2/4\r\n"
    b"  - [-1, 1, node_mode, [64]]  # 2\r\n"
    b"  - [-1, 1, GhostConv, [128, 3, 2]]  # 3-P3/8\r\n"
    b"  - [-1, 1, RepNCSPELAN4, [128, 2]]  # 4\r\n"
    b"  - [-1, 1, Conv, [256, 3, 2]]  # 5-P4/16\r\n"
    b"  - [-1, 1, Conv, [256, 3, 2]]  # 6-P5/32\r\n"
    b"head:\r\n"
    b"  - [[4, 5, 6], 1, RTDETRDecoder, [nc, 256, 300, 4, 8, 3]]  # 7\r\n"
)


def wheel_file(release: str, name: str) -> bytes:
    """A file of the release as published."""
    with zipfile.ZipFile(wheel(release)) as archive:
        return archive.read(name)


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def fork_tree(root):
    """``root/ultralytics`` edited as the fork does: its module file, the name in the conv set, the variables."""
    package = root / "ultralytics"
    tasks = package / "nn" / "tasks.py"
    text = tasks.read_text(encoding="utf-8")
    text = _edit(text, "import torch.nn as nn\n", "import torch.nn as nn\nfrom .Addmodules import *\n")
    text = _edit(
        text,
        "        m = getattr(torch.nn, m[3:]) if 'nn.' in m else globals()[m]  # get module\n",
        "        if m == 'node_mode':\n            m = d[m]\n"
        "        m = getattr(torch.nn, m[3:]) if 'nn.' in m else globals()[m]  # get module\n",
    )
    text = _edit(text, "DWConvTranspose2d, C3x, RepC3):", "DWConvTranspose2d, C3x, RepC3, RepNCSPELAN4):")
    text = _edit(  # its own GhostConv, bound after Ultralytics' (the extra_modules family does so with CBLinear)
        text,
        "from ultralytics.utils import DEFAULT_CFG_DICT",
        "from ultralytics.nn.Addmodules.elan import GhostConv\nfrom ultralytics.utils import DEFAULT_CFG_DICT",
    )
    text = _edit(
        text,
        "            c1, c2 = ch[f], args[0]\n",
        "            if args[0] == 'head_channel':\n                args[0] = d[args[0]]\n            c1, c2 = ch[f], args[0]\n",
    )
    tasks.write_text(text, encoding="utf-8")
    folder = package / "nn" / "Addmodules"
    folder.mkdir()
    (folder / "__init__.py").write_bytes(b"from .elan import *\n")
    (folder / "elan.py").write_bytes(ELAN)
    (package / "cfg" / "models" / "rt-detr" / "rtdetr-fork-elan.yaml").write_bytes(YAML)
    return package


def test_a_class_the_release_also_defines_is_carried_under_its_own_name_with_the_yamls_rows(tree):
    fork = fork_tree(tree(OLD))
    target = tree(LATEST)
    before = snapshot(fork)
    result = api.adopt(
        target=str(target), source=str(fork.parent), wheel=str(wheel(OLD)), no_verify=True, python=sys.executable
    )
    found = {n["name"]: n for n in result.names}
    elan = found["RepNCSPELAN4"]
    assert elan["status"] == "carried" and elan["rule"] == "conv", elan
    assert "carried as RepNCSPELAN4_fork" in elan["why"] and "(c1, c2, c5=1) in the tree" in elan["why"]
    assert "node_mode" not in found  # a yaml-level variable, not a module
    ghost = found["GhostConv"]  # a stock name bound to the fork's own class: the fork's is carried, not the release's
    assert ghost["status"] == "carried" and "carried as GhostConv_fork" in ghost["why"], ghost
    (built,) = [y for y in result.yamls if y["path"].endswith("rtdetr-fork-elan.yaml")]
    assert built["source"]["params"] == built["target"]["params"] > 0, built  # the fork's class, the fork's count
    written = (target / "ultralytics" / "cfg" / "models" / "rt-detr" / "rtdetr-fork-elan.yaml").read_bytes()
    assert written == (
        YAML.replace(b"node_mode, [64]", b"RepNCSPELAN4_fork, [64]")
        .replace(b"GhostConv, [", b"GhostConv_fork, [")
        .replace(b"RepNCSPELAN4, [128, 2]", b"RepNCSPELAN4_fork, [128, 2]")
        .replace(b"[head_channel, 3, 2]", b"[64, 3, 2]")
    )
    init = (target / "ultralytics" / "nn" / "Addmodules" / "__init__.py").read_text(encoding="utf-8")
    (imported,) = [line for line in init.splitlines() if line.startswith("from .elan import ")]
    assert set(imported[len("from .elan import ") :].split(", ")) == {"GhostConv_fork", "RepNCSPELAN4_fork"}
    assert snapshot(fork) == before  # the fork is only read


def test_in_place_the_yamls_rows_are_rewritten_where_they_are_and_revert_gives_them_back(tree, cli):
    """Adopted in place, the fork's yaml-level variables (``node_mode``, ``head_channel``), which the pristine
    ``parse_model`` does not substitute, are substituted in the yaml itself, and its rows of the fork's own GhostConv
    name it as carried (``GhostConv_fork``): it builds the fork's model, and revert puts the fork's bytes back with
    everything else."""
    root = tree(OLD)
    fork = fork_tree(root)
    tasks = fork / "nn" / "tasks.py"  # a helper the fork added to tasks.py, which its own nn/__init__.py exports
    tasks.write_bytes(tasks.read_bytes() + b"\n\ndef fork_helper():\n    return 1\n")
    init = fork / "nn" / "__init__.py"
    init.write_bytes(init.read_bytes() + b"from .tasks import fork_helper  # the fork's\n")
    before = snapshot(root)
    result = api.adopt(target=str(root), wheel=str(wheel(OLD)), no_verify=True, python=sys.executable)
    assert result.in_place
    edits = {e["path"]: e["why"] for e in result.edits}  # tasks.py is the release's now: the fork's nn/__init__.py,
    assert "replaced by Ultralytics 8.0.227's own file (yours does not import" in edits["nn/__init__.py"]  # too
    assert (fork / "nn" / "__init__.py").read_bytes() == (wheel_file(OLD, "ultralytics/nn/__init__.py"))
    (built,) = [y for y in result.yamls if y["path"].endswith("rtdetr-fork-elan.yaml")]
    assert built["source"]["params"] == built["target"]["params"] > 0, built
    assert "rewritten in place" in built["why"]
    written = (fork / "cfg" / "models" / "rt-detr" / "rtdetr-fork-elan.yaml").read_bytes()
    assert written == (  # (8.0.227 has no RepNCSPELAN4 of its own: that name stays; it has a GhostConv)
        YAML.replace(b"node_mode, [64]", b"RepNCSPELAN4, [64]")
        .replace(b"[head_channel, 3, 2]", b"[64, 3, 2]")
        .replace(b"GhostConv, [", b"GhostConv_fork, [")
    )
    more = apply_channel_gate(cli, root)  # an apply after it keeps what adopt put back and rewrote
    assert more.exit_code == 0, more.output
    assert (fork / "nn" / "__init__.py").read_bytes() == wheel_file(OLD, "ultralytics/nn/__init__.py")
    assert (fork / "cfg" / "models" / "rt-detr" / "rtdetr-fork-elan.yaml").read_bytes() == written
    reverted = cli("revert", "--target", root)
    assert reverted.exit_code == 0, reverted.output
    assert snapshot(root) == before
