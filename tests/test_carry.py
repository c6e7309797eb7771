"""adopt carries a fork's module tree as the fork lays it out (``adopt/carry.py``), on small trees (unit tier).

A miniature release (plain files, no wheel) stands for the fork's own release and for the target; the fork is that
release with the ``extra_modules`` family's shape written into it (``adopt_trees.extra_modules_files``): a folder whose
``__init__`` star-imports a file that cannot be imported, a sub-package, ``nn/backbone``, an absolute self-import, a
CRLF file, and ``DSConv`` appended to the release's ``nn/modules/conv.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from adopt_trees import EXTRA_MODULES, extra_modules_files
from rtdetr_patch.patcher.adopt.carry import carried_data, carried_name, carry_file
from rtdetr_patch.patcher.adopt.survey import FileRow, Layout, NameRow, Resolver, _carried_files, _files, _Tree, drop
from rtdetr_patch.patcher.modules.registry import registry_block
from rtdetr_patch.patcher.record.manifest import ModuleEntry, package_inits
from rtdetr_patch.patcher.write.changeset import _new_folders

RELEASE = {
    "__init__.py": '__version__ = "8.0.227"\n',
    "nn/__init__.py": "",
    "nn/tasks.py": "",
    "nn/modules/__init__.py": "from .conv import Conv, DWConv, autopad\nfrom .block import C2f\n",
    "nn/modules/conv.py": "import torch.nn as nn\n\n\ndef autopad(k, p=None, d=1):\n    return k // 2\n\n\n"
    "class Conv(nn.Module):\n    def __init__(self, c1, c2, k=1, s=1):\n        super().__init__()\n"
    "        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k))\n\n    def forward(self, x):\n"
    "        return self.conv(x)\n\n\nclass DWConv(Conv):\n    pass\n",
    "nn/modules/block.py": "import torch.nn as nn\n\nfrom .conv import Conv\n\n__all__ = ('C2f',)\n\n\n"
    "class C2f(nn.Module):\n    pass\n",
    "utils/__init__.py": "",
    "utils/torch_utils.py": "def make_divisible(x, divisor):\n    return x\n",
    "utils/ops.py": "",
}
CARRIED = {
    "extra_modules.block",
    "extra_modules.attention",
    "extra_modules.ops.modules.deform",
    "extra_modules.head",
    "backbone.repvit",
    "added_in_ultralytics.modules.conv",
}


def _write(package: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return package


def _trees(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the fork's release, the fork, the target): the target moved make_divisible to utils/ops.py, as 8.3 did."""
    release = _write(tmp_path / "release" / "ultralytics", RELEASE)
    fork = tmp_path / "fork" / "ultralytics"
    shutil.copytree(release, fork)
    extra_modules_files(fork)
    _write(fork, {"nn/modules/__init__.py": RELEASE["nn/modules/__init__.py"] + "from .conv import DSConv\n"})
    _write(  # a file that takes DSConv through Ultralytics' edited package __init__, beside a stock name
        fork,
        {"nn/extra_modules/head.py": "from ..modules import Conv, DSConv\n\n\nclass Head(DSConv):\n    pass\n"},
    )
    target = tmp_path / "target" / "ultralytics"
    shutil.copytree(release, target)
    _write(target, {"utils/torch_utils.py": "", "utils/ops.py": RELEASE["utils/torch_utils.py"]})
    return release, fork, target


def _carry(tmp_path: Path) -> tuple[dict[str, FileRow], list[NameRow], Path, Path]:
    release, fork, target = _trees(tmp_path)
    mine, theirs = _files(fork), _files(release)
    modified = sorted(r for r in mine if r in theirs and mine[r].read_bytes() != theirs[r].read_bytes())
    added = sorted(r for r in mine if r not in theirs)
    resolver = Resolver(fork)
    layout = Layout(resolver, release, theirs, modified, added, target=Resolver(target))
    tree = _Tree(resolver, mine, theirs, modified, None, layout)  # type: ignore[arg-type]
    names = [
        NameRow("C2f_DS", "carried", rule="same", file="nn/extra_modules/block.py"),
        NameRow("Head", "carried", rule="same", file="nn/extra_modules/head.py"),
        NameRow("DSConv", "carried", rule="conv", file="nn/modules/conv.py"),
    ]
    return _carried_files(names, tree, added), names, fork, target


