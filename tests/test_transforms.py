"""What every transform shares: each one names what it looked for when its target is missing, the same
failures seen through the CLI (nothing written), and CRLF line endings and a UTF-8 BOM (patched files keep
them, and revert gives back the bytes). Each transform's own before/after cases are in
``tests/transforms/test_<module>.py``, one file per module of ``patches/``.
"""

from __future__ import annotations

import re

from conftest import LATEST, OLD, snapshot
from helpers import HEADS_BEFORE, assert_missing
from rtdetr_patch.patcher.errors import Exit
from rtdetr_patch.patches import MARK
from rtdetr_patch.patches.legacy_preds import LegacyHeadPreds
from rtdetr_patch.patches.restricted_layers import RestrictedLayers
from rtdetr_patch.patches.safe_load import SafeLoadAllow

from rtdetr_patch import patches


def test_every_transform_reports_what_it_looked_for():
    for cls in patches.ALL:
        assert cls.LOOKED_FOR and cls.NAME and cls.FILE and cls.BLOG_STEP
        # safe-load is "not needed" without _SafeLoad; with the class but not its shape, the target is missing
        code = {
            SafeLoadAllow: "class _SafeLoad:\n    pass\n",
            RestrictedLayers: "def parse_model(d):\n    restricted = False\n",
            LegacyHeadPreds: HEADS_BEFORE.replace("output = self.forward(x)", "output = x"),
        }.get(cls, "x = 1\n")
        message = assert_missing(cls, code)
        assert message.startswith(cls.LOOKED_FOR)


# -- the same failures through the CLI --------------------------------------------------------------
def test_cli_missing_target_names_transform_file_release(tree, cli, state_home, memo_plans):
    root = tree(LATEST)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    data = tasks.read_bytes()
    assert data.count(b"\ndef parse_model(") == 1
    tasks.write_bytes(data.replace(b"\ndef parse_model(", b"\ndef parse_model_renamed("))
    before = snapshot(root)
    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.TRANSFORM, result.output
    flat = " ".join(result.output.split())
    assert "'parse-model'" in flat
    assert str(tasks) in flat
    assert f"Ultralytics {LATEST}" in flat
    assert "def parse_model(...)" in flat
    assert "Nothing was written" in flat
    assert snapshot(root) == before
    assert not (root / "ultralytics" / "nn" / "Addmodules").exists()
    assert not list(state_home.rglob("manifest.json"))


def test_cli_partly_hand_patched_parse_model_is_refused(tree, cli, state_home, memo_plans):
    root = tree(LATEST)
    assert cli("apply", "--target", root, "--no-verify").exit_code == Exit.OK
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    text = tasks.read_text(encoding="utf-8")
    ch_update = re.search(
        r"^( +)if backbone_built:  # rtdetr-patch: each backbone output.*\n"
        r"\1    ch\.extend\(c2\)\n\1    c2 = c2\[-1\]\n\1else:\n\1    ch\.append\(c2\)\n",
        text,
        re.M,
    )
    assert ch_update is not None
    tasks.write_text(text.replace(ch_update.group(0), f"{ch_update.group(1)}ch.append(c2)\n"), encoding="utf-8")
    before = snapshot(root)
    manifest = next(state_home.rglob("manifest.json")).read_bytes()

    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.TRANSFORM, result.output
    flat = " ".join(result.output.split())
    assert "partly patched" in flat and "'parse-model'" in flat and str(tasks) in flat
    assert snapshot(root) == before
    assert next(state_home.rglob("manifest.json")).read_bytes() == manifest


# -- CRLF and BOM ---------------------------------------------------------------------------------
CRLF_FILES = ("nn/tasks.py", "utils/torch_utils.py", "nn/modules/block.py")


def bare_lf(data: bytes) -> int:
    return len(re.findall(rb"(?<!\r)\n", data))


def test_crlf_files_stay_crlf_and_revert_byte_for_byte(tree, cli, memo_plans):
    root = tree(OLD)  # an 8.0.x release: tasks-import, parse-model, get-flops and repc3 all patch here
    package = root / "ultralytics"
    for rel in CRLF_FILES:
        data = (package / rel).read_bytes()
        assert b"\r" not in data
        (package / rel).write_bytes(data.replace(b"\n", b"\r\n"))
    before = snapshot(root)

    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.OK, result.output
    after = snapshot(root)
    changed = [rel for rel in CRLF_FILES if after[f"ultralytics/{rel}"] != before[f"ultralytics/{rel}"]]
    assert changed == list(CRLF_FILES)
    for rel in CRLF_FILES:
        data = (package / rel).read_bytes()
        assert bare_lf(data) == 0, rel
        assert b"\r\r" not in data, rel
    assert b"rtdetr-patch" in (package / "nn" / "tasks.py").read_bytes()
    assert cli("check", "--target", root, "--static").exit_code == Exit.OK

    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert snapshot(root) == before


def test_bom_is_kept_and_reverted(tree, cli, memo_plans):
    root = tree(OLD)
    tasks = root / "ultralytics" / "nn" / "tasks.py"
    pristine = tasks.read_bytes()
    assert not pristine.startswith(b"\xef\xbb\xbf")
    tasks.write_bytes(b"\xef\xbb\xbf" + pristine)
    before = snapshot(root)

    result = cli("apply", "--target", root, "--no-verify")
    assert result.exit_code == Exit.OK, result.output
    data = tasks.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and not data.startswith(b"\xef\xbb\xbf" * 2)
    assert data.count(b"\xef\xbb\xbf") == 1
    compile(data, str(tasks), "exec")
    assert MARK.encode() in data
    assert cli("check", "--target", root, "--static").exit_code == Exit.OK

    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert snapshot(root) == before
    assert tasks.read_bytes() == b"\xef\xbb\xbf" + pristine
