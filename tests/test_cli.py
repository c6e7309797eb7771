"""The CLI's error paths and how it finds the install: each failure has its exit code, a message
that names the place, and writes nothing. Also edits after apply, --force, --val-rect-fix, and
the release helpers of ``patcher.locate``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import LATEST, OLD, RELEASES, snapshot
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.install.locate import MIN_RELEASE, read_release, release_key

pytestmark = pytest.mark.usefixtures("memo_plans")


def flat(text: str) -> str:
    """Output with rich's line breaks and runs of spaces folded, for substring checks."""
    return " ".join(text.split())


def manifests(state_home: Path) -> list[Path]:
    return list(state_home.rglob("manifest.json"))


# -- locating ---------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [("apply", "--no-verify"), ("check", "--static"), ("revert",)])
def test_target_that_does_not_exist(cli, tmp_path, state_home, command):
    missing = tmp_path / "no" / "such" / "site-packages"
    result = cli(command[0], "--target", missing, *command[1:])
    assert result.exit_code == Exit.NOT_FOUND, result.output
    assert f"--target {missing} does not exist" in flat(result.output)
    assert not missing.exists() and not manifests(state_home)


def test_target_without_ultralytics(cli, tmp_path, state_home):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("apply", "--target", empty, "--no-verify")
    assert result.exit_code == Exit.NOT_FOUND, result.output
    assert f"{empty} holds no Ultralytics package" in flat(result.output)
    assert list(empty.iterdir()) == [] and not manifests(state_home)


def test_check_json_reports_locate_errors(cli, tmp_path):
    result = cli("check", "--target", tmp_path / "nowhere", "--static", "--json")
    assert result.exit_code == Exit.NOT_FOUND
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit_code"] == Exit.NOT_FOUND and report["ultralytics"] is None
    assert str(tmp_path / "nowhere") in report["error"]["message"]


def test_target_may_be_the_package_folder_itself(tree, cli):
    root = tree(LATEST)
    result = cli("check", "--target", root / "ultralytics", "--static")
    assert result.exit_code == Exit.NOT_PATCHED, result.output
    assert f"Ultralytics {LATEST} at {root / 'ultralytics'}" in flat(result.output)


def test_release_older_than_supported(tree, cli, state_home):
    root = tree(OLD)
    init = root / "ultralytics" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    assert f"__version__ = '{OLD}'" in text or f'__version__ = "{OLD}"' in text
    init.write_text(re.sub(r"__version__ = ['\"][^'\"]+['\"]", "__version__ = '8.0.100'", text), encoding="utf-8")
    before = snapshot(root)
    for args in (("apply", "--no-verify"), ("check", "--static"), ("revert",)):
        result = cli(args[0], "--target", root, *args[1:])
        assert result.exit_code == Exit.UNSUPPORTED, result.output
        out = flat(result.output)
        assert "8.0.100" in out and "not supported" in out and MIN_RELEASE in out
    assert snapshot(root) == before and not manifests(state_home)


def test_tasks_py_that_does_not_parse(tree, cli, state_home):
    root = tree(LATEST)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(tasks.read_bytes().replace(b"\ndef parse_model(", b"\ndef parse_model((", 1))
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.TRANSFORM, result.output
    out = flat(result.output)
    assert f"{tasks} (Ultralytics {LATEST}) does not parse" in out
    assert snapshot(root) == before and not manifests(state_home)
    assert not (root / "ultralytics" / "nn" / "Addmodules").exists()

    checked = cli("check", "--target", root, "--static", "--json")
    assert checked.exit_code == Exit.NOT_PATCHED
    report = json.loads(checked.stdout)
    assert {t["state"] for t in report["transforms"] if t["file"] == "nn/tasks.py"} == {"unrecognised"}
    assert any("does not parse" in p for p in report["problems"])


