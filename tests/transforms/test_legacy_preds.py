"""Before/after cases of legacy-head-preds: the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import HEADS_BEFORE, assert_before_after, assert_missing, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.legacy_preds import LegacyHeadPreds

from rtdetr_patch import patches

PREDS_AFTER = HEADS_BEFORE.replace(
    "        return self.criterion(preds, batch)\n\n\nclass DetectionModel",
    "        return self.criterion(rtdetr_patch_preds(self.model[-1], preds), batch)\n\n\nclass DetectionModel",
).replace("output = self.forward(x)", "output = rtdetr_patch_preds(self.model[-1], self.forward(x))")


def test_legacy_head_preds_before_after_not_needed_and_missing():
    assert PREDS_AFTER.count("rtdetr_patch_preds(self.model[-1], ") == 2  # WorldModel.loss keeps its own
    assert_before_after(LegacyHeadPreds, HEADS_BEFORE, PREDS_AFTER)
    assert LegacyHeadPreds.RELEASES[0] == (8, 4, 0) and LegacyHeadPreds in patches.ALL
    # up to 8.3 the probe reads the maps themselves: not needed, and the file is left as it is
    old = (
        HEADS_BEFORE.replace("                output = self.forward(x)\n", "")
        .replace('output["one2many"]', "output[0]")
        .replace('return output["feats"]', "return self.forward(x)")
    )
    assert "output = self.forward(x)" not in old and '"feats"' not in old
    code, outcome = transform(LegacyHeadPreds, old)
    assert outcome is Outcome.NOT_NEEDED and code == old
    no_loss = HEADS_BEFORE.replace(
        "return self.criterion(preds, batch)\n\n\nclass DetectionModel",
        "return self.criterion(batch, preds)\n\n\nclass DetectionModel",
    )
    assert_missing(LegacyHeadPreds, no_loss, "BaseModel.loss")
