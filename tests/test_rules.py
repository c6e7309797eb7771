"""Modules of every kind the series adds, registered with ``--module FILE.py:NAME[=RULE]``.

The fixtures in ``fixtures/modules`` reproduce the conventions met in real files: attention with one
width first (EMA-like), no width at all (SimAM-like), a factory, convolutions and a C2f-style block,
a re-parameterised block with ``switch_to_deploy``, fusions taking a list (weighted sum, concat,
input list, input list plus output width, first input), a detection head, a ResNet block of one's
own for the shipped ``Blocks``, and a file that exports its own ``Conv``. The yamls combine them in
an RT-DETR on the series' ResNet18 base and in a small YOLO; the smoke run builds, runs, trains a
step and fuses each.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LATEST, OLD, snapshot
from rtdetr_patch.patcher.errors import Exit
from rtdetr_patch.patcher.target import target_common as common

FIXTURES = Path(__file__).parent / "fixtures" / "modules"
REPO = Path(__file__).resolve().parents[1]
ALL_MODULES = (
    f"{FIXTURES / 'attention.py'}:ChannelGate",
    f"{FIXTURES / 'attention.py'}:ParamFree,make_gate",
    f"{FIXTURES / 'convs.py'}:SpaceConv,CSPBlock,RepBlock",
    f"{FIXTURES / 'fusion.py'}:WeightedSum=count,ZoomCat=concat,Inject=inputs,ScaleSeq=inputs-out,Multiply=first",
    f"{FIXTURES / 'blocks.py'}:BasicBlockGate=block",
    f"{FIXTURES / 'heads.py'}:LiteDetect",
)
INFERRED = {
    "ChannelGate": "same",
    "ParamFree": "plain",
    "make_gate": "same",
    "SpaceConv": "conv",
    "CSPBlock": "conv-n",
    "RepBlock": "conv",
    "LiteDetect": "head",
}


def flat(text: str) -> str:
    return " ".join(text.split())


def modules_args(specs=ALL_MODULES) -> list[str]:
    return [part for spec in specs for part in ("--module", spec)]


# -- the rule a signature implies -------------------------------------------------------------
@pytest.mark.parametrize(
    "params, rule",
    [
        (["channels", "factor"], "same"),  # EMA (my_rtdetr), CA's (in_planes, ratio, flag) likewise
        (["in_planes", "ratio", "flag"], "same"),
        (["in_channels", "scale", "style", "groups", "dyscope"], "same"),  # Dy_Sample
        (["c", "k_enc", "k_up", "c_mid", "scale"], "same"),  # CARAFE
        (["c1", "cm", "num_heads", "dropout", "act", "normalize_before"], "same"),  # AIFI_RepBN
        (["c1", "c2", "k", "s", "p", "g", "d", "act"], "conv"),  # GSConv, SPDConv
        (["in_channels", "out_channels", "kernel_size", "stride"], "conv"),  # DiverseBranchBlock, DCNv2
        (["inp", "oup", "reduction"], "conv"),  # CoordAtt (BS-YOLO)
        (["c1", "c2", "n", "shortcut", "g", "e"], "conv-n"),  # VoVGSCSP, C2f_DCNv2
        (["e_lambda"], "plain"),  # SimAM
        (["no_spatial"], "plain"),  # TripletAttention: no width (the repositories register it wrongly)
        ([], "plain"),  # multiply, Zoom_cat: several inputs, so their users give the rule
        (["nc", "ch"], "head"),  # Detect_DBB
        (["nc", "ch", "multiplier", "rfb"], "head"),  # Detect_ASFF
        (["inc", "channel"], None),  # ScalSeq: two input-width names: ambiguous
        (["c2", "k"], None),  # an output width first
        (["k", "c1"], None),  # a width that is not first
        (["d_model", "nhead", "dim_feedforward", "dropout"], "same"),  # a transformer encoder layer
        (["embed_dim", "num_heads"], "same"),
        (["hidden_dim", "num_heads", "mlp_ratio"], "same"),
        (["dim", "hidden_dim"], "same"),  # an FFN: the hidden width second is not an output width
        (["dim_in", "dim_out"], "conv"),
        (["dim_in", "dim_out", "n"], "conv-n"),
        (["in_channels", "out_channels"], "conv"),
    ],
)
def test_rule_from_the_signatures_of_real_files(params, rule):
    assert common.rule_from_params(params)[0] == rule


@pytest.mark.parametrize(
    "rows, rule, words",
    [
        (
            None,
            "conv",
            "read as conv (a row gives the width: [-1, 1, NAME, [256]]); for rows without arguments give =same",
        ),
        ([[]], "same", "and the yaml's rows give no arguments"),
        ([[], []], "same", "and the yaml's rows give no arguments"),
        ([[256]], "conv", "and the yaml's rows give it"),
        ([[256], []], None, "some of the yaml's rows give it and some do not"),
    ],
)
def test_an_optional_output_width_follows_the_yaml_rows(rows, rule, words):
    found, why = common.rule_from_params(["in_channels", "out_channels"], ("out_channels",), rows)
    assert found == rule and words in why and "(in_channels, out_channels=None, ...)" in why
    assert common.rule_from_params(["in_channels", "out_channels"], (), [[]])[0] == "conv"  # not optional: rows moot


# -- names that cross the process boundary ----------------------------------------------------
def template_constants() -> dict:
    tree = ast.parse((REPO / "templates" / "Addmodules" / "__init__.py").read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                found[node.targets[0].id] = ast.unparse(node.value)
    return found


def test_the_names_the_engine_the_programs_and_the_added_package_share():
    """One fast test for every name and number spelled on both sides of the process boundary."""
    from rtdetr_patch.patcher.modules import backbones, names, preflight
    from rtdetr_patch.patcher.modules.user_module import UserModule
    from rtdetr_patch.patcher.target import runner
    from rtdetr_patch.patches import parse_model, parse_model_modules

    added = template_constants()
    assert added["CONTRACT"] == common.CONTRACT == backbones.CONTRACT
    assert added["PADDED_OUTPUTS"] == common.PADDED == backbones.PADDED
    assert added["PROBE_SIZE"] == common.PROBE == backbones.PROBE
    assert tuple(added["SINGLE"]) == common.SINGLE + ("resnet-stage",)
    assert tuple(added["MULTI"]) == common.MULTI
    assert set(common.RULES) - {"block", "backbone"} == set(added["SINGLE"] + added["MULTI"]) - {"resnet-stage"}
    assert parse_model.REGISTRY == common.BACKBONES and parse_model_modules.REGISTRY == common.MODULES
    assert common.BACKBONES in added and common.MODULES in added
    exported = set(added["__all__"])
    assert {common.BACKBONES, common.MODULES, "rtdetr_patch_module_args", "rtdetr_patch_deploy"} <= exported
    assert exported - {"MobileNetV3"} <= names.RESERVED | {"rtdetr_patch_outputs"} | names.OURS
    for helper in ("rtdetr_patch_module_args", "rtdetr_patch_deploy", "rtdetr_patch_channels"):
        assert helper in names.RESERVED
    assert set(names.SHIPPED) == {"MobileNetV3", "ResNet", "iou_losses"} and set(names.SHIPPED) <= names.RESERVED
    assert runner.PREFIX == common.PREFIX and runner.script("smoke").is_file() and runner.script("preflight").is_file()
    for program in (runner.script("smoke"), runner.script("preflight")):
        text = program.read_text(encoding="utf-8")
        assert re.search(r"^from target_common import|^import target_common", text, re.M), program
        assert "rtdetr_patch" not in re.sub(r"rtdetr_patch_\w+|rtdetr-patch", "", text.split('"""', 2)[2]), program
    assert added["RTDETR_PATCH_MODULES"] == "{ConvNormLayer: 'conv', Blocks: 'resnet-stage'}"
    # the preflight imports a file as the module it is once copied (nn/Addmodules/<stem>.py, the template's folder),
    # and the checkpoint globals it reports under that name are the ones restricted loading must accept
    rel = UserModule(name="stem", data=b"", classes=()).rel
    assert "ultralytics." + rel.removesuffix(".py").replace("/", ".") == common.ADDED_PACKAGE + ".stem"
    assert common.ADDED_PACKAGE.rsplit(".", 1)[1] == (REPO / "templates" / "Addmodules").name
    entry = {
        "globals": [
            "ultralytics.nn.Addmodules.stem.act",
            "ultralytics.nn.modules.conv.Conv",
            "builtins.getattr",
            "ultralytics.nn.Addmodules.other.act",
            "timm.layers.DropPath",
        ]
    }
    assert preflight.safe_names(UserModule(name="stem", data=b"", classes=()), entry) == {
        "ultralytics.nn.Addmodules.stem.act",
        "timm.layers.DropPath",
    }


