"""Before/after cases of stride-probe (blog step 4.8): the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing, src
from rtdetr_patch.patches.stride_probe import StrideProbe

STRIDE_BEFORE = src("""
    class DetectionModel(BaseModel):
        def __init__(self, cfg="yolov8n.yaml", ch=3, nc=None, verbose=True):
            super().__init__()
            m = self.model[-1]  # Detect()
            if isinstance(m, Detect):
                s = 256  # 2x min stride
                m.inplace = self.inplace
                m.stride = torch.tensor([s / x.shape[-2] for x in self.forward(torch.zeros(1, ch, s, s))])


    class SegmentationModel(DetectionModel):
        def __init__(self):
            s = 256
""")
STRIDE_AFTER = STRIDE_BEFORE.replace(
    "s = 256  # 2x min stride", "s = rtdetr_patch_probe_size(self.model, 256)  # 2x min stride"
)


def test_stride_probe():
    assert STRIDE_AFTER.count("s = 256") == 1  # the other class keeps its own
    assert_before_after(StrideProbe, STRIDE_BEFORE, STRIDE_AFTER)


def test_stride_probe_missing():
    code = src("""
        class SegmentationModel(DetectionModel):
            def __init__(self):
                s = 256
    """)
    message = assert_missing(StrideProbe, code, "s = 256", "DetectionModel.__init__")
    assert message == StrideProbe.LOOKED_FOR


def test_stride_probe_unknown_size_is_refused():
    assert_missing(StrideProbe, STRIDE_BEFORE.replace("s = 256", "s = 320"), "DetectionModel.__init__")
