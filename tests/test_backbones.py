"""Users' backbones as the series writes them: factories, `channel`, 640-only attention, timm layers.

The fixtures in ``fixtures/backbones`` (written for these tests; see their README) each reproduce
one convention met in real backbone files. They go in with ``apply --module FILE.py:NAME`` named as
a yaml row names them, build inside the blog's RT-DETR head, run, train one epoch on a generated
dataset (on the latest release with ``ULTRALYTICS_SAFE_LOAD=1``, so the final validation reloads
``best.pt`` under restricted loading; on an 8.0.x release without it), reload ``best.pt`` in a
fresh process and predict, and revert byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LATEST, OLD, snapshot
from helpers import assert_offline, make_dataset, offline_env, run_phase

from rtdetr_patch.cli import main as cli_main

FIXTURES = Path(__file__).parent / "fixtures" / "backbones"
# (file, the name a yaml row uses, training image size: the attention fixture only runs at 640)
CASES = (
    ("repnet.py", "repnet_m0", 128),
    ("chan_net.py", "channet_s", 128),
    ("attn_net.py", "attnnet_t", 640),
    ("FastNet.py", "FastNet", 128),
    ("fivenet.py", "fivenet_s", 128),
    ("oddnet.py", "OddNet", 128),
    ("three_net.py", "threenet_s", 128),
)
OLD_RELEASE_TRAINED = ("repnet_m0", "threenet_s")
TIMM_LAYERS = ("timm.layers.drop.DropPath", "timm.layers.squeeze_excite.SEModule")


def apply_all(root: Path, state: Path) -> tuple[int, str]:
    args = ["apply", "--target", str(root), "--no-verify"]
    for file, name, _ in CASES:
        args += ["--module", f"{FIXTURES / file}:{name}"]
    result = CliRunner(env={"RTDETR_PATCH_HOME": str(state), "COLUMNS": "250"}).invoke(cli_main, args)
    return result.exit_code, result.output


def yaml_for(root: Path, name: str, folder: Path) -> Path:
    """The blog's RT-DETR yaml with the backbone row naming ``name``, as the series' yamls do."""
    template = (root / "ultralytics/cfg/models/rt-detr/rtdetr-MobileNetV3.yaml").read_text(encoding="utf-8")
    assert "[-1, 1, MobileNetV3, []]" in template
    path = folder / f"rtdetr-{name}.yaml"
    path.write_text(template.replace("[-1, 1, MobileNetV3, []]", f"[-1, 1, {name}, []]"), encoding="utf-8")
    return path


def test_preflight_reports_each_backbone_and_registers_it(tree, cli, state_home):
    root = tree(LATEST)
    before = snapshot(root)
    code, output = apply_all(root, state_home)
    assert code == 0, output
    flat = " ".join(output.split())
    for _, name, _ in CASES:
        assert name in flat
    assert "5 maps, channels 16, 16, 32, 64, 128, strides 2/4/8/16/32" in flat  # fivenet: indices 0-4
    assert "ok, unusual strides: index 1 has stride 8 (expected 4)" in flat  # OddNet: a warning, not a refusal
    assert "3 maps, channels 24, 48, 96, strides 8/16/32" in flat  # threenet_s: indices 2-4
    assert "width_list is already padded to five entries: [3, 16, 24, 48, 96]" in flat
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    # file name equal to class name: the module comes from sys.modules, not the package attribute
    assert "from .FastNet import FastNet" in init
    assert "RTDETR_PATCH_SAFE_MODULES.append(_importlib.import_module(__name__ + '.FastNet'))" in init
    for layer in TIMM_LAYERS:
        assert repr(layer) in init
    report = json.loads(cli("check", "--target", root, "--static", "--json").output)
    assert report["ok"], report["problems"]
    assert sorted(c for m in report["modules"] for c in m["classes"]) == sorted(n for _, n, _ in CASES)
    manifest = json.loads(next(state_home.rglob("manifest.json")).read_text(encoding="utf-8"))
    recorded = {m["name"]: m for m in manifest["options"]["modules"]}
    assert set(TIMM_LAYERS) <= set(recorded["repnet"]["safe_names"])
    # what a checkpoint of channet_s pickles by name besides layers: a function, a torch function, a config class
    assert {
        "ultralytics.nn.Addmodules.chan_net.hard_sigmoid",
        "ultralytics.nn.Addmodules.chan_net.StageConfig",
        "torch._C._nn.gelu",
    } <= set(recorded["chan_net"]["safe_names"])
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0  # re-apply keeps every module
    assert init == (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == before


def test_a_relative_module_path_works_from_anywhere(tree, cli, tmp_path, monkeypatch):
    root = tree(LATEST)
    folder = tmp_path / "work" / "src"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "oddnet.py", folder / "oddnet.py")
    monkeypatch.chdir(tmp_path / "work")
    result = cli("apply", "--target", root, "--no-verify", "--module", "src/oddnet.py:OddNet")
    assert result.exit_code == 0, result.output
    assert (root / "ultralytics/nn/Addmodules/oddnet.py").read_bytes() == (folder / "oddnet.py").read_bytes()


def test_file_without_name_registers_its_factories(tree, cli, state_home):
    """``--module repnet.py``: both factories pass; the class that needs `cfgs` is reported, not registered."""
    root = tree(LATEST)
    result = cli("apply", "--target", root, "--no-verify", "--module", FIXTURES / "repnet.py")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "RepNet (class): needs arguments: give them in the yaml row" in flat, flat
    init = (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")
    assert "from .repnet import repnet_m0, repnet_m1" in init
    assert "RTDETR_PATCH_BACKBONES = RTDETR_PATCH_BACKBONES | {repnet_m0, repnet_m1}" in init


def test_a_named_class_that_needs_arguments_is_registered_with_a_note(tree, cli, state_home):
    root = tree(LATEST)
    result = cli("apply", "--target", root, "--no-verify", "--module", f"{FIXTURES / 'repnet.py'}:RepNet")
    assert result.exit_code == 0, result.output
    assert "give them in the yaml row" in " ".join(result.output.split())
    assert "from .repnet import RepNet" in (root / "ultralytics/nn/Addmodules/__init__.py").read_text(encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("release, safe_load", [(LATEST, True), (OLD, False)])
def test_backbones_build_train_reload_and_revert(release, safe_load, release_trees, tmp_path, capsys):
    work = tmp_path
    root = work / "site"
    shutil.copytree(release_trees(release), root)
    before = snapshot(root)
    code, output = apply_all(root, work / "state")
    assert code == 0, output
    data = make_dataset(work / "data")
    run = work / "run"
    run.mkdir()
    # Every backbone trains on the latest release. 8.0.x profiles each model at 640 for its GFLOPs line
    # (three times per training run), so there the suite trains two that differ in what the old
    # parse_model and layer loops must handle (four maps from a timm factory; three maps, left-padded);
    # all seven are applied, registered, predicted with and reverted on it above and below.
    chosen = [c for c in CASES if release == LATEST or c[1] in OLD_RELEASE_TRAINED]
    cases = [{"yaml": str(yaml_for(root, name, work)), "imgsz": imgsz} for _, name, imgsz in chosen]
    extra = {"ULTRALYTICS_SAFE_LOAD": "1"} if safe_load else {}
    spec = {"root": str(root), "cases": cases, "data": str(data), "batch": 4, "project": str(work / "runs")}
    out, wall, log = run_phase("backbones", spec, offline_env(work, release, **extra), run)
    assert out["ok"], f"{out.get('traceback')}\n{log}"
    assert_offline(out["network_attempts"], f"{release} training")
    bests = []
    for _, name, imgsz in chosen:
        entry = out["cases"][f"rtdetr-{name}"]
        assert entry["ok"], f"{name}: {entry.get('error')}\n{entry.get('traceback')}"
        assert len(entry["backbone"]) == 1, entry
        assert entry["eval_shape"][:2] == [1, 300], entry
        assert entry["loss_finite"] and entry["backbone_grads"] > 0, entry
        assert entry["best_exists"] and entry["losses_finite"] and entry["validator_ran"], entry
        bests.append(entry["best"])
    with capsys.disabled():
        print(
            f"\n[backbones] {release} (ULTRALYTICS_SAFE_LOAD={'1' if safe_load else 'unset'}): "
            f"{len(chosen)} backbones built, trained one epoch and validated in {wall:.0f} s"
        )

    image = str(data.parent / "images" / "val" / "val0.png")
    spec = {"root": str(root), "bests": bests, "image": image, "imgsz": 640}
    out, wall, log = run_phase("predict_many", spec, offline_env(work, release, **extra), run)
    assert out["ok"], f"{out.get('traceback')}\n{log}"
    for best, pred in out["predictions"].items():
        assert pred["ok"], f"{best}: {pred.get('error')}\n{pred.get('traceback')}"
        assert pred["results"] == 1 and len(pred["backbone"]) == 1 and pred["conf_finite"], pred

    reverted = CliRunner(env={"RTDETR_PATCH_HOME": str(work / "state")}).invoke(
        cli_main, ["revert", "--target", str(root)]
    )
    assert reverted.exit_code == 0, reverted.output
    assert snapshot(root) == before


@pytest.mark.slow
def test_verification_reloads_each_backbone_under_restricted_loading(tree, cli):
    """apply's smoke run saves each backbone as a checkpoint holds it and loads it back with the release's
    restricted loader: FastNet pickles ``getattr(module, "forward_det")`` and timm's DropPath, repnet_m0
    timm's SEModule, channet_s a function, ``F.gelu`` and a config class; all must pass the allow-list."""
    root = tree(LATEST)
    result = cli(
        "apply",
        "--target",
        root,
        "--module",
        f"{FIXTURES / 'FastNet.py'}:FastNet",
        "--module",
        f"{FIXTURES / 'repnet.py'}:repnet_m0",
        "--module",
        f"{FIXTURES / 'chan_net.py'}:channet_s",
    )
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "your FastNet" in flat and "your repnet_m0" in flat and "your channet_s" in flat
    assert flat.count("restricted reload ok") == 3, flat