# -- the whole way: apply, build, train a step, fuse, revert ------------------------------------
@pytest.mark.parametrize("release", [LATEST, pytest.param(OLD, marks=pytest.mark.slow)])
def test_every_rule_builds_trains_and_reverts(release, tree, cli):
    root = tree(release)
    pristine = snapshot(root)
    applied = cli("apply", "--target", root, *modules_args(), "--yaml", FIXTURES / "rtdetr-r18-modules.yaml")
    out = flat(applied.output)
    assert applied.exit_code == 0, applied.output
    for name, rule in INFERRED.items():
        assert f"{name} (" in out and f"rule {rule} (from its signature)" in out.split(f"{name} (", 1)[1][:80], name
    for name, rule in (
        ("WeightedSum", "count"),
        ("ZoomCat", "concat"),
        ("Inject", "inputs"),
        ("Multiply", "first"),
        ("ScaleSeq", "inputs-out"),
        ("BasicBlockGate", "block"),
    ):
        assert f"{name} (class): rule {rule}:" in out, name
    assert "Patched and verified." in out and "model.fuse() for deploy" in out
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert "from .attention import ChannelGate, ParamFree, make_gate" in init  # not the file's own Conv
    assert (
        "'ZoomCat': " not in init and "ZoomCat: 'concat'" in init and "_resnet.BLOCKS.update({'BasicBlockGate'" in init
    )

    checked = cli("check", "--target", root, "--yaml", FIXTURES / "yolo-modules.yaml", "--json")
    report = json.loads(checked.stdout)
    assert checked.exit_code == 0, checked.stdout
    fig = report["verification"]
    assert fig["family"] == "yolo" and {"LiteDetect", "ZoomCat", "ScaleSeq", "CSPBlock"} <= set(
        fig["registered_layers"]
    )
    assert fig["fuse"]["max_abs_diff"] < 1e-4 and fig["fuse"]["deploy_modules"] >= 1

    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == pristine


