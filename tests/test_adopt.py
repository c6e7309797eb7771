"""``rtdetr-patch adopt``: a hand-edited 8.0.x tree adopted in place and carried onto the latest release.

Real release trees (wheels), edited by hand as the series' readers do (``adopt_trees.py``), real
imports and yaml builds in the interpreter that trains.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import terminal
from adopt_trees import blog_tree, extra_modules_tree, loss_flags
from conftest import LATEST, OLD, snapshot, wheel
from helpers import SMOKE, STARTS, apply_channel_gate, cursor_shown, environment, flat
from rtdetr_patch.patcher.disk.killpoints import INTERRUPT_ENV, KILL_ENV
from rtdetr_patch.patcher.errors import Exit, PatchError
from terminal import Terminal

from rtdetr_patch import __version__, api

pytestmark = pytest.mark.slow
EXPECTED = {
    "EMA": ("carried", "same"),
    "Zoom_cat": ("carried", "concat"),
    "C2f_EMA": ("carried", "conv-n"),
    "MobileNetV3": ("ours", None),
    "Weird": ("carried", "branch"),  # no rule expresses its branch: carried as written
    "Odd": ("not carried", None),  # its branch reads parse_model's own `layers`
    "Absent": ("not carried", "same"),
    "nn.Conv2d": ("carried", "conv"),
}  # its rule is known; its file does not import


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RTDETR_PATCH_CACHE", str(tmp_path / "cache"))


def names(result) -> dict:
    return {n["name"]: n for n in result.names}


def test_a_fork_tree_is_carried_onto_the_latest_release(tree, cli, tmp_path):
    fork = blog_tree(tree(OLD))
    loss_flags(fork)
    target = tree(LATEST)
    before_fork, before_target = snapshot(fork), snapshot(target)
    result = api.adopt(
        target=str(target), source=str(fork.parent), wheel=str(wheel(OLD)), no_verify=True, python=sys.executable
    )
    found = names(result)
    for name, (status, rule) in EXPECTED.items():
        assert found[name]["status"] == status, found[name]
        assert found[name].get("rule") == rule, found[name]
    assert "len(layers)" in found["Odd"]["code"] and "layers" in found["Odd"]["why"]  # shown as code, and why
    assert "rtdetr_patch_absent_package" in found["Absent"]["why"] and "pip install" in found["Absent"]["why"]
    yamls = {y["path"].rsplit("/", 1)[-1]: y for y in result.yamls}
    mine = yamls["rtdetr-mine.yaml"]
    assert mine["source"]["params"] == mine["target"]["params"] > 0  # the same model on both releases
    weird = yamls["rtdetr-weird.yaml"]  # Weird's branch, carried as written, builds the tree's model
    assert weird["source"]["params"] == weird["target"]["params"] > 0
    assert "def branch_" in (target / "ultralytics/nn/Addmodules/adopted_parse_model.py").read_text(encoding="utf-8")
    edits = {e["path"]: e["why"] for e in result.edits}
    assert "models/utils/loss.py" in edits and "utils/torch_utils.py" in edits
    # the fork's loss, chosen by bbox_iou flags in its RT-DETR loss call, reaches its RT-DETR yamls as iou_loss
    key = "iou_loss: inner-eiou, iou_loss_args: {ratio: 0.8}"
    assert f"carried as `{key}` into 2 adopted RT-DETR yamls" in edits["models/utils/loss.py"]
    assert f"`{key}` added" in mine["why"]
    added = (target / "ultralytics/cfg/models/rt-detr/rtdetr-mine.yaml").read_text(encoding="utf-8")
    assert added.startswith((fork / "cfg/models/rt-detr/rtdetr-mine.yaml").read_text(encoding="utf-8"))
    assert added.endswith("iou_loss: inner-eiou\niou_loss_args: {ratio: 0.8}\n")
    assert snapshot(fork) == before_fork  # the fork is only read
    assert (target / "ultralytics" / "nn" / "Addmodules" / "blocks.py").read_bytes() == (
        fork / "nn" / "Addmodules" / "blocks.py"
    ).read_bytes()
    assert (target / "ultralytics" / "nn" / "Addmodules" / "attention.py").read_bytes().count(b"\r\n") > 5  # CRLF kept
    assert not (target / "ultralytics" / "nn" / "Addmodules" / "needs_pkg.py").exists()
    check = cli("check", "--target", target, "--yaml", target / "ultralytics/cfg/models/rt-detr/rtdetr-mine.yaml")
    assert check.exit_code == 0, check.output
    assert "Adopted from" in check.output and "C2f_EMA (conv-n)" in check.output
    mine_yaml = target / "ultralytics/cfg/models/rt-detr/rtdetr-mine.yaml"
    again_json = cli("check", "--target", target, "--json", "--yaml", mine_yaml)  # the figures kept from above
    used = json.loads(again_json.output)["verification"]["iou_loss"]
    assert (used["name"], used["args"], used["source"]) == ("inner-eiou", {"ratio": 0.8}, "model yaml")
    again = api.adopt(target=str(target), source=str(fork.parent), wheel=str(wheel(OLD)), no_verify=True)
    assert again.already and not again.written and not again.added
    reverted = cli("revert", "--target", target)
    assert reverted.exit_code == 0, reverted.output
    assert snapshot(target) == before_target


def test_an_install_edited_after_the_blog_is_adopted_in_place_and_reverted_byte_for_byte(tree, cli, state_home):
    root = tree(OLD)
    package = blog_tree(root)
    before = snapshot(root)
    refused = cli("apply", "--target", root, "--no-verify")
    assert refused.exit_code == Exit.HAND_PATCHED  # apply still refuses it; adopt is the way
    dry = cli("adopt", "--target", root, "--wheel", wheel(OLD), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run" in dry.output and snapshot(root) == before
    mine = package / "cfg/models/rt-detr/rtdetr-mine.yaml"  # the smoke run trains the reader's own yaml
    done = cli("adopt", "--target", root, "--wheel", wheel(OLD), "--json", "--yaml", mine)
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["in_place"] and result["verification"]["loss"] is not None
    assert result["verification"]["yaml"].endswith("rtdetr-mine.yaml")
    assert {"C2f_EMA", "EMA", "Zoom_cat"} <= set(result["verification"]["registered_layers"])
    assert "nn/tasks.py" in result["written"] and "utils/torch_utils.py" in result["written"]
    edits = {e["path"]: e["why"] for e in result["edits"]}
    assert "replaced by Ultralytics" in edits["utils/torch_utils.py"] and "not carried" in edits["models/utils/loss.py"]
    tasks = (package / "nn" / "tasks.py").read_text(encoding="utf-8")
    assert "elif m is Weird" not in tasks and "RTDETR_PATCH_MODULES" in tasks  # pristine + the managed patch
    loss = (package / "models" / "utils" / "loss.py").read_bytes()  # the tree's own copy, patched in place
    assert loss.endswith(b"# my loss tweak: a heavier GIoU term\n") and loss.count(b"self.rtdetr_patch_iou(") == 1
    kept = Path(result["kept"])
    for rel in ("nn/tasks.py", "nn/Addmodules/__init__.py", "nn/Addmodules/needs_pkg.py", "models/utils/loss.py"):
        assert hashlib.sha256((kept / rel).read_bytes()).hexdigest() == before[f"ultralytics/{rel}"]
    assert (kept / "nn" / "tasks.py").read_bytes().count(b"elif m is Weird") == 1
    assert (package / "nn" / "Addmodules" / "needs_pkg.py").is_file()  # not carried, left where it was
    check = cli("check", "--target", root, "--static")
    assert check.exit_code == 0, check.output
    again = cli("adopt", "--target", root, "--wheel", wheel(OLD), "--no-verify")
    assert again.exit_code == 0 and "Already adopted" in again.output, again.output
    reverted = cli("revert", "--target", root)
    assert reverted.exit_code == 0, reverted.output
    assert "models/utils/loss.py" in reverted.output  # put back as the reader edited it (its tweak included)
    assert snapshot(root) == before  # every byte of the hand-edited install, as it was


def test_without_pypi_or_wheel_the_error_names_both_ways_and_nothing_is_written(tree, monkeypatch):
    fork = blog_tree(tree(OLD))
    target = tree(LATEST)
    before = snapshot(target)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    with pytest.raises(PatchError) as failed:
        api.adopt(target=str(target), source=str(fork), no_verify=True)
    assert failed.value.code == Exit.ADOPT
    assert "--wheel" in failed.value.hint and "pip download" in failed.value.hint and OLD in failed.value.message
    with pytest.raises(PatchError) as wrong:
        api.adopt(target=str(target), source=str(fork), wheel=str(wheel(LATEST)), no_verify=True)
    assert wrong.value.code == Exit.ADOPT and LATEST in wrong.value.message
    assert snapshot(target) == before


def test_a_folder_without_a_tree_is_refused(tmp_path, tree):
    target = tree(LATEST)
    with pytest.raises(PatchError) as failed:
        api.adopt(target=str(target), source=str(tmp_path), no_verify=True)
    assert failed.value.code == Exit.ADOPT and str(tmp_path) in failed.value.message


@pytest.mark.skipif(not terminal.available(), reason="pseudo-terminals are POSIX (Windows has none)")
def test_adopt_on_a_terminal_shows_its_stages_and_ends(tree, tmp_path):
    fork = blog_tree(tree(OLD))
    target = tree(LATEST)
    term = Terminal(
        [
            sys.executable,
            "-m",
            "rtdetr_patch",
            "adopt",
            "--from",
            str(fork),
            "--target",
            str(target),
            "--wheel",
            str(wheel(OLD)),
            "--dry-run",
        ],
        environment(),
        str(tmp_path),
    )
    term.expect(f"Ultralytics {LATEST} at", STARTS)
    term.expect("building the yamls", SMOKE)  # the live line while the probes work
    code = term.wait(SMOKE)
    text = flat(term.text)
    assert code == 0, term.text
    assert "Names parse_model gained" in text and "Dry run: nothing was written." in text
    assert "of those on the target" in text and cursor_shown(term.raw)


def test_an_apply_after_adopt_keeps_what_adopt_carried(tree, cli, state_home):
    """A module added with --module after an in-place adopt: the adopted files, yamls and account stay recorded,
    and one revert still gives back the hand-edited install byte for byte."""
    root = tree(OLD)
    package = blog_tree(root)
    before = snapshot(root)
    assert cli("adopt", "--target", root, "--wheel", wheel(OLD), "--no-verify").exit_code == 0
    more = apply_channel_gate(cli, root)
    assert more.exit_code == 0, more.output
    registry = (package / "nn" / "Addmodules" / "__init__.py").read_text(encoding="utf-8")
    assert "ChannelGate" in registry and "C2f_EMA" in registry
    check = cli("check", "--target", root, "--static")
    assert check.exit_code == 0 and "Adopted from" in check.output, check.output
    manifest = next(state_home.glob("installs/*/manifest.json"))
    recorded = manifest.read_text(encoding="utf-8")
    manifest.write_text(recorded.replace(f'"tool": "{__version__}"', '"tool": "0.3.0"'), encoding="utf-8")
    adopted = snapshot(root)
    older = cli("apply", "--target", root, "--no-verify")  # another rtdetr-patch release adopted it
    assert older.exit_code == Exit.ADOPT and "rtdetr-patch revert" in older.output, older.output
    assert snapshot(root) == adopted
    manifest.write_text(recorded, encoding="utf-8")
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == before


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_adopt_stopped_while_writing_leaves_the_install_as_it_was(tree, how):
    """Ctrl-C at a write of an in-place adopt rolls back at once (exit 130); a kill there is rolled back by the
    next command. Either way the hand-edited install is as it was, byte for byte."""
    root = tree(OLD)
    blog_tree(root)
    before = snapshot(root)
    env = {**os.environ, (INTERRUPT_ENV if how == "ctrl-c" else KILL_ENV): "3"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtdetr_patch",
            "adopt",
            "--target",
            str(root),
            "--wheel",
            str(wheel(OLD)),
            "--no-verify",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if how == "ctrl-c":
        assert done.returncode == Exit.INTERRUPTED, done.stderr
        assert "every file was put back" in done.stderr
    else:
        assert done.returncode == 137, done.stderr
        assert snapshot(root) != before  # killed half way: files were written
        after = subprocess.run(
            [sys.executable, "-m", "rtdetr_patch", "check", "--target", str(root), "--static"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "rolled back" in after.stdout + after.stderr
    assert snapshot(root) == before


def test_an_extra_modules_fork_is_carried_as_it_lays_its_modules_out(tree, cli):
    """The extra_modules family: module folders of the fork's own, a class it appended to Ultralytics' conv.py."""
    fork = extra_modules_tree(tree(OLD))
    target = tree(LATEST)
    before_fork, before_target = snapshot(fork), snapshot(target)
    result = api.adopt(
        target=str(target), source=str(fork.parent), wheel=str(wheel(OLD)), no_verify=True, python=sys.executable
    )
    found = names(result)
    assert (found["C2f_DS"]["status"], found["C2f_DS"].get("rule")) == ("carried", "same"), found["C2f_DS"]
    assert (found["DSConv"]["status"], found["DSConv"].get("rule")) == ("carried", "conv"), found["DSConv"]
    yaml = next(y for y in result.yamls if y["path"].endswith("rtdetr-extra.yaml"))
    assert yaml["source"]["params"] == yaml["target"]["params"] > 0, yaml  # the same model on both releases
    added = target / "ultralytics" / "nn" / "Addmodules"
    assert (added / "extra_modules" / "attention.py").read_bytes() == (
        fork / "nn" / "extra_modules" / "attention.py"
    ).read_bytes()  # CRLF, byte for byte
    assert b"class DSConv" in (added / "added_in_ultralytics" / "modules" / "conv.py").read_bytes()
    assert (added / "extra_modules" / "ops" / "modules" / "deform.py").is_file()
    assert (added / "backbone" / "repvit_cfg" / "k.yaml").read_bytes() == b"k: 3\n"  # read by a path the fork gave
    adopted = (added / "adopted_parse_model.py").read_text(encoding="utf-8")  # the fork's `s = 640`, for its modules
    assert "PROBE_SIZES = {'C2f_DS': 640, 'DSConv': 640}" in adopted and "BRANCHES = {}" in adopted
    assert (added / "extra_modules" / "__init__.py").read_bytes() == b""
    assert not (added / "extra_modules" / "needs_absent.py").exists()
    assert snapshot(fork) == before_fork
    check = cli("check", "--target", target, "--static")
    assert check.exit_code == 0 and "C2f_DS (same)" in check.output, check.output
    more = apply_channel_gate(cli, target)  # an apply after it re-adds the carried files from the store
    assert more.exit_code == 0, more.output
    registry = (added / "__init__.py").read_text(encoding="utf-8")
    assert "from .extra_modules.block import C2f_DS" in registry and "ChannelGate" in registry
    assert (added / "extra_modules" / "ops" / "__init__.py").read_bytes() == b""
    reverted = cli("revert", "--target", target)
    assert reverted.exit_code == 0, reverted.output
    assert snapshot(target) == before_target
    assert not added.exists()  # the folders adopt made are gone too
