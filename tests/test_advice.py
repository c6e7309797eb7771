"""Advice that never destroys a user's work (issue 25): a reinstall is offered only where pip put the package."""

from __future__ import annotations

import pytest
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.install.locate import REQUIRED_FILES, Install, check_supported, start_again


def _tree(root, dist_info: bool) -> Install:
    package = root / "ultralytics"
    for rel in REQUIRED_FILES:
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text("", encoding="utf-8")
    if dist_info:
        (root / "ultralytics-8.3.9.dist-info").mkdir()
    return Install(package=package, release="8.3.9", python="python", how="test")


@pytest.mark.parametrize("dist_info", [True, False])
def test_a_missing_rtdetr_folder_is_mended_by_a_reinstall_only_where_pip_installed_it(tmp_path, dist_info):
    with pytest.raises(PatchError) as refused:
        check_supported(_tree(tmp_path, dist_info))
    assert refused.value.code is Exit.UNSUPPORTED and "cfg/models/rt-detr is missing" in refused.value.message
    hint = refused.value.hint
    assert ("force-reinstall" in hint) is dist_info  # a fork's checkout is never told to reinstall over itself
    if not dist_info:
        assert "git checkout -- ultralytics/cfg/models/rt-detr" in hint and f"adopt --from {tmp_path}" in hint
    assert hint.endswith("Nothing was written.")


@pytest.mark.parametrize("dist_info", [True, False])
def test_starting_again_is_a_reinstall_only_where_pip_installed_the_package(tmp_path, dist_info):
    """Every "start again" hint (a hand-edited install apply refuses, a transform that finds an edited file, a
    backup lost): a reinstall, said to discard the edits, for a pip install; never over a checkout or a fork."""
    install = _tree(tmp_path, dist_info)
    hint = start_again(install, "nn/tasks.py")
    assert ("force-reinstall" in hint) is dist_info
    if dist_info:
        assert "discards every edit" in hint
    else:
        assert "git checkout -- ultralytics/nn/tasks.py" in hint and f"adopt --from {tmp_path}" in hint


@pytest.mark.parametrize("dist_info", [True, False])
def test_adopt_in_place_takes_a_fork_without_ultralytics_rtdetr_yamls_whole(tmp_path, dist_info):
    """A fork that deleted cfg/models/rt-detr is adopted in place as it is (adopt adds the folder, revert removes
    it); a pip install missing it is still refused (its release is broken: a reinstall mends it)."""
    install = _tree(tmp_path, dist_info)
    if dist_info:
        with pytest.raises(PatchError) as refused:
            check_supported(install, adopting=True)
        assert "force-reinstall" in refused.value.hint
    else:
        check_supported(install, adopting=True)  # no error
        with pytest.raises(PatchError):
            check_supported(install)  # apply, check, revert: as before
