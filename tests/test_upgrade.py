"""An install patched by an earlier rtdetr-patch: `check` says so, `apply` replaces that patch, `revert` undoes it.

The earlier patch is reproduced from what 0.1.0 wrote and keyed on: ``s = 640`` in the stride probe
(blog step 4.8 applied to every model) and the record's ``tool`` field. The record is rewritten to
hold those bytes, as 0.1.0's would.
"""

from __future__ import annotations

import hashlib
import json

from conftest import LATEST, snapshot
from rtdetr_patch.patcher.errors import Exit

from rtdetr_patch import __version__

NEW_PROBE = b"s = rtdetr_patch_probe_size(self.model, 256)  # 2x min stride"
OLD_PROBE = b"s = 640  # 2x min stride"


def make_old_patch(root, state_home) -> bytes:
    """Turn a fresh patch into the shape an earlier release left, record included; returns tasks.py's bytes."""
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    data = tasks.read_bytes()
    assert data.count(NEW_PROBE) == 1
    old = data.replace(NEW_PROBE, OLD_PROBE)
    tasks.write_bytes(old)
    manifest_path = next(state_home.rglob("manifest.json"))
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["tool"] = "0.1.0"
    for entry in manifest["files"]:
        if entry["path"] == "nn/tasks.py":
            entry["patched_sha256"] = hashlib.sha256(old).hexdigest()
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    return old


def test_apply_replaces_an_earlier_release_patch(tree, cli, state_home):
    root = tree(LATEST)
    pristine = snapshot(root)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    current = snapshot(root)
    old = make_old_patch(root, state_home)

    checked = cli("check", "--target", root, "--static")
    assert checked.exit_code == Exit.NOT_PATCHED, checked.output
    flat = " ".join(checked.output.split())
    assert "written by rtdetr-patch 0.1.0" in flat and "rtdetr-patch apply" in flat

    dry = cli("apply", "--target", root, "--no-verify", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would be replaced" in dry.output and "rtdetr_patch_probe_size" in dry.output
    assert (root / "ultralytics" / "nn" / "tasks.py").read_bytes() == old  # a dry run writes nothing

    upgraded = cli("apply", "--target", root, "--no-verify")
    assert upgraded.exit_code == 0, upgraded.output
    assert "rtdetr-patch 0.1.0" in upgraded.output and __version__ in upgraded.output
    assert snapshot(root) == current  # exactly what this release writes on a pristine install
    assert cli("check", "--target", root, "--static").exit_code == 0
    manifest = json.loads(next(state_home.rglob("manifest.json")).read_text(encoding="utf-8"))
    assert manifest["tool"] == __version__

    assert cli("revert", "--target", root).exit_code == 0
    assert snapshot(root) == pristine


def test_an_earlier_patch_edited_by_hand_is_not_replaced(tree, cli, state_home):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    make_old_patch(root, state_home)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    tasks.write_bytes(tasks.read_bytes() + b"\n# my own edit\n")
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.CHANGED, result.output
    assert "changed since apply" in " ".join(result.output.split())
    assert snapshot(root) == before
