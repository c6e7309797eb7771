"""Before/after cases of get-flops (blog step 4.9): the transform on small sources shaped like the real code."""

from __future__ import annotations

import textwrap

from helpers import assert_before_after, assert_missing, src, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.get_flops import GetFlopsRealSize

FLOPS_BEFORE = src('''
    def get_flops(model, imgsz=640):
        """Return a YOLO model's FLOPs."""
        try:
            model = de_parallel(model)
            p = next(model.parameters())
            stride = max(int(model.stride.max()), 32) if hasattr(model, 'stride') else 32  # max stride
            im = torch.empty((1, p.shape[1], stride, stride), device=p.device)  # input image in BCHW format
            flops = thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1E9 * 2 if thop else 0  # stride GFLOPs
            imgsz = imgsz if isinstance(imgsz, list) else [imgsz, imgsz]  # expand if int/float
            return flops * imgsz[0] / stride * imgsz[1] / stride  # 640x640 GFLOPs
        except Exception:
            return 0


    def get_flops_with_torch_profiler(model, imgsz=640):
        try:
            pass
        except Exception:
            return 0
''')
FLOPS_AFTER = FLOPS_BEFORE.replace(
    """    except Exception:
        return 0


def get_flops_with""",
    """    except Exception:
        try:  # rtdetr-patch: the stride-sized probe fails for RT-DETR, profile at the real image size (blog step 4.9)
            imgsz = imgsz if isinstance(imgsz, list) else [imgsz, imgsz]  # expand if int/float
            im = torch.empty((1, p.shape[1], *imgsz), device=p.device)  # input image in BCHW format
            return thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1e9 * 2  # imgsz GFLOPs
        except Exception:
            return 0


def get_flops_with""",
)
FLOPS_81 = src('''
    def get_flops(model, imgsz=640):
        """Return a YOLO model's FLOPs."""
        if not thop:
            return 0.0  # if not installed return 0.0 GFLOPs

        try:
            model = de_parallel(model)
            p = next(model.parameters())
            try:
                stride = max(int(model.stride.max()), 32) if hasattr(model, "stride") else 32
                im = torch.empty((1, p.shape[1], stride, stride), device=p.device)
                flops = thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1e9 * 2
                return flops * imgsz[0] / stride * imgsz[1] / stride
            except Exception:
                im = torch.empty((1, p.shape[1], *imgsz), device=p.device)  # input image in BCHW format
                return thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1e9 * 2  # imgsz GFLOPs
        except Exception:
            return 0
''')


def test_get_flops():
    assert FLOPS_AFTER != FLOPS_BEFORE
    assert_before_after(GetFlopsRealSize, FLOPS_BEFORE, FLOPS_AFTER)


def test_get_flops_not_needed_from_81():
    code, outcome = transform(GetFlopsRealSize, FLOPS_81)
    assert outcome is Outcome.NOT_NEEDED and code == FLOPS_81


def test_get_flops_missing():
    no_func = FLOPS_BEFORE.replace("def get_flops(model", "def get_gflops(model")
    assert_missing(GetFlopsRealSize, no_func, "get_flops", "try:")
    no_try = src("""
        def get_flops(model, imgsz=640):
            return 0
    """)
    assert_missing(GetFlopsRealSize, no_try, "get_flops")
    method = "class Profiler:\n" + textwrap.indent(FLOPS_BEFORE, "    ")
    assert_missing(GetFlopsRealSize, method, "module function get_flops")