def test_tasks_py_that_is_not_utf8(tree, cli, state_home):
    root = tree(LATEST)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(tasks.read_bytes().replace(b"\ndef parse_model(", b"\n# caf\xe9\ndef parse_model(", 1))
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.TRANSFORM, result.output
    assert f"{tasks} (Ultralytics {LATEST}) is not UTF-8" in flat(result.output)
    assert snapshot(root) == before and not manifests(state_home)


def test_release_without_rtdetr(tree, cli, state_home):
    root = tree(LATEST)
    shutil.rmtree(root / "ultralytics" / "cfg" / "models" / "rt-detr")
    (root / f"ultralytics-{LATEST}.dist-info").mkdir()  # pip's record of the package: a reinstall mends it
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.UNSUPPORTED, result.output
    assert "has no RT-DETR (cfg/models/rt-detr is missing)" in flat(result.output)
    # The release is recent enough: the advice is a reinstall (or another release), not an upgrade to it.
    assert f"pip install --force-reinstall --no-deps ultralytics=={LATEST}" in flat(result.output)
    assert "ultralytics>=" not in result.output
    assert snapshot(root) == before and not manifests(state_home)


def test_release_missing_a_required_file(tree, cli, state_home):
    root = tree(LATEST)
    (root / "ultralytics" / "nn" / "modules" / "block.py").unlink()
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.UNSUPPORTED, result.output
    assert "it lacks nn/modules/block.py" in flat(result.output)
    assert snapshot(root) == before and not manifests(state_home)


@pytest.mark.parametrize("command", [("apply", "--no-verify"), ("check", "--static")])
def test_python_that_does_not_exist(cli, state_home, command):
    result = cli(command[0], "--python", "/nonexistent/python", *command[1:])
    assert result.exit_code == Exit.NOT_FOUND, result.output
    assert "/nonexistent/python does not run" in flat(result.output)
    assert not manifests(state_home)


def test_python_that_does_not_exist_with_target(tree, cli, state_home):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--python", "/nonexistent/python", "--no-verify")
    assert result.exit_code == Exit.NOT_FOUND, result.output
    assert "/nonexistent/python" in flat(result.output)
    assert snapshot(root) == before and not manifests(state_home)


def test_python_finds_its_own_ultralytics_and_changes_nothing(cli, state_home):
    spec = importlib.util.find_spec("ultralytics")
    package = Path(list(spec.submodule_search_locations)[0]).resolve()
    before = snapshot(package)
    # `make demo` patches the project's own venv, and the tests must pass before and after it: which of
    # the two this install is, is read from its files, and check (with an empty store here) must agree.
    patched = (package / "nn" / "Addmodules" / "__init__.py").is_file()
    result = cli("check", "--python", sys.executable, "--static")
    out = flat(result.output)
    assert f"Ultralytics {LATEST} at {package}" in out
    assert f"--python {sys.executable}" in out
    if patched:  # by `make demo`, perhaps of an older checkout: whole (no record here) or missing newer files
        assert result.exit_code in (Exit.OK, Exit.NOT_PATCHED), result.output
        assert "tasks-import │ 4.3 │ nn/tasks.py │ applied" in out
    else:
        assert result.exit_code == Exit.NOT_PATCHED, result.output
        assert f"`check --json` lists them): run `rtdetr-patch apply --python {sys.executable}`" in out  # as given
    assert snapshot(package) == before
    assert not manifests(state_home)