def test_fuse_calls_switch_to_deploy_of_users_modules(tree, cli, tmp_path):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify", *modules_args()).exit_code == 0
    script = tmp_path / "fuse.py"
    script.write_text(
        "import sys, torch\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from ultralytics import RTDETR\n"
        f"model = RTDETR({str(FIXTURES / 'rtdetr-r18-modules.yaml')!r}).model.eval()\n"
        "rep = model.model[20]\n"
        "x = torch.rand(1, 3, 320, 320)\n"
        "with torch.no_grad():\n"
        "    feats = []\n"
        "    hook = model.model[-1].register_forward_pre_hook(lambda m, a: feats.append([t.clone() for t in a[0]]))\n"
        "    model(x); model.fuse(verbose=False); model(x)\n"
        "print(type(rep).__name__, rep.fused is not None, hasattr(rep, 'k3'),\n"
        "      type(model.model[0].norm).__name__,\n"
        "      max(float((a - b).abs().max()) for a, b in zip(*feats)))\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    name, fused, branches, norm, diff = done.stdout.split()[-5:]
    assert (name, fused, branches, norm) == ("RepBlock", "True", "False", "Identity")  # switched, BN folded
    assert float(diff) < 1e-4


# -- wrong rules and rows that do not fit ---------------------------------------------------------
@pytest.mark.parametrize(
    "spec, words",
    [
        (
            f"{FIXTURES / 'wrong.py'}:Widen",
            "under the rule 'same' (it takes one width first (c) and no output width), Widen(64) on inputs of [64] channels "
            "returns 128 channels, but the rule records 64 for the next row",
        ),
        (f"{FIXTURES / 'wrong.py'}:TwoWidths", "the rule cannot be told from its signature (inc, channel)"),
        (f"{FIXTURES / 'fusion.py'}:ZoomCat=same", "ZoomCat(64): TypeError"),
        (f"{FIXTURES / 'fusion.py'}:ZoomCat=bogus", "'bogus' is not a rule; the rules are conv, conv-n, same"),
        (f"{FIXTURES / 'attention.py'}:Nothing", "defines no class or function Nothing"),
        (f"{FIXTURES / 'convs.py'}:SpaceConv=conv,SpaceConv", "SpaceConv is given twice"),
        (
            f"{FIXTURES / 'wrong.py'}:NoReturn",
            "returned NoneType, not a feature map (does its forward lack a `return`?)",
        ),
    ],
)
def test_a_wrong_or_missing_rule_is_refused_and_nothing_written(tree, cli, state_home, spec, words):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify", "--module", spec)
    assert result.exit_code == Exit.MODULE, result.output
    assert words in flat(result.output)
    assert snapshot(root) == before and not list(state_home.rglob("manifest.json"))


def test_refusal_names_the_fix(tree, cli):
    root = tree(LATEST)
    widen = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'wrong.py'}:Widen")
    assert widen.exit_code == Exit.MODULE and "the rule that fits is" not in widen.output  # no rule builds Widen right
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'fusion.py'}:ZoomCat=same")
    assert "If it takes several inputs (a list), give a several-input rule: concat, first, last" in flat(result.output)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'wrong.py'}:TwoWidths")
    assert "give one: TwoWidths=conv, =same, =plain" in flat(result.output)