def test_files_are_carried_where_the_fork_lays_them_out_and_import_on_the_target(tmp_path):
    files, names, fork, target = _carry(tmp_path)
    assert set(files) == CARRIED  # needs_absent.py, star-imported by the folder's __init__ only, stays behind
    assert all(f.status == "carried" for f in files.values())
    order = list(files)
    assert order.index("extra_modules.block") > max(
        order.index(s) for s in ("extra_modules.attention", "extra_modules.ops.modules.deform", "backbone.repvit")
    )
    assert files["extra_modules.block"].target == "nn/Addmodules/extra_modules/block.py"
    attention = files["extra_modules.attention"]  # `..backbone.repvit` still resolves where it is carried: untouched
    assert attention.data == EXTRA_MODULES["nn/extra_modules/attention.py"].encode() and b"\r\n" in attention.data
    block = files["extra_modules.block"].data.decode()
    assert (
        "from ultralytics.nn.modules.conv import Conv, autopad; "
        "from ultralytics.nn.Addmodules.added_in_ultralytics.modules.conv import DSConv\n" in block
    )
    assert "from ultralytics.nn.Addmodules.extra_modules.ops.modules.deform import DeformLite\n" in block
    assert "from ultralytics.nn.Addmodules.backbone.repvit import RepVGGDW\n" in block
    assert "from ultralytics.utils.ops import make_divisible\n" in block  # moved on the target
    repvit = files["backbone.repvit"]  # its data file, named from the checkout's root, read beside the carried file
    assert repvit.data_files == ["nn/backbone/repvit_cfg/k.yaml"]
    assert (
        "def kernel(cfg=__import__(\"os\").path.join(__import__(\"os\").path.dirname(__file__), 'repvit_cfg', 'k.yaml')):"
        in repvit.data.decode()
    )
    assert repvit.data.count(b"\n") == EXTRA_MODULES["nn/backbone/repvit.py"].count("\n")
    assert carried_data("nn/backbone/repvit_cfg/k.yaml") == "nn/Addmodules/backbone/repvit_cfg/k.yaml"
    assert block.count("\n") == EXTRA_MODULES["nn/extra_modules/block.py"].count("\n")  # line numbers kept
    head = files["extra_modules.head"].data.decode()
    assert head.startswith(
        "from ultralytics.nn.modules import Conv; from ultralytics.nn.Addmodules.added_in_ultralytics.modules.conv "
        "import DSConv\n"
    )
    extracted = files["added_in_ultralytics.modules.conv"].data.decode()
    assert "class DSConv(nn.Module):" in extracted and "class Conv(" not in extracted and "def autopad" not in extracted
    assert "from ultralytics.nn.modules.conv import Conv, DWConv\n" in extracted
    assert files["added_in_ultralytics.modules.conv"].names == ["DSConv"]
    # staged on the target: every carried file imports, the folders with empty __init__ files
    stage = target / "nn" / "Addmodules"
    _write(stage, {"__init__.py": ""})
    modules = [ModuleEntry(stem, ()) for stem in files]
    for rel in package_inits(modules):
        _write(target, {rel: ""})
    for row in files.values():
        (target / row.target).write_bytes(row.data)
    probe = (
        "import ultralytics.nn.Addmodules.extra_modules.block as b, ultralytics.nn.Addmodules.extra_modules.head as h;"
        "print(b.C2f_DS.__module__, b.DSConv.__module__, b.make_divisible.__module__, h.Head.__mro__[1].__module__)"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=target.parent, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "ultralytics.nn.Addmodules.extra_modules.block",
        "ultralytics.nn.Addmodules.added_in_ultralytics.modules.conv",
        "ultralytics.utils.ops",
        "ultralytics.nn.Addmodules.added_in_ultralytics.modules.conv",
    ]


def test_a_file_that_cannot_be_carried_costs_itself_and_its_importers_only(tmp_path):
    files, names, _, _ = _carry(tmp_path)
    drop(files["added_in_ultralytics.modules.conv"], files, names, "importing it fails")
    status = {stem: row.status for stem, row in files.items()}
    assert status == {
        "extra_modules.block": "not carried",
        "extra_modules.head": "not carried",
        "added_in_ultralytics.modules.conv": "not carried",
        "extra_modules.attention": "carried",
        "extra_modules.ops.modules.deform": "carried",
        "backbone.repvit": "carried",
    }
    block = files["extra_modules.block"].why
    assert "nn/modules/conv.py" in block and "added to Ultralytics'" in block  # the edited file it needed, named
    assert {n.name: n.status for n in names} == {
        "C2f_DS": "not carried",
        "Head": "not carried",
        "DSConv": "not carried",
    }


def test_a_flat_file_of_the_series_is_carried_byte_for_byte(tmp_path):
    """The first family's files (in the fork's own nn/Addmodules) keep their place and their bytes."""
    release = _write(tmp_path / "release" / "ultralytics", RELEASE)
    fork = tmp_path / "fork" / "ultralytics"
    shutil.copytree(release, fork)
    fixtures = Path(__file__).parent / "fixtures" / "adopt"
    (fork / "nn" / "Addmodules").mkdir()
    for name in ("__init__.py", "attention.py", "blocks.py"):
        shutil.copyfile(fixtures / name, fork / "nn" / "Addmodules" / name)
    mine, theirs = _files(fork), _files(release)
    added = sorted(r for r in mine if r not in theirs)
    layout = Layout(Resolver(fork), release, theirs, [], added, target=Resolver(release))
    data = (fixtures / "blocks.py").read_bytes()
    assert carried_name("nn/Addmodules/blocks.py") == "blocks"
    assert carry_file(layout, "nn/Addmodules/blocks.py", data, "blocks") == (
        data,
        {"nn/Addmodules/attention.py"},
        set(),
    )