# -- check on a pristine tree -------------------------------------------------------------------------
def test_check_pristine_is_not_patched(tree, cli, state_home):
    root = tree(LATEST)
    before = snapshot(root)
    result = cli("check", "--target", root, "--static")
    assert result.exit_code == Exit.NOT_PATCHED, result.output
    out = flat(result.output)
    # one line instead of a table of "missing" rows and a problem line per row (issue 27): the options repeated
    assert (
        f"problem: this install is not patched (15 edits and 16 added files missing; `check --json` lists them): "
        f"run `rtdetr-patch apply --target {root}`"
    ) in out
    assert "│" not in out and "nn/Addmodules/MobileNetV3.py" not in out
    assert len(result.output.strip().splitlines()) == 3, result.output  # the install, the problem, the verdict
    assert f"FAILED (exit {int(Exit.NOT_PATCHED)})" in out

    as_json = cli("check", "--target", root, "--static", "--json")
    assert as_json.exit_code == Exit.NOT_PATCHED
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["recorded"] is False
    assert {t["name"]: t["state"] for t in report["transforms"]} == {
        "tasks-import": "missing",
        "parse-model": "missing",
        "parse-model-modules": "missing",
        "layer-loops": "missing",
        "stride-probe": "missing",
        "registered-heads": "missing",
        "legacy-head-preds": "missing",
        "safe-load": "missing",
        "restricted-layers": "missing",
        "fuse-deploy": "missing",
        "get-flops": "not-needed",
        "repc3-expansion": "not-needed",
        "decoder-anchors": "missing",
        "iou-loss-choice": "missing",
        "iou-loss-state": "missing",
        "iou-loss-yolo": "missing",
        "iou-loss-detr": "missing",
    }
    assert "nn/Addmodules/MobileNetV3.py is missing" in report["problems"]  # the JSON keeps every row's problem
    assert snapshot(root) == before and not manifests(state_home)


def test_full_check_on_a_pristine_install_says_not_patched_not_an_unknown_yaml(tree, cli, state_home):
    """The default yaml is one apply adds: before apply it is missing because the patch is, which check says."""
    root = tree(LATEST)
    result = cli("check", "--target", root)
    assert result.exit_code == Exit.NOT_PATCHED, result.output
    assert "this install is not patched" in flat(result.output) and "ships no yaml" not in result.output


# -- conflicts ---------------------------------------------------------------------------------
def test_added_file_that_is_not_ours(tree, cli, state_home):
    root = tree(LATEST)
    foreign = root / "ultralytics" / "nn" / "Addmodules" / "MobileNetV3.py"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("# MobileNetV3 copied by hand from the blog\nclass MobileNetV3: ...\n", encoding="utf-8")
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.CONFLICT, result.output
    out = flat(result.output)
    assert f"{foreign} already exists and is not rtdetr-patch's" in out
    assert "Nothing was written" in out
    assert snapshot(root) == before and not manifests(state_home)
    assert not (foreign.parent / "__init__.py").exists()


def test_added_folder_as_a_symlink(tree, cli, state_home, tmp_path):
    root = tree(LATEST)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "ultralytics" / "nn" / "Addmodules").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.CONFLICT, result.output
    assert "symbolic link" in flat(result.output)
    assert snapshot(root) == before and list(elsewhere.iterdir()) == [] and not manifests(state_home)


# -- edits after apply ----------------------------------------------------------------------------
def test_hand_edit_after_apply(tree, cli, state_home):
    root = tree(LATEST)
    pristine = snapshot(root)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    original = tasks.read_bytes()
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    edited = tasks.read_bytes() + b"\n# my own change\n"
    tasks.write_bytes(edited)
    before = snapshot(root)

    check = cli("check", "--target", root, "--static")
    assert check.exit_code == Exit.CHANGED, check.output
    assert "nn/tasks.py is changed since apply" in flat(check.output)

    refused = cli("revert", "--target", root)
    assert refused.exit_code == Exit.CHANGED, refused.output
    out = flat(refused.output)
    assert f"{tasks} changed since apply" in out and "--force" in out
    assert snapshot(root) == before and len(manifests(state_home)) == 1

    forced = cli("revert", "--target", root, "--force")
    assert forced.exit_code == Exit.OK, forced.output
    assert tasks.read_bytes() == original
    assert snapshot(root) == pristine
    kept = re.search(r"kept your edited copy at (\S+)", flat(forced.output))
    assert kept, forced.output
    kept_path = Path(kept.group(1))
    assert kept_path.is_file() and kept_path.read_bytes() == edited
    assert state_home in kept_path.parents
    assert not manifests(state_home)


