"""Installs edited by hand (the blog followed), git checkouts, read-only folders, and a whole-tree
audit that rtdetr-patch writes nowhere but the package folder and its own state folder."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import LATEST, OLD, snapshot
from helpers import flat
from rtdetr_patch.patcher.errors import Exit

SEED_LOOP = """            if hasattr(m, 'backbone'):
                x = m(x)
                if len(x) != 5:  # 0 - 5
                    x.insert(0, None)
                for index, i in enumerate(x):
                    if index in self.save:
                        y.append(i)
                    else:
                        y.append(None)
                x = x[-1]
            else:
                x = m(x)  # run
                y.append(x if m.i in self.save else None)  # save output
"""


def blog_patch(root: Path, steps: str) -> None:
    """Edit an 8.0.227 tree the way the blog's reader does by hand: steps from '123' (4.1-4.3) to '1234567'."""
    pkg = root / "ultralytics"
    tasks = pkg / "nn" / "tasks.py"
    text = tasks.read_text(encoding="utf-8")
    if "1" in steps:
        (pkg / "nn" / "Addmodules").mkdir()
        (pkg / "nn" / "Addmodules" / "MobileNetV3.py").write_text("import torch\n# the reader's own module\n")
    if "2" in steps:
        (pkg / "nn" / "Addmodules" / "__init__.py").write_text("from .MobileNetV3 import *\n")
    if "3" in steps:
        text = text.replace("import torch\n", "import torch\nfrom ultralytics.nn.Addmodules import *\n", 1)
    if "4" in steps:
        loop = "    for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):"
        assert loop in text
        text = text.replace(loop, "    backbone = False\n" + loop)
    if "7" in steps:
        plain = "            x = m(x)  # run\n            y.append(x if m.i in self.save else None)  # save output\n"
        assert plain in text
        text = text.replace(plain, SEED_LOOP, 1)
    tasks.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("steps", ["123", "1234", "12347"])
def test_install_patched_by_hand_is_reported_and_not_patched_twice(steps, tree, cli):
    root = tree(OLD)
    blog_patch(root, steps)
    before = snapshot(root)
    applied = cli("apply", "--target", root, "--no-verify")
    assert applied.exit_code == Exit.HAND_PATCHED, applied.output
    assert "by hand" in applied.output and "Nothing was written" in applied.output
    assert snapshot(root) == before
    checked = cli("check", "--target", root, "--static")
    assert checked.exit_code == Exit.HAND_PATCHED and "by hand" in checked.output
    reverted = cli("revert", "--target", root)
    assert reverted.exit_code == Exit.HAND_PATCHED  # issue 25: said for revert, not "not patched a second time"
    assert "revert has nothing of its own to take back" in flat(reverted.output)
    assert "a second time" not in reverted.output
    assert snapshot(root) == before


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def checkout(tree):
    """An 'editable install from a git clone': the release tree committed to a git repository."""
    root = tree(LATEST)
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone")
    return root


def test_checkout_round_trip_leaves_git_status_as_found(checkout, cli):
    head = git(checkout, "rev-parse", "HEAD")
    assert git(checkout, "status", "--porcelain") == ""
    assert cli("apply", "--target", checkout, "--no-verify").exit_code == 0
    assert "nn/tasks.py" in git(checkout, "status", "--porcelain")
    assert cli("revert", "--target", checkout).exit_code == 0
    assert git(checkout, "status", "--porcelain") == ""
    assert git(checkout, "rev-parse", "HEAD") == head  # nothing committed
    assert git(checkout, "stash", "list") == ""  # nothing stashed


def test_checkout_with_uncommitted_changes_needs_force(checkout, cli):
    tasks = checkout / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(tasks.read_bytes() + b"# my uncommitted experiment\n")
    status = git(checkout, "status", "--porcelain")
    before = snapshot(checkout)
    refused = cli("apply", "--target", checkout, "--no-verify")
    assert refused.exit_code == Exit.DIRTY_CHECKOUT, refused.output
    assert "uncommitted" in refused.output and "nn/tasks.py" in refused.output
    assert snapshot(checkout) == before
    assert cli("apply", "--target", checkout, "--no-verify", "--force").exit_code == 0
    assert cli("revert", "--target", checkout).exit_code == 0
    assert snapshot(checkout) == before  # the uncommitted experiment is back, byte for byte
    assert git(checkout, "status", "--porcelain") == status