def test_a_dotted_module_is_recorded_as_a_file_in_its_folders(tmp_path):
    entry = ModuleEntry("extra_modules.block", ("C2f_DS",), rules=(("C2f_DS", "same"),))
    assert entry.rel == "nn/Addmodules/extra_modules/block.py"
    assert ModuleEntry("EMA", ("EMA",)).rel == "nn/Addmodules/EMA.py"  # an old record's plain name
    assert package_inits([entry, ModuleEntry("backbone.repvit", ())]) == [
        "nn/Addmodules/backbone/__init__.py",
        "nn/Addmodules/extra_modules/__init__.py",
    ]
    block = registry_block([entry]).decode()
    assert "from .extra_modules.block import C2f_DS\n" in block
    assert "import_module(__name__ + '.extra_modules.block')" in block
    package = tmp_path / "ultralytics"
    (package / "nn" / "Addmodules").mkdir(parents=True)
    made = _new_folders(
        "nn/Addmodules/extra_modules/ops/modules/deform.py",
        package / "nn/Addmodules/extra_modules/ops/modules/deform.py",
    )
    assert made == [
        "nn/Addmodules/extra_modules/ops/modules",
        "nn/Addmodules/extra_modules/ops",
        "nn/Addmodules/extra_modules",
    ]


def test_the_edit_of_ultralytics_conv_says_what_is_carried_from_it(tmp_path):
    from rtdetr_patch.patcher.adopt.survey import _edits

    files, names, fork, _ = _carry(tmp_path)
    edits = {e["path"]: e["why"] for e in _edits(Resolver(fork), ["nn/modules/conv.py"], [], files, names)}
    assert "(DSConv) is carried as nn/Addmodules/added_in_ultralytics/modules/conv.py" in edits["nn/modules/conv.py"]


def test_an_import_that_fails_on_a_name_of_an_edited_ultralytics_file_names_that_file(tmp_path):
    from rtdetr_patch.patcher.adopt.survey import Survey

    found = Survey(tmp_path, "8.2.50", tmp_path, False, ["nn/modules/block.py"], [], [], {}, [], [])
    error = "ImportError: cannot import name 'C2f_v2' from 'ultralytics.nn.modules.block' (/x/block.py)"
    assert "C2f_v2 comes from nn/modules/block.py, a file of Ultralytics the tree edited" in found.edited_cause(error)
    assert found.edited_cause(error.replace("modules.block", "modules.conv")) == ""


def test_imports_inside_blocks_and_one_line_suites_are_pointed_at_the_carried_location(tmp_path):
    _, fork, _ = _trees(tmp_path)
    release = tmp_path / "release" / "ultralytics"
    source = (
        "import torch\n"
        "if torch: from ..modules.conv import Conv\n"
        "def build():\n"
        "    try:\n"
        "        from ultralytics.nn.backbone.repvit import RepVGGDW\n"
        "    except ImportError:\n"
        "        RepVGGDW = None\n"
        "    x = [i for i in range(3)]  # (expressions are not walked)\n"
        "    return RepVGGDW, x\n"
    )
    _write(fork, {"nn/extra_modules/lazy.py": source})
    mine, theirs = _files(fork), _files(release)
    added = sorted(r for r in mine if r not in theirs)
    layout = Layout(Resolver(fork), release, theirs, [], added, target=Resolver(release))
    data, deps, tried = carry_file(layout, "nn/extra_modules/lazy.py", source.encode(), "extra_modules.lazy")
    assert data.decode() == source.replace("from ..modules.conv", "from ultralytics.nn.modules.conv").replace(
        "ultralytics.nn.backbone.repvit", "ultralytics.nn.Addmodules.backbone.repvit"
    )
    assert (deps, tried) == (set(), {"nn/backbone/repvit.py"})  # inside a try: carried, but its failure costs nothing


def test_an_extraction_keeps_the_files_optional_imports_and_nothing_of_the_release(tmp_path):
    from adopt_trees import DSCONV
    from rtdetr_patch.patcher.adopt.carry import extract

    release, fork, _ = _trees(tmp_path)
    optional = "try:\n    import einops\nexcept ImportError:\n    einops = None\n"
    conv = RELEASE["nn/modules/conv.py"].replace("import torch.nn as nn\n", "import torch.nn as nn\n" + optional)
    _write(fork, {"nn/modules/conv.py": (conv + DSCONV + "\n\nDS_DEFAULT = 3\n").replace("\n", "\r\n")})
    theirs = _files(release)
    layout = Layout(Resolver(fork), release, theirs, ["nn/modules/conv.py"], [], target=Resolver(release))
    assert layout.additions("nn/modules/conv.py") == ("DSConv", "DS_DEFAULT")
    data, deps, _ = extract(layout, "nn/modules/conv.py")
    text = data.decode()
    head = "import torch.nn as nn\nfrom ultralytics.nn.modules.conv import Conv, DWConv\n" + optional
    assert text.startswith(head.replace("\n", "\r\n"))  # the release's names from the target's; CRLF kept
    assert "class DSConv(nn.Module):" in text and "DS_DEFAULT = 3" in text and "def autopad" not in text
    assert deps == set()
