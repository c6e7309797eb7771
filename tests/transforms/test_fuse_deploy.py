"""Before/after cases of fuse-deploy: the transform on small sources shaped like the real code."""

from __future__ import annotations

import pytest
from helpers import assert_before_after, assert_missing

FUSE_BEFORE = """\
class BaseModel:
    def fuse(self, verbose=True):
        \"\"\"Fuse.\"\"\"
        if not self.is_fused():
            for m in self.model.modules():
                pass
        return self

    def other(self):
        for m in self.model.modules():
            pass
"""


@pytest.mark.parametrize("guard", ["if not self.is_fused():", "if True:"])
def test_fuse_deploy_before_after_and_missing(guard):
    from rtdetr_patch.patches import FuseDeploy

    before = FUSE_BEFORE.replace("if not self.is_fused():", guard)
    after = before.replace(
        f"        {guard}\n            for m in self.model.modules():\n                pass\n        return self",
        f"        {guard}\n            rtdetr_patch_deploy(self.model)  # rtdetr-patch: switch_to_deploy() of the added "
        "modules (re-parameterised, folded BN)\n            for m in self.model.modules():\n                pass\n"
        "        return self",
    )
    assert after != before
    assert_before_after(FuseDeploy, before, after)
    assert after.count("rtdetr_patch_deploy") == 1  # `other` is not touched
    assert_missing(FuseDeploy, before.replace("self.model.modules()", "self.modules()"), "BaseModel.fuse")