@pytest.mark.parametrize(
    "yaml, words",
    [
        (
            "bad-rows.yaml",
            "row 5 of the model yaml ([-1, 1, ZoomCat, []]): ZoomCat is registered with the rule 'concat', "
            "which takes several inputs",
        ),
        (
            "bad-rows-2.yaml",
            "row 5 of the model yaml ([[-1, 3], 1, ChannelGate, []]): ChannelGate is registered with the "
            "rule 'same', which takes one input, but the row gives it 2",
        ),
        (
            "bad-rows-3.yaml",
            "row 5 of the model yaml ([-1, 1, ChannelGate, [8, 1, 2]]): under the rule 'same' ChannelGate "
            "is called as ChannelGate(256, 8, 1, 2), which does not fit ChannelGate(channels, factor=8)",
        ),
        (
            "bad-rows-4.yaml",
            "row 5 of the model yaml ([-1, 3, SpaceConv, [128]]): under the rule 'conv' the row's 3 repeats "
            "chain 3 copies of SpaceConv(256 -> 128 channels)",
        ),
    ],
)
def test_a_row_that_does_not_fit_its_rule_names_the_row_and_the_fix(tree, cli, yaml, words):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify", *modules_args()).exit_code == 0
    result = cli("check", "--target", root, "--yaml", FIXTURES / yaml)
    assert result.exit_code == Exit.VERIFY, result.output
    out = flat(result.output)
    assert words in out and "--module FILE.py:" in out
    assert "Fix that row of the yaml, or the rule" in out and "Traceback" not in out


def test_a_module_of_three_inputs_is_not_refused_by_the_probe_of_two(tree, cli):
    root = tree(LATEST)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'wrong.py'}:ThreeWay=inputs-out")
    assert result.exit_code == 0, result.output
    assert "ThreeWay (class): rule inputs-out: ok: not probed here (ThreeWay([64, 64], 128): ValueError" in flat(
        result.output
    )


def test_a_failed_verification_says_which_rule_each_module_had(tree, cli):
    root = tree(LATEST)
    result = cli("apply", "--target", root, *modules_args(), "--yaml", FIXTURES / "bad-rows-2.yaml")
    assert result.exit_code == Exit.VERIFY, result.output
    assert "The modules were registered as: ChannelGate=same (from its signature)," in flat(result.output)


def test_a_yaml_path_that_does_not_exist(tree, cli, tmp_path):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--yaml", tmp_path / "nope.yaml")
    assert result.exit_code == Exit.USAGE and "there is no such file" in flat(result.output)
    assert snapshot(root) == before


def test_two_options_for_one_file_are_one_module(tree, cli):
    root = tree(LATEST)
    a, b = ALL_MODULES[0], ALL_MODULES[1]
    assert cli("apply", "--target", root, "--no-verify", "--module", a, "--module", b).exit_code == 0
    report = json.loads(cli("check", "--target", root, "--static", "--json").stdout)
    assert report["modules"] == [
        {
            "file": "nn/Addmodules/attention.py",
            "classes": ["ChannelGate", "ParamFree", "make_gate"],
            "rules": {"ChannelGate": "same", "ParamFree": "plain", "make_gate": "same"},
        }
    ]
    assert "ChannelGate (same), ParamFree (plain), make_gate (same)" in flat(
        cli("check", "--target", root, "--static").output
    )
    again = cli("apply", "--target", root, "--no-verify", "--module", ALL_MODULES[2])  # a later apply adds to them
    assert again.exit_code == 0, again.output
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert "ChannelGate: 'same'" in init and "SpaceConv: 'conv'" in init  # the first apply's rules were recorded


