"""Before/after cases of val-rect (blog step 4.10, opt-in): the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing, src, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.val_rect import ValRect

from rtdetr_patch import patches

VAL_BEFORE = src("""
    class DetectionTrainer(BaseTrainer):
        def build_dataset(self, img_path, mode="train", batch=None):
            gs = max(int(de_parallel(self.model).stride.max() if self.model else 0), 32)
            return build_yolo_dataset(self.args, img_path, batch, self.data, mode=mode, rect=mode == "val", stride=gs)

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            return build_dataloader(dataset, batch_size, workers, shuffle, rank, rect=mode == "val")
""")
VAL_AFTER = src("""
    class DetectionTrainer(BaseTrainer):
        def build_dataset(self, img_path, mode="train", batch=None):
            gs = max(int(de_parallel(self.model).stride.max() if self.model else 0), 32)
            return build_yolo_dataset(self.args, img_path, batch, self.data, mode=mode, rect=False, stride=gs)

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            return build_dataloader(dataset, batch_size, workers, shuffle, rank, rect=mode == "val")
""")


def test_val_rect():
    assert ValRect.OPTION == "val_rect_fix" and "val_rect_fix" in patches.OPTIONS
    assert ValRect not in patches.selected() and ValRect in patches.selected({"val_rect_fix"})
    assert_before_after(ValRect, VAL_BEFORE, VAL_AFTER)


def test_val_rect_single_quotes():
    before = VAL_BEFORE.replace('rect=mode == "val", stride', "rect=mode == 'val', stride")
    code, outcome = transform(ValRect, before)
    assert outcome is Outcome.PATCHED and code == VAL_AFTER


def test_val_rect_missing():
    code = VAL_BEFORE.replace("class DetectionTrainer", "class SegmentationTrainer")
    assert_missing(ValRect, code, "rect=mode == 'val'", "DetectionTrainer.build_dataset")