def test_read_only_package_folder(release_trees):
    """A package the user may not write: one clear message, exit 11, nothing changed."""
    base = Path(tempfile.mkdtemp(prefix="rtdetr-ro-"))
    try:
        os.chmod(base, 0o755)
        root = base / "site"
        shutil.copytree(release_trees(LATEST), root)
        state = base / "state"
        state.mkdir()
        os.chmod(state, 0o777)
        env = {**os.environ, "RTDETR_PATCH_HOME": str(state), "HOME": str(state)}
        cmd = [sys.executable, "-m", "rtdetr_patch", "apply", "--target", str(root), "--no-verify"]
        if os.geteuid() == 0:  # root may write anywhere: run as nobody, who owns nothing here
            for path in [root, *root.rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        else:
            for path in [root, *root.rglob("*")]:
                os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o222)
        before = snapshot(root)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == Exit.WRITE, done.stdout + done.stderr
        assert "permission denied" in done.stdout + done.stderr and "Nothing was written" in done.stdout + done.stderr
        assert snapshot(root) == before
    finally:
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
        shutil.rmtree(base)


def test_writes_nowhere_else(release_trees, tmp_path):
    """Apply, check, revert and failing commands under a temporary root: every file outside the package
    folder and the state folder is unchanged, and no file appears anywhere else (HOME and TMPDIR included)."""
    world = tmp_path / "world"
    for name in ("home", "tmp", "other", "xdg"):
        (world / name).mkdir(parents=True)
    (world / "other" / "precious.txt").write_text("keep me\n")
    (world / "home" / ".bashrc").write_text("# user file\n")
    root = world / "site"
    shutil.copytree(release_trees(OLD), root)
    state = world / "state"
    env = {
        **os.environ,
        "HOME": str(world / "home"),
        "TMPDIR": str(world / "tmp"),
        "XDG_STATE_HOME": str(world / "xdg"),
        "XDG_CONFIG_HOME": str(world / "xdg"),
        "XDG_CACHE_HOME": str(world / "xdg"),
        "RTDETR_PATCH_HOME": str(state),
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    def outside() -> dict:
        return {k: v for k, v in snapshot(world).items() if not k.startswith(("site/ultralytics/", "state/"))}

    before = outside()
    commands = [
        ["apply", "--no-verify"],
        ["apply", "--no-verify"],
        ["check", "--static"],
        ["check", "--static", "--json"],
        ["apply", "--dry-run"],
        ["revert"],
        ["revert"],
        ["check", "--static"],
    ]
    codes = []
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "rtdetr_patch", *args, "--target", str(root)],
            env=env,
            cwd=world / "other",
            capture_output=True,
            text=True,
            timeout=300,
        )
        codes.append(done.returncode)
    bad = subprocess.run(
        [sys.executable, "-m", "rtdetr_patch", "apply", "--target", str(world / "other")],
        env=env,
        cwd=world / "other",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert codes == [0, 0, 0, 0, 0, 0, 0, Exit.NOT_PATCHED] and bad.returncode == Exit.NOT_FOUND
    assert outside() == before
    assert not any((world / "tmp").iterdir()) and not any((world / "xdg").iterdir())


def test_damaged_backup_store(tree, cli, state_home):
    """A damaged copy of an original is recovered from the store's git history; with the history gone
    too, revert stops with exit 10 and changes nothing."""
    root = tree(OLD)
    before = snapshot(root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    copy = next(state_home.rglob("originals/nn/tasks.py"))
    copy.write_bytes(b"garbage")
    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == before

    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    patched = snapshot(root)
    store = copy.parents[2]
    copy.write_bytes(b"garbage")
    shutil.rmtree(store / ".git")
    result = cli("revert", "--target", root)
    assert result.exit_code == Exit.STORE, result.output
    assert "missing or damaged" in result.output and "force-reinstall" not in result.output  # not a pip install
    assert "restore ultralytics/nn/tasks.py from your own copy" in " ".join(result.output.split())
    assert snapshot(root) == patched


def test_yaml_name_that_collides_with_a_users_file(tree, cli):
    root = tree(LATEST)
    mine = root / "ultralytics/cfg/models/rt-detr/rtdetr-MobileNetV3.yaml"
    mine.write_text("# my own experiment\nnc: 3\n", encoding="utf-8")
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.CONFLICT, result.output
    assert "rtdetr-MobileNetV3.yaml" in result.output and "not overwritten" in result.output
    assert snapshot(root) == before


def test_damaged_original_of_a_later_file_stops_revert_before_any_write(tree, cli, state_home):
    """8.0.x changes three files: a damaged backup of the last one must stop revert before the first write."""
    root = tree(OLD)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    patched = snapshot(root)
    store = next(state_home.rglob("manifest.json")).parent
    (store / "originals/nn/modules/block.py").write_bytes(b"garbage")
    shutil.rmtree(store / ".git")
    assert cli("revert", "--target", root).exit_code == Exit.STORE
    assert snapshot(root) == patched
    assert cli("check", "--target", root, "--static").exit_code == 0  # still a whole, recorded patch