# -- the series' ResNet base ---------------------------------------------------------------------
OFFICIAL = {  # RT-DETR's own table (parameters in M, GFLOPs at 640)
    "rtdetr-resnet18.yaml": (20, 60),
    "rtdetr-resnet34.yaml": (31, 92),
    "rtdetr-resnet50-series.yaml": (42, 136),
    "rtdetr-resnet101-series.yaml": (76, 259),
}


@pytest.mark.slow
def test_resnet_yamls_match_the_official_table(tree, cli, capsys):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from ultralytics import RTDETR\n"
        "from ultralytics.utils.torch_utils import get_flops\n"
        "out = {}\n"
        f"for name in {list(OFFICIAL)!r}:\n"
        "    model = RTDETR(name).model\n"
        "    out[name] = [sum(p.numel() for p in model.parameters()), get_flops(model, 640)]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print()
        for name, (params, gflops) in measured.items():
            want_p, want_g = OFFICIAL[name]
            print(
                f"[resnet] {name}: {params / 1e6:.2f} M (official {want_p} M), {gflops:.1f} GFLOPs (official {want_g})"
            )
    for name, (params, gflops) in measured.items():
        want_p, want_g = OFFICIAL[name]
        assert abs(params / 1e6 - want_p) / want_p < 0.05 and abs(gflops - want_g) / want_g < 0.05, name


# -- files written for their destination, widths the default probe does not give ------------------
EXTRA = FIXTURES / "extra_style.py"
EXTRA_NAMES = f"{EXTRA}:Enhance,C2fGate,PSAKeep,Encoder,Project"


def test_the_probe_plan_tries_the_rows_widths_first_then_equal_then_an_image():
    rows = [{"row": 10, "args": [256], "inputs": [256], "out": 256, "numbers": [256]}]
    assert common.probe_plan("conv-n", rows) == [
        ([256], 256, "row 10 of the yaml"),
        ([64], 128, "the default probe"),
        ([64], 64, "equal widths"),
        ([128], 128, "equal widths"),
    ]
    assert common.probe_plan("same") == [
        ([64], 128, "the default probe"),
        ([128], 128, "equal widths"),
        ([3], 3, "an image's channels"),
    ]
    unknown = [{"row": 4, "args": [8, 96], "inputs": None, "out": 8, "numbers": [96]}]  # widths not followed
    assert common.probe_plan("same", unknown)[0] == ([96], 96, "row 4's argument 96")
    assert common.probe_plan("concat")[:2] == [([64, 32], 128, "the default probe"), ([64, 64], 64, "equal widths")]


