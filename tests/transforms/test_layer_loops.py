"""Before/after cases of layer-loops (blog step 4.7): the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing, src
from rtdetr_patch.patches.layer_loops import LayerLoops

LOOPS_BEFORE = src("""
    class BaseModel(nn.Module):
        def _predict_once(self, x, profile=False, visualize=False):
            y, dt = [], []  # outputs
            for m in self.model:
                if m.f != -1:  # if not from previous layer
                    x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]  # from earlier layers
                if profile:
                    self._profile_one_layer(m, x, dt)
                x = m(x)  # run
                y.append(x if m.i in self.save else None)  # save output
                if visualize:
                    feature_visualization(x, m.type, m.i, save_dir=visualize)
            return x

        def fuse(self):
            for m in self.model.modules():
                y.append(x if m.i in self.save else None)


    class RTDETRDetectionModel(DetectionModel):
        def predict(self, x, profile=False, visualize=False, batch=None, augment=False):
            y, dt = [], []  # outputs
            for m in self.model[:-1]:  # except the head part
                if m.f != -1:  # if not from previous layer
                    x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]  # from earlier layers
                x = m(x)  # run

                y.append(x if m.i in self.save else None)  # save output
            head = self.model[-1]
            x = head([y[j] for j in head.f], batch)  # head inference
            return x
""")
LOOPS_AFTER = src("""
    class BaseModel(nn.Module):
        def _predict_once(self, x, profile=False, visualize=False):
            y, dt = [], []  # outputs
            for m in self.model:
                if m.f != -1:  # if not from previous layer
                    x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]  # from earlier layers
                if profile:
                    self._profile_one_layer(m, x, dt)
                x = m(x)  # run
                if getattr(m, "backbone", False):  # rtdetr-patch: keep each output of a list-returning backbone (blog step 4.7)
                    x = rtdetr_patch_outputs(x, y, self.save)
                else:
                    y.append(x if m.i in self.save else None)  # save output
                if visualize:
                    feature_visualization(x, m.type, m.i, save_dir=visualize)
            return x

        def fuse(self):
            for m in self.model.modules():
                y.append(x if m.i in self.save else None)


    class RTDETRDetectionModel(DetectionModel):
        def predict(self, x, profile=False, visualize=False, batch=None, augment=False):
            y, dt = [], []  # outputs
            for m in self.model[:-1]:  # except the head part
                if m.f != -1:  # if not from previous layer
                    x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]  # from earlier layers
                x = m(x)  # run

                if getattr(m, "backbone", False):  # rtdetr-patch: keep each output of a list-returning backbone (blog step 4.7)
                    x = rtdetr_patch_outputs(x, y, self.save)
                else:
                    y.append(x if m.i in self.save else None)  # save output
            head = self.model[-1]
            x = head([y[j] for j in head.f], batch)  # head inference
            return x
""")


def test_layer_loops():
    assert_before_after(LayerLoops, LOOPS_BEFORE, LOOPS_AFTER)


def test_layer_loops_missing_rtdetr_predict():
    base_only = LOOPS_BEFORE.split("\n\n\nclass RTDETRDetectionModel")[0] + "\n"
    message = assert_missing(LayerLoops, base_only, "RTDETRDetectionModel.predict", "y.append(x if m.i in self.save")
    assert "not found in RTDETRDetectionModel.predict" in message
    assert "BaseModel._predict_once)" not in message


def test_layer_loops_half_patched_is_refused():
    base_patched = LOOPS_AFTER.split("\n\n\nclass RTDETRDetectionModel")[0]
    rtdetr_pristine = "\n\n\nclass RTDETRDetectionModel" + LOOPS_BEFORE.split("\n\n\nclass RTDETRDetectionModel")[1]
    assert_missing(
        LayerLoops, base_patched + rtdetr_pristine, "some loops are patched", "BaseModel._predict_once", "hand-edited"
    )