def test_edited_added_file_needs_force(tree, cli, state_home):
    root = tree(LATEST)
    pristine = snapshot(root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    yaml = root / "ultralytics" / "cfg" / "models" / "rt-detr" / "rtdetr-MobileNetV3.yaml"
    yaml.write_text(yaml.read_text(encoding="utf-8").replace("nc: 80", "nc: 3"), encoding="utf-8")
    edited = yaml.read_bytes()
    before = snapshot(root)
    refused = cli("revert", "--target", root)
    assert refused.exit_code == Exit.CHANGED, refused.output
    assert snapshot(root) == before
    forced = cli("revert", "--target", root, "--force")
    assert forced.exit_code == Exit.OK, forced.output
    assert snapshot(root) == pristine
    kept = Path(re.search(r"kept your edited copy at (\S+)", flat(forced.output)).group(1))
    assert kept.read_bytes() == edited


def test_reinstalled_file_is_patched_again_and_reverts(tree, cli, state_home, release_trees):
    """A run that finds tasks.py pristine again (a reinstall) re-patches it; revert still gives the originals."""
    root = tree(LATEST)
    pristine = snapshot(root)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    original = tasks.read_bytes()
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    patched = tasks.read_bytes()
    tasks.write_bytes(original)
    assert cli("check", "--target", root, "--static").exit_code == Exit.CHANGED

    again = cli("apply", "--target", root, "--no-verify")
    assert again.exit_code == Exit.OK, again.output
    assert tasks.read_bytes() == patched
    assert cli("check", "--target", root, "--static").exit_code == Exit.OK
    assert cli("revert", "--target", root).exit_code == Exit.OK
    assert snapshot(root) == pristine


def test_lost_record(tree, cli, state_home):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    (manifest,) = manifests(state_home)
    manifest.unlink()
    before = snapshot(root)
    for args in (("apply", "--no-verify"), ("revert",)):
        result = cli(args[0], "--target", root, *args[1:])
        assert result.exit_code == Exit.STORE, result.output
        assert "no record" in flat(result.output)
    assert snapshot(root) == before


def test_unreadable_manifest(tree, cli, state_home):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    (manifest,) = manifests(state_home)
    manifest.write_text("{not json", encoding="utf-8")
    before = snapshot(root)
    result = cli("revert", "--target", root)
    assert result.exit_code == Exit.STORE, result.output
    assert f"The manifest {manifest} is unreadable" in flat(result.output)
    assert snapshot(root) == before


# -- --val-rect-fix -------------------------------------------------------------------------------
def test_val_rect_fix(tree, cli, state_home):
    root = tree(LATEST)
    pristine = snapshot(root)
    train = root / "ultralytics" / "models" / "yolo" / "detect" / "train.py"
    assert b'rect=mode == "val"' in train.read_bytes()

    result = cli("apply", "--target", root, "--no-verify", "--val-rect-fix")
    assert result.exit_code == Exit.OK, result.output
    assert "val-rect" in result.output
    data = train.read_bytes()
    assert b"rect=False" in data and b'rect=mode == "val"' not in data
    (manifest,) = manifests(state_home)
    assert json.loads(manifest.read_text())["options"] == {"val_rect_fix": True, "modules": []}
    report = json.loads(cli("check", "--target", root, "--static", "--json").stdout)
    assert report["ok"] is True
    assert {
        "name": "val-rect",
        "file": "models/yolo/detect/train.py",
        "blog_step": "4.10",
        "state": "applied",
    } in report["transforms"]

    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert "restored ultralytics/models/yolo/detect/train.py" in back.output
    assert snapshot(root) == pristine


def test_val_rect_fix_added_after_a_plain_apply(tree, cli, state_home):
    root = tree(OLD)
    pristine = snapshot(root)
    train = root / "ultralytics" / "models" / "yolo" / "detect" / "train.py"
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    assert b"rect=mode == 'val'" in train.read_bytes()
    second = cli("apply", "--target", root, "--no-verify", "--val-rect-fix")
    assert second.exit_code == Exit.OK, second.output
    assert b"rect=False" in train.read_bytes()
    assert cli("check", "--target", root, "--static").exit_code == Exit.OK
    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert snapshot(root) == pristine


# -- an upgrade after apply -----------------------------------------------------------------------
def test_upgraded_install_is_stale(tree, cli, state_home, release_trees):
    root = tree("8.4.0")
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    shutil.rmtree(root / "ultralytics")
    shutil.copytree(release_trees(LATEST) / "ultralytics", root / "ultralytics")  # pip install -U
    upgraded = snapshot(root)

    check = cli("check", "--target", root, "--static")
    assert check.exit_code == Exit.CHANGED, check.output
    assert "applied to Ultralytics 8.4.0, but the install is now 8.4.190" in flat(check.output)

    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert "recorded for Ultralytics 8.4.0" in flat(back.output)
    assert snapshot(root) == upgraded
    assert not manifests(state_home)


def _pip_upgrade(root: Path, old: Path, new: Path) -> None:
    """What ``pip install -U`` does: remove the old release's own files, install the new ones; other files stay."""
    for path in sorted(old.rglob("*"), reverse=True):
        mine = root / path.relative_to(old.parent)
        if path.is_file():
            mine.unlink(missing_ok=True)
        elif mine.is_dir() and not any(mine.iterdir()):
            mine.rmdir()
    shutil.copytree(new, root / "ultralytics", dirs_exist_ok=True)


def test_upgrade_then_apply_then_revert_leaves_no_addmodules(tree, cli, state_home, release_trees):
    root = tree("8.4.0")
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    _pip_upgrade(root, release_trees("8.4.0") / "ultralytics", release_trees(LATEST) / "ultralytics")
    assert (
        root / "ultralytics" / "nn" / "Addmodules" / "MobileNetV3.py"
    ).is_file()  # pip leaves what it did not install
    assert cli("check", "--target", root, "--static").exit_code == Exit.CHANGED

    again = cli("apply", "--target", root, "--no-verify")
    assert again.exit_code == Exit.OK, again.output
    assert cli("check", "--target", root, "--static").exit_code == Exit.OK
    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert snapshot(root) == snapshot(release_trees(LATEST))  # every added file is gone
    assert not (root / "ultralytics" / "nn" / "Addmodules").exists()


def test_missing_added_file_is_put_back(tree, cli, state_home):
    root = tree(LATEST)
    pristine = snapshot(root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    patched = snapshot(root)
    yaml = root / "ultralytics" / "cfg" / "models" / "rt-detr" / "rtdetr-MobileNetV3.yaml"
    yaml.unlink()
    check = cli("check", "--target", root, "--static")
    assert check.exit_code == Exit.NOT_PATCHED, check.output
    assert "cfg/models/rt-detr/rtdetr-MobileNetV3.yaml is missing" in flat(check.output)

    again = cli("apply", "--target", root, "--no-verify")
    assert again.exit_code == Exit.OK, again.output
    assert "added 1 file;" in flat(again.output)
    assert snapshot(root) == patched
    assert cli("revert", "--target", root).exit_code == Exit.OK
    assert snapshot(root) == pristine


def test_error_on_warn(tree, cli):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    plain = cli("check", "--target", root, "--static")
    assert plain.exit_code == Exit.OK, plain.output
    assert "note: get-flops is not needed on 8.4.190" in flat(plain.output)  # a fact, not a warning
    assert "warning:" not in plain.output
    strict = cli("check", "--target", root, "--static", "--error-on-warn", "--json")
    assert strict.exit_code == Exit.OK, strict.output  # a clean patch of the latest release passes
    report = json.loads(strict.stdout)
    assert report["ok"] is True and report["warnings"] == [] and len(report["notes"]) == 2
    # a real warning (a release outside the tested range) still fails it
    assert cli("revert", "--target", root).exit_code == Exit.OK
    init = root / "ultralytics" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8").replace(f'"{LATEST}"', '"8.4.191"'), encoding="utf-8")
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    strict = cli("check", "--target", root, "--static", "--error-on-warn", "--json")
    report = json.loads(strict.stdout)
    assert strict.exit_code == Exit.NOT_PATCHED and "warnings are errors (--error-on-warn)" in report["problems"]


def test_untested_release_is_a_warning(tree, cli):
    root = tree(LATEST)
    init = root / "ultralytics" / "__init__.py"
    init.write_text(
        init.read_text(encoding="utf-8").replace(f'"{LATEST}"', '"8.4.191"').replace(f"'{LATEST}'", "'8.4.191'"),
        encoding="utf-8",
    )
    result = cli("check", "--target", root, "--static", "--json")
    report = json.loads(result.stdout)
    assert report["ultralytics"]["release"] == "8.4.191" and report["release_tested"] is False
    assert report["ultralytics"]["tested"] is False
    assert "release 8.4.191 lies outside the tested range 8.0.136-8.4.190" in report["warnings"]
    shown = cli("check", "--target", root, "--static")
    assert "(outside the tested range)" in flat(shown.output)


# -- locate helpers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, key",
    [
        ("8.0.136", (8, 0, 136)),
        ("8.4.190", (8, 4, 190)),
        ("8.3.100", (8, 3, 100)),
        ("8.1", (8, 1)),
        ("8.3.0.dev0", (8, 3, 0, 0)),
    ],
)
def test_release_key(text, key):
    assert release_key(text) == key


def test_release_key_orders_numerically():
    releases = ["8.3.99", "8.0.136", "8.3.100", "8.0.227", "8.10.0", "8.4.0", "8.1.0"]
    assert sorted(releases, key=release_key) == ["8.0.136", "8.0.227", "8.1.0", "8.3.99", "8.3.100", "8.4.0", "8.10.0"]
    assert release_key("8.0.99") < release_key(MIN_RELEASE) <= release_key("8.0.136")


def test_release_key_pre_releases():
    assert release_key("8.0.99rc1") < release_key(MIN_RELEASE)
    assert release_key("8.1.0rc1") < release_key("8.1.1")


@pytest.mark.parametrize(
    "source, release",
    [
        ("__version__ = '8.0.136'\n", "8.0.136"),
        ('# Ultralytics\n"""doc"""\n\n__version__ = "8.4.190"\n\nfrom x import y\n', "8.4.190"),
        ("import os\n__version__ = '8.3.0'\n__all__ = ['YOLO']\n", "8.3.0"),
    ],
)
def test_read_release(tmp_path, source, release):
    (tmp_path / "__init__.py").write_text(source, encoding="utf-8")
    assert read_release(tmp_path) == release


@pytest.mark.parametrize(
    "source, words",
    [
        ("VERSION = '8.4.0'\n", "has no __version__"),
        ("__version__ = get_version()\n", "has no __version__"),
        ("__version__ = (\n", "Cannot read the release"),
        (None, "Cannot read the release"),
    ],
)
def test_read_release_failures(tmp_path, source, words):
    if source is not None:
        (tmp_path / "__init__.py").write_text(source, encoding="utf-8")
    with pytest.raises(PatchError) as info:
        read_release(tmp_path)
    assert info.value.code is Exit.NOT_FOUND
    assert words in info.value.message and str(tmp_path / "__init__.py") in info.value.message


def test_read_release_of_every_tested_release(release_trees):
    for release in RELEASES:
        assert read_release(release_trees(release) / "ultralytics") == release


# -- paths that look like rich markup ---------------------------------------------------------------
def test_error_message_with_bracket_path(cli, tmp_path):
    missing = tmp_path / "env[/]" / "site-packages"
    result = cli("check", "--target", missing, "--static")
    assert result.exit_code == Exit.NOT_FOUND
    assert str(missing) in flat(result.output)


def test_report_names_bracket_path(tree, cli, tmp_path):
    root = tree(LATEST)
    odd = tmp_path / "site[red]"
    root.rename(odd)
    result = cli("check", "--target", odd, "--static")
    assert result.exit_code == Exit.NOT_PATCHED
    assert f"at {odd / 'ultralytics'}" in flat(result.output)