def test_the_rows_widths_are_the_ones_parse_model_gives(release_trees, tmp_path):
    """The walk over a yaml's rows (``yaml_rows``) against the input widths of the real model's layers, on stock
    yamls of every family it must follow: YOLOv8 scaled, YOLO11 (C3k2, C2PSA) and RT-DETR-l (HGStem, AIFI)."""
    root = release_trees(LATEST)
    names = ["yolov8s.yaml", "yolo11n.yaml", "rtdetr-l.yaml"]
    script = tmp_path / "widths.py"
    script.write_text(
        "import json, sys, torch\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel\n"
        "out = {}\n"
        f"for name in {names!r}:\n"
        "    cls = RTDETRDetectionModel if name.startswith('rtdetr') else DetectionModel\n"
        "    model = cls(name, verbose=False).eval()\n"
        "    seen = {}\n"
        "    for i, m in enumerate(model.model[:-1]):\n"
        "        m.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, [t.shape[1] for t in a[0]]\n"
        "                                    if isinstance(a[0], list) else [a[0].shape[1]]))\n"
        "    with torch.no_grad():\n"
        "        model.predict(torch.zeros(1, 3, 64, 64)) if hasattr(model, 'predict') else model(torch.zeros(1, 3, 64, 64))\n"
        "    out[name] = seen\n"
        "print(json.dumps(out))\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    import yaml as pyyaml

    for name in names:
        path = next((root / "ultralytics/cfg/models").rglob(common.unscaled(name)))
        model = pyyaml.safe_load(path.read_text(encoding="utf-8"))
        every = {str(row[2]): None for row in model["backbone"] + model["head"]}
        scale = re.search(r"yolo(?:e-)?v?\d+([nslmx])", name)
        rows = common.yaml_rows(model, every, scale.group(1) if scale else None)
        followed = {r["row"]: r["inputs"] for found in rows.values() for r in found if r["inputs"] is not None}
        layers = len(model["backbone"]) + len(model["head"]) - 1  # the head's inputs are not hooked
        assert len([i for i in followed if i < layers]) == layers, name  # every row followed
        for i, inputs in followed.items():
            if i < layers:
                assert inputs == measured[name][str(i)], (name, i)


def test_relative_imports_and_the_rows_widths_build_train_and_revert(tree, cli):
    """A file of `from ..modules import Conv` imports, registered with the yaml that uses it: each module is probed
    at its row's widths, and the smoke run builds, trains a step and fuses the model from the copied file."""
    root = tree(LATEST)
    pristine = snapshot(root)
    applied = cli("apply", "--target", root, "--module", EXTRA_NAMES, "--yaml", FIXTURES / "yolo-extra.yaml")
    out = flat(applied.output)
    assert applied.exit_code == 0, applied.output
    assert "Patched and verified." in out
    for name, rule in (
        ("Enhance", "same"),
        ("C2fGate", "conv-n"),
        ("PSAKeep", "conv-n"),
        ("Encoder", "same"),
        ("Project", "same"),
    ):
        assert f"rule {rule} (from its signature)" in out.split(f"{name} (", 1)[1][:80], name
    assert "Enhance(3) gives 3 channels, as the rule says (built at row 0 of the yaml)" in out
    assert "PSAKeep(256, 256, 1) gives 256 channels, as the rule says (built at row 10 of the yaml)" in out
    assert "Encoder(256) gives 256 channels, as the rule says (built at row 11 of the yaml)" in out
    assert "an optional output width, and the yaml's rows give no arguments" in out
    copied = (root / "ultralytics/nn/Addmodules/extra_style.py").read_text(encoding="utf-8")
    assert "from ..modules import Conv" in copied  # the file as written, no rewriting
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == pristine


@pytest.mark.slow
def test_relative_imports_on_the_old_release(tree, cli):
    root = tree(OLD)
    applied = cli("apply", "--target", root, "--module", EXTRA_NAMES, "--yaml", FIXTURES / "yolo-extra.yaml")
    assert applied.exit_code == 0, applied.output
    assert "Patched and verified." in flat(applied.output)


def test_without_a_yaml_the_probe_tries_equal_widths_and_an_image(tree, cli):
    root = tree(LATEST)
    result = cli("apply", "--target", root, "--no-verify", "--module", EXTRA_NAMES)
    out = flat(result.output)
    assert result.exit_code == 0, result.output
    assert (
        "PSAKeep(64, 64, 1) gives 64 channels, as the rule says (built at equal widths; PSAKeep(64, 128, 1): "
        "AssertionError)" in out
    )
    assert (
        "Enhance(3) gives 3 channels, as the rule says (built at an image's channels; Enhance(64) on 1x64x32x32 "
        "inputs: RuntimeError" in out
    )
    assert "Encoder(64) gives 64 channels, as the rule says" in out  # d_model: same, at the default probe
    assert (
        "Project (class): rule conv (from its signature): ok: it takes (in_channels, out_channels=None, ...): an "
        "optional output width, read as conv" in out
    )


def test_no_width_fits_names_the_widths_tried_and_no_several_input_rule(tree, cli, state_home):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{EXTRA}:Strict")
    out = flat(result.output)
    assert result.exit_code == Exit.MODULE, result.output
    assert (
        "under the rule 'conv' (it takes (c1, c2, ...): input and output widths), Strict(64, 128): "
        "AssertionError; also tried equal widths: Strict(64, 64): AssertionError; equal widths: Strict(128, 128): "
        "AssertionError" in out
    )
    assert "several-input" not in out and "a several-input rule" not in out
    assert (
        "No other rule's arguments fit its constructor, and under 'conv' it builds at none of the widths tried: "
        "give --yaml with your model yaml" in out
    )
    assert snapshot(root) == before and not list(state_home.rglob("manifest.json"))


def test_a_relative_import_of_a_file_that_is_not_copied_is_refused(tree, cli, state_home):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'sibling.py'}:Scaled")
    out = flat(result.output)
    assert result.exit_code == Exit.MODULE, result.output
    assert (
        f"imports .helpers_not_copied (a relative import of a file beside it), and there is no "
        f"helpers_not_copied.py in {FIXTURES} to carry with it" in out
    )
    assert "Put helpers_not_copied.py beside it" in out
    assert snapshot(root) == before and not list(state_home.rglob("manifest.json"))


# -- torch layers given a rule ----------------------------------------------------------------------
def test_torch_layers_take_a_rule_for_rows_their_repository_rewrote(tree, cli, state_home):
    """``--module torch.nn:Conv2d=conv``: [-1, 1, nn.Conv2d, [48, 1]] builds nn.Conv2d(c1, 48, 1), as in the
    repositories that gave nn.Conv2d a branch; the generated file is adopt's, and a later apply adds to it."""
    root = tree(LATEST)
    pristine = snapshot(root)
    applied = cli(
        "apply", "--target", root, "--module", "torch.nn:Conv2d=conv", "--yaml", FIXTURES / "yolo-conv2d.yaml"
    )
    assert applied.exit_code == 0, applied.output
    assert "Patched and verified." in flat(applied.output)
    layers = root / "ultralytics/nn/Addmodules/adopted_torch_layers.py"
    assert "from torch.nn import Conv2d\n" in layers.read_text(encoding="utf-8")
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert "Conv2d: 'conv'" in init
    again = cli("apply", "--target", root, "--no-verify", "--module", "torch.nn:Conv1d=conv")
    assert again.exit_code == 0, again.output
    assert layers.read_text(encoding="utf-8").endswith("from torch.nn import Conv2d\nfrom torch.nn import Conv1d\n")
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert "Conv1d: 'conv'" in init and "Conv2d: 'conv'" in init
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == pristine


@pytest.mark.parametrize(
    "spec, words",
    [
        ("torch.nn:Upsample=same", "Ultralytics 8.4.190's own yamls have nn.Upsample rows"),
        ("torch.nn:Conv2d", "a torch layer needs its rule, one of conv, conv-n, same, plain (got none)"),
        ("torch.nn:Conv2d=concat", "a torch layer needs its rule, one of conv, conv-n, same, plain (got concat)"),
        (
            "torch.nn:NoSuchLayer=conv",
            "--module torch.nn: running the file at import fails: ImportError: cannot import "
            "name 'NoSuchLayer' from 'torch.nn'",
        ),
    ],
)
def test_a_torch_layer_that_cannot_take_a_rule_is_refused(tree, cli, state_home, spec, words):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify", "--module", spec)
    assert result.exit_code == Exit.MODULE, result.output
    assert words in flat(result.output)
    assert snapshot(root) == before and not list(state_home.rglob("manifest.json"))


def test_a_refusal_at_a_yaml_row_names_the_row_and_every_width_tried():
    from rtdetr_patch.patcher.modules.rules import judge_modules
    from rtdetr_patch.patcher.modules.user_module import UserModule

    tries = [
        {"source": "row 0 of the yaml", "probe_call": "Widen(3)", "probe_inputs": [3], "measured": 6, "expected": 3},
        {
            "source": "the default probe",
            "probe_call": "Widen(64)",
            "probe_inputs": [64],
            "measured": 128,
            "expected": 64,
        },
    ]
    entry = {
        "kind": "class",
        "rule": "same",
        "params_names": ["c", "e"],
        "binds": ["same", "conv"],
        **tries[0],
        "probe_out": 3,
        "probe_source": "row 0 of the yaml",
        "tries": tries,
    }
    module = UserModule(name="wrong", data=b"", classes=("Widen",), source=Path("wrong.py"), rules=(("Widen", "same"),))
    rules, errors, _ = judge_modules(module, {"Widen": entry})
    assert rules == [] and len(errors) == 1
    assert errors[0] == (
        "--module wrong.py:Widen: under the rule 'same', Widen(3) (at row 0 of the yaml) on inputs of "
        "[3] channels returns 6 channels, but the rule records 3 for the next row; also tried the "
        "default probe: Widen(64) gives 128 channels where the rule records 64"
    )


def test_an_install_that_does_not_import_is_not_blamed_on_the_file(tree, cli, state_home):
    """The preflight imports ultralytics.nn before the file (its relative imports' parent): when that fails, the
    message says the install is broken, not that the user's file fails at import."""
    root = tree(LATEST)
    conv = root / "ultralytics/nn/modules/conv.py"
    conv.write_text(conv.read_text(encoding="utf-8") + "\nraise RuntimeError('broken install')\n", encoding="utf-8")
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'convs.py'}:SpaceConv")
    out = flat(result.output)
    assert result.exit_code == Exit.MODULE, result.output
    assert "Ultralytics 8.4.190 at" in out and "before the file is read: RuntimeError: broken install" in out
    assert "running the file at import fails" not in out and "rtdetr-patch check" in out
    assert snapshot(root) == before and not list(state_home.rglob("manifest.json"))


# -- files beside a module that it imports relatively --------------------------------------------------
SIBLINGS = FIXTURES / "siblings"


def test_siblings_a_file_imports_are_carried_with_it(tree, cli, state_home):
    """``from ultralytics.nn.Addmodules.gate import ChannelGate`` in gated.py, ``from . import squeeze`` in gate.py: both siblings go into
    nn/Addmodules beside it (a file nothing imports stays out), the yaml with two classes trains, a later apply
    keeps them, and revert gives the tree back byte for byte."""
    root = tree(LATEST)
    before = snapshot(root)
    result = cli(
        "apply",
        "--target",
        root,
        "--module",
        f"{SIBLINGS / 'gated.py'}:ConvGated",
        "--yaml",
        SIBLINGS / "yolo-gated.yaml",
        "--json",
    )
    assert result.exit_code == 0, result.output
    added = root / "ultralytics" / "nn" / "Addmodules"
    for name in ("gated.py", "gate.py", "squeeze.py"):
        assert (added / name).read_bytes() == (SIBLINGS / name).read_bytes(), name
    assert not (added / "unused.py").exists()
    report = json.loads(result.output)
    assert "ConvGated" in report["verification"]["registered_layers"] and report["verification"]["nc"] == 2
    carried = {r["name"]: r["note"] for r in report["modules"] if r["kind"] == "file"}
    assert carried == {
        "gate.py": "carried with gated.py, which imports it (from .gate import ...)",  # (absolutely)
        "squeeze.py": "carried with gate.py, which imports it (from .squeeze import ...)",
    }
    init = (added / "__init__.py").read_text(encoding="utf-8")
    assert "from .gated import ConvGated" in init and "from .gate import" not in init  # siblings register nothing

    again = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'attention.py'}:ParamFree")
    assert again.exit_code == 0, again.output
    assert (added / "gate.py").is_file() and (added / "squeeze.py").is_file()
    checked = cli("check", "--target", root, "--static", "--json")
    assert json.loads(checked.output)["ok"], checked.output
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "imported, words",
    [
        (
            "from ..modules.cgfe import CGFE",  # a module its repository added to its own Ultralytics
            (
                "imports ultralytics.nn.modules.cgfe, which Ultralytics 8.4.190 does not have",
                "rtdetr-patch adopt --from DIR",
            ),
        ),
        (
            "from ..modules.conv import Conv, DSConv",  # the fork appended DSConv to Ultralytics' conv.py
            (
                "imports DSConv from ultralytics.nn.modules.conv, which Ultralytics 8.4.190 does not define",
                "Copy DSConv (and what it needs) into a file beside it",
            ),
        ),
    ],
)
def test_an_import_of_what_only_a_forks_ultralytics_has_is_named(imported, words, tree, cli, state_home, tmp_path):
    root = tree(LATEST)
    before = snapshot(root)
    source = tmp_path / "forky.py"
    source.write_text(
        f"from torch import nn\n\n{imported}  # noqa: F401\n\n\n"
        "class Forky(nn.Module):\n    def __init__(self, c1):\n        super().__init__()\n\n"
        "    def forward(self, x):\n        return x\n",
        encoding="utf-8",
    )
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{source}:Forky")
    assert result.exit_code == Exit.MODULE, result.output
    out = flat(result.output)
    for word in words:
        assert word in out, word
    assert snapshot(root) == before and not list(state_home.rglob("manifest.json"))
