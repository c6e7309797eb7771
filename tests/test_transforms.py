"""Before/after unit tests of each transform on small sources shaped like the real code, the
errors when a target is missing, and the same failures seen through the CLI (nothing written).
Also CRLF line endings and a UTF-8 BOM: patched files keep them, and revert gives back the bytes.
"""

from __future__ import annotations

import re
import textwrap

import libcst as cst
import pytest

from rtdetr_patch import patches
from rtdetr_patch.patches.safe_load import SafeLoadAllow
from rtdetr_patch.patches import MARK, Outcome, TargetMissing
from rtdetr_patch.patches.decoder_anchors import DecoderAnchors
from rtdetr_patch.patches.get_flops import GetFlopsRealSize
from rtdetr_patch.patches.iou_loss import DetrBoxIou, IouLossChoice, YoloBoxIou
from rtdetr_patch.patches.layer_loops import LayerLoops
from rtdetr_patch.patches.legacy_preds import LegacyHeadPreds
from rtdetr_patch.patches.parse_model import ParseModelBackbones
from rtdetr_patch.patches.registered_heads import RegisteredHeads
from rtdetr_patch.patches.repc3 import RepC3Expansion
from rtdetr_patch.patches.restricted_layers import RestrictedLayers
from rtdetr_patch.patches.stride_probe import StrideProbe
from rtdetr_patch.patches.tasks_import import TasksImport
from rtdetr_patch.patches.val_rect import ValRect

from conftest import LATEST, OLD, snapshot
from test_releases import memo_plans  # noqa: F401  (fixture: plan each distinct file once per session)
from rtdetr_patch.patcher.errors import Exit


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def transform(cls, code: str) -> tuple[str, Outcome]:
    module, outcome = cls().run(cst.parse_module(code))
    return module.code, outcome


def assert_before_after(cls, before: str, after: str) -> None:
    """Pristine -> PATCHED with exactly ``after``; ``after`` -> APPLIED and unchanged."""
    code, outcome = transform(cls, before)
    assert outcome is Outcome.PATCHED
    assert code == after
    compile(code, cls.NAME, "exec")
    again, outcome = transform(cls, after)
    assert outcome is Outcome.APPLIED
    assert again == after


def assert_missing(cls, code: str, *words: str) -> str:
    with pytest.raises(TargetMissing) as info:
        transform(cls, code)
    message = info.value.looked_for
    assert str(info.value) == message
    for word in words:
        assert word in message, (word, message)
    return message


# -- stride-probe (blog step 4.8) ------------------------------------------------------------------
STRIDE_BEFORE = src('''
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
''')
STRIDE_AFTER = STRIDE_BEFORE.replace("s = 256  # 2x min stride", "s = rtdetr_patch_probe_size(self.model, 256)  # 2x min stride")


def test_stride_probe():
    assert STRIDE_AFTER.count("s = 256") == 1  # the other class keeps its own
    assert_before_after(StrideProbe, STRIDE_BEFORE, STRIDE_AFTER)


def test_stride_probe_missing():
    code = src('''
        class SegmentationModel(DetectionModel):
            def __init__(self):
                s = 256
    ''')
    message = assert_missing(StrideProbe, code, "s = 256", "DetectionModel.__init__")
    assert message == StrideProbe.LOOKED_FOR


def test_stride_probe_unknown_size_is_refused():
    assert_missing(StrideProbe, STRIDE_BEFORE.replace("s = 256", "s = 320"), "DetectionModel.__init__")


# -- val-rect (blog step 4.10, opt-in) ----------------------------------------------------------------
VAL_BEFORE = src('''
    class DetectionTrainer(BaseTrainer):
        def build_dataset(self, img_path, mode="train", batch=None):
            gs = max(int(de_parallel(self.model).stride.max() if self.model else 0), 32)
            return build_yolo_dataset(self.args, img_path, batch, self.data, mode=mode, rect=mode == "val", stride=gs)

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            return build_dataloader(dataset, batch_size, workers, shuffle, rank, rect=mode == "val")
''')
VAL_AFTER = src('''
    class DetectionTrainer(BaseTrainer):
        def build_dataset(self, img_path, mode="train", batch=None):
            gs = max(int(de_parallel(self.model).stride.max() if self.model else 0), 32)
            return build_yolo_dataset(self.args, img_path, batch, self.data, mode=mode, rect=False, stride=gs)

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            return build_dataloader(dataset, batch_size, workers, shuffle, rank, rect=mode == "val")
''')


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


# -- decoder-anchors (TensorBoard's trace under inference mode, 8.3.206+) ----------------------------
DECODER_BEFORE = src('''
    class RTDETRDecoder(nn.Module):
        shapes = []
        anchors = torch.empty(0)
        dynamic = False

        def _get_decoder_input(self, feats, shapes, dn_embed=None, dn_bbox=None):
            bs = feats.shape[0]
            if self.dynamic or self.shapes != shapes:
                self.anchors, self.valid_mask = self._generate_anchors(shapes, feats)
                self.shapes = shapes
            features = self.enc_output(self.valid_mask * feats)
            return features, self.anchors
''')
DECODER_AFTER = DECODER_BEFORE.replace(
    "if self.dynamic or self.shapes != shapes:\n",
    "if self.dynamic or self.shapes != shapes or (self.anchors.is_inference() and not "
    "torch.is_inference_mode_enabled()):  # rtdetr-patch: anchors cached under inference mode are rebuilt to train\n")
DECODER_UNCACHED = src('''
    class RTDETRDecoder(nn.Module):
        def _get_decoder_input(self, feats, shapes, dn_embed=None, dn_bbox=None):
            bs = feats.shape[0]
            anchors, valid_mask = self._generate_anchors(shapes, dtype=feats.dtype, device=feats.device)
            return self.enc_output(valid_mask * feats), anchors
''')


def test_decoder_anchors():
    assert DECODER_AFTER != DECODER_BEFORE
    assert_before_after(DecoderAnchors, DECODER_BEFORE, DECODER_AFTER)


def test_decoder_anchors_not_needed_where_the_release_builds_them_every_call():
    code, outcome = transform(DecoderAnchors, DECODER_UNCACHED)
    assert outcome is Outcome.NOT_NEEDED and code == DECODER_UNCACHED


def test_decoder_anchors_missing():
    assert_missing(DecoderAnchors, DECODER_BEFORE.replace("self._generate_anchors", "self._make_anchors"),
                   "RTDETRDecoder._get_decoder_input")
    elsewhere = DECODER_BEFORE.replace("class RTDETRDecoder", "class OtherDecoder")
    assert_missing(DecoderAnchors, elsewhere, "RTDETRDecoder._get_decoder_input")


def test_decoder_anchors_rebuilds_only_what_inference_mode_cached():
    """The patched test, run: anchors cached under inference mode are rebuilt for a pass with autograd (so a
    backward can save them), anchors cached outside it are reused as before (the same tensor object)."""
    import torch
    ns = {"torch": torch, "nn": torch.nn}
    exec(DECODER_AFTER, ns)  # noqa: S102 - the transform's own output

    class Decoder(ns["RTDETRDecoder"]):
        built = 0

        def _generate_anchors(self, shapes, feats):
            Decoder.built += 1
            return torch.ones(1, 4, 4), torch.ones(1, 4, 1)

        def enc_output(self, x):
            return x

    decoder, feats, shapes = Decoder(), torch.ones(1, 4, 1, requires_grad=True), [[2, 2]]
    with torch.inference_mode():
        decoder._get_decoder_input(feats.detach(), shapes)
    assert Decoder.built == 1 and decoder.anchors.is_inference()
    out, anchors = decoder._get_decoder_input(feats, shapes)  # with autograd: rebuilt
    assert Decoder.built == 2 and not anchors.is_inference()
    out.sum().backward()  # what failed before: "Inference tensors cannot be saved for backward"
    cached = decoder.anchors
    decoder._get_decoder_input(feats, shapes)
    assert Decoder.built == 2 and decoder.anchors is cached  # an ordinary cache is reused, as the release does


# -- repc3-expansion (blog 5.1) --------------------------------------------------------------------
REPC3_BEFORE = src('''
    class C3(nn.Module):
        def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c2, 1, 1)
            self.cv2 = Conv(c1, c2, 1, 1)


    class RepC3(nn.Module):
        """Rep C3."""

        def __init__(self, c1, c2, n=3, e=1.0):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c2, 1, 1)
            self.cv2 = Conv(c1, c2, 1, 1)
            self.m = nn.Sequential(*[RepConv(c_, c_) for _ in range(n)])
            self.cv3 = Conv(c_, c2, 1, 1) if c_ != c2 else nn.Identity()
''')
REPC3_AFTER = src('''
    class C3(nn.Module):
        def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c2, 1, 1)
            self.cv2 = Conv(c1, c2, 1, 1)


    class RepC3(nn.Module):
        """Rep C3."""

        def __init__(self, c1, c2, n=3, e=1.0):
            super().__init__()
            c_ = int(c2 * e)  # hidden channels
            self.cv1 = Conv(c1, c_, 1, 1)  # rtdetr-patch: hidden width c_ (expansion honoured)
            self.cv2 = Conv(c1, c_, 1, 1)  # rtdetr-patch: hidden width c_ (expansion honoured)
            self.m = nn.Sequential(*[RepConv(c_, c_) for _ in range(n)])
            self.cv3 = Conv(c_, c2, 1, 1) if c_ != c2 else nn.Identity()
''')


def test_repc3():
    assert_before_after(RepC3Expansion, REPC3_BEFORE, REPC3_AFTER)


def test_repc3_not_needed_when_upstream_fixed():
    fixed = REPC3_BEFORE.replace("self.cv1 = Conv(c1, c2, 1, 1)\n        self.cv2 = Conv(c1, c2, 1, 1)\n        self.m",
                                 "self.cv1 = Conv(c1, c_, 1, 1)\n        self.cv2 = Conv(c1, c_, 1, 1)\n        self.m")
    assert fixed != REPC3_BEFORE
    code, outcome = transform(RepC3Expansion, fixed)
    assert outcome is Outcome.NOT_NEEDED and code == fixed


def test_repc3_missing():
    only_c3 = REPC3_BEFORE.split("\n\n\nclass RepC3")[0] + "\n"
    assert_missing(RepC3Expansion, only_c3, "self.cv1 = Conv(c1, ...)", "RepC3.__init__")
    no_cv2 = REPC3_BEFORE.replace("        self.cv2 = Conv(c1, c2, 1, 1)\n        self.m", "        self.m")
    assert no_cv2.count("self.cv2") == REPC3_BEFORE.count("self.cv2") - 1
    assert_missing(RepC3Expansion, no_cv2, "self.cv2 = Conv(c1, ...)", "RepC3.__init__")


def test_repc3_half_fixed_is_refused():
    half = REPC3_AFTER.replace("self.cv2 = Conv(c1, c_, 1, 1)  # rtdetr-patch: hidden width c_ (expansion honoured)",
                               "self.cv2 = Conv(c1, c2, 1, 1)")
    assert_missing(RepC3Expansion, half, "RepC3.__init__", "hand-edited")


# -- get-flops (blog step 4.9) -------------------------------------------------------------------------
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
FLOPS_AFTER = FLOPS_BEFORE.replace('''    except Exception:
        return 0


def get_flops_with''', '''    except Exception:
        try:  # rtdetr-patch: the stride-sized probe fails for RT-DETR, profile at the real image size (blog step 4.9)
            imgsz = imgsz if isinstance(imgsz, list) else [imgsz, imgsz]  # expand if int/float
            im = torch.empty((1, p.shape[1], *imgsz), device=p.device)  # input image in BCHW format
            return thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1e9 * 2  # imgsz GFLOPs
        except Exception:
            return 0


def get_flops_with''')
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
    no_try = src('''
        def get_flops(model, imgsz=640):
            return 0
    ''')
    assert_missing(GetFlopsRealSize, no_try, "get_flops")
    method = "class Profiler:\n" + textwrap.indent(FLOPS_BEFORE, "    ")
    assert_missing(GetFlopsRealSize, method, "module function get_flops")


# -- tasks-import (blog step 4.3) ----------------------------------------------------------------------
IMPORT_BEFORE = src('''
    # Ultralytics YOLO, AGPL-3.0 license

    import contextlib
    from copy import deepcopy

    import torch
    import torch.nn as nn

    from ultralytics.nn.modules import (C1, C2, Conv, Detect)

    try:
        import thop
    except ImportError:
        thop = None


    class BaseModel(nn.Module):
        pass


    import late
''')
IMPORT_AFTER = IMPORT_BEFORE.replace(
    "from ultralytics.nn.modules import (C1, C2, Conv, Detect)\n",
    "from ultralytics.nn.modules import (C1, C2, Conv, Detect)\n"
    "from ultralytics.nn.Addmodules import *  # noqa: F403  rtdetr-patch: added backbones (blog step 4.3)\n")


def test_tasks_import():
    assert IMPORT_AFTER != IMPORT_BEFORE
    assert_before_after(TasksImport, IMPORT_BEFORE, IMPORT_AFTER)


def test_tasks_import_missing():
    code = src('''
        """No imports before the first class."""


        class BaseModel:
            pass


        import torch
    ''')
    assert_missing(TasksImport, code, "import statements before the first class or function")


# -- layer-loops (blog step 4.7) -----------------------------------------------------------------------
LOOPS_BEFORE = src('''
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
''')
LOOPS_AFTER = src('''
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
''')


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
    assert_missing(LayerLoops, base_patched + rtdetr_pristine, "some loops are patched", "BaseModel._predict_once",
                   "hand-edited")


# -- parse-model (blog step 4.4-4.6) ---------------------------------------------------------------------
PARSE_BEFORE = src('''
    def parse_model(d, ch, verbose=True):
        """Parse a YOLO model.yaml dictionary into a PyTorch model."""
        nc, act, scales = (d.get(x) for x in ("nc", "activation", "scales"))
        ch = [ch]
        layers, save, c2 = [], [], ch[-1]  # layers, savelist, ch out
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            m = getattr(torch.nn, m[3:]) if "nn." in m else globals()[m]  # get module
            n = n_ = max(round(n * depth), 1) if n > 1 else n  # depth gain
            if m in {Conv, C2f, RepC3}:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
            elif m is Concat:
                c2 = sum(ch[x] for x in f)
            else:
                c2 = ch[f]

            m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)  # module
            t = str(m)[8:-2].replace("__main__.", "")  # module type
            m_.np = sum(x.numel() for x in m_.parameters())  # number params
            m_.i, m_.f, m_.type = i, f, t  # attach index, 'from' index, type
            save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)  # append to savelist
            layers.append(m_)
            if i == 0:
                ch = []
            ch.append(c2)
        return nn.Sequential(*layers), sorted(save)
''')
PARSE_AFTER = src('''
    def parse_model(d, ch, verbose=True):
        """Parse a YOLO model.yaml dictionary into a PyTorch model."""
        nc, act, scales = (d.get(x) for x in ("nc", "activation", "scales"))
        ch = [ch]
        layers, save, c2 = [], [], ch[-1]  # layers, savelist, ch out
        backbone_shift = 0  # rtdetr-patch: index shift added by list-returning backbones (blog step 4.4)
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            m = getattr(torch.nn, m[3:]) if "nn." in m else globals()[m]  # get module
            n = n_ = max(round(n * depth), 1) if n > 1 else n  # depth gain
            backbone_built = m in RTDETR_PATCH_BACKBONES  # rtdetr-patch: this row builds a registered backbone (blog step 4.4)
            if m in {Conv, C2f, RepC3}:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
            elif m is Concat:
                c2 = sum(ch[x] for x in f)
            elif backbone_built:  # rtdetr-patch: a backbone that returns a list of feature maps (blog step 4.5)
                m_ = m(*args)
                m_.backbone = True
                c2 = rtdetr_patch_channels(m_)  # one channel entry per output, padded to five (blog step 4.6)
                backbone_shift += len(c2) - 1
            else:
                c2 = ch[f]

            if not backbone_built:  # rtdetr-patch: the backbone was built above (blog step 4.6)
                m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)  # module
            t = str(m)[8:-2].replace("__main__.", "")  # module type
            m_.np = sum(x.numel() for x in m_.parameters())  # number params
            m_.i, m_.f, m_.type = i + backbone_shift, f, t  # attach index, 'from' index, type
            save.extend(x % (i + backbone_shift) for x in ([f] if isinstance(f, int) else f) if x != -1)  # append to savelist
            layers.append(m_)
            if i == 0:
                ch = []
            if backbone_built:  # rtdetr-patch: each backbone output takes one index (blog step 4.6)
                ch.extend(c2)
                c2 = c2[-1]
            else:
                ch.append(c2)
        return nn.Sequential(*layers), sorted(save)
''')


def test_parse_model():
    assert_before_after(ParseModelBackbones, PARSE_BEFORE, PARSE_AFTER)


def test_parse_model_plain_if_else_chain():
    before = PARSE_BEFORE.replace('''        elif m is Concat:
            c2 = sum(ch[x] for x in f)
''', "")
    code, outcome = transform(ParseModelBackbones, before)
    assert outcome is Outcome.PATCHED
    assert re.search(r"args = \[c1, c2, \*args\[1:\]\]\n        elif backbone_built:  # rtdetr-patch", code)
    assert transform(ParseModelBackbones, code) == (code, Outcome.APPLIED)


@pytest.mark.parametrize("drop, words", [
    ("        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)  # append to savelist\n",
     ("`save.extend(...)`", "parse_model")),
    ("        m_.i, m_.f, m_.type = i, f, t  # attach index, 'from' index, type\n", ("`m_.i, m_.f, m_.type = ...`",)),
    ("        ch.append(c2)\n", ("`ch.append(c2)`",)),
    ("        else:\n            c2 = ch[f]\n", ("the module-type if/elif chain ending in `else: c2 = ch[f]`",)),
])
def test_parse_model_missing_piece(drop, words):
    assert drop in PARSE_BEFORE
    assert_missing(ParseModelBackbones, PARSE_BEFORE.replace(drop, ""), *words)


def test_parse_model_missing_function():
    message = assert_missing(ParseModelBackbones, PARSE_BEFORE.replace("def parse_model(", "def parse_yaml("),
                             "def parse_model(...)")
    assert message == ParseModelBackbones.LOOKED_FOR


def test_parse_model_save_without_modulo():
    code = PARSE_BEFORE.replace("save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)",
                                "save.extend(x for x in ([f] if isinstance(f, int) else f) if x != -1)")
    assert_missing(ParseModelBackbones, code, "`x % i`", "save.extend")


@pytest.mark.parametrize("undo, words", [
    (("        if backbone_built:  # rtdetr-patch: each backbone output takes one index (blog step 4.6)\n"
      "            ch.extend(c2)\n            c2 = c2[-1]\n        else:\n            ch.append(c2)\n",
      "        ch.append(c2)\n"), "shift, flag, branch, guard, attach, save already present"),
    (("    backbone_shift = 0  # rtdetr-patch: index shift added by list-returning backbones (blog step 4.4)\n", ""),
     "flag, branch, guard, attach, save, ch already present"),
])
def test_parse_model_partly_patched_is_refused(undo, words):
    old, new = undo
    assert old in PARSE_AFTER
    assert_missing(ParseModelBackbones, PARSE_AFTER.replace(old, new), "partly patched", words, "hand-edited")


def test_every_transform_reports_what_it_looked_for():
    for cls in patches.ALL:
        assert cls.LOOKED_FOR and cls.NAME and cls.FILE and cls.BLOG_STEP
        # safe-load is "not needed" without _SafeLoad; with the class but not its shape, the target is missing
        code = {SafeLoadAllow: "class _SafeLoad:\n    pass\n",
                RestrictedLayers: "def parse_model(d):\n    restricted = False\n",
                LegacyHeadPreds: HEADS_BEFORE.replace("output = self.forward(x)", "output = x")}.get(cls, "x = 1\n")
        message = assert_missing(cls, code)
        assert message.startswith(cls.LOOKED_FOR)


SAFE_BEFORE = """\
class _SafeLoad:
    @classmethod
    def _build(cls):
        allow = []
        allow += [int]
        return {e: e for e in allow}
"""
SAFE_AFTER = """\
class _SafeLoad:
    @classmethod
    def _build(cls):
        allow = []
        allow += [int]
        allow += rtdetr_patch_safe_globals(allow)  # rtdetr-patch: the classes a checkpoint of an added backbone holds
        return {e: e for e in allow}
"""


def test_safe_load_before_after_and_not_needed():
    new, outcome = SafeLoadAllow().run(cst.parse_module(SAFE_BEFORE))
    assert outcome is Outcome.PATCHED and new.code == SAFE_AFTER
    again, outcome = SafeLoadAllow().run(cst.parse_module(SAFE_AFTER))
    assert outcome is Outcome.APPLIED and again.code == SAFE_AFTER
    plain = "class DetectionModel:\n    pass\n"
    same, outcome = SafeLoadAllow().run(cst.parse_module(plain))
    assert outcome is Outcome.NOT_NEEDED and same.code == plain


RESTRICTED_BEFORE = """\
def parse_model(d, ch, verbose=True):
    restricted = _SafeLoad.restricted()
    for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
        m = globals()[m]
        if restricted and not (isinstance(m, type) and issubclass(m, torch.nn.Module)):
            # Under restricted loading, only known model layers may be named here.
            raise TypeError(f"module '{m}' is not a permitted model layer under restricted loading.")
"""


def test_restricted_layers_before_after_and_not_needed():
    after = RESTRICTED_BEFORE.replace(
        "torch.nn.Module)):\n",
        "torch.nn.Module)) and m not in RTDETR_PATCH_BACKBONES and m not in RTDETR_PATCH_MODULES:  # rtdetr-patch: "
        "registered backbones and modules may be factories (blog step 5.2)\n")
    assert_before_after(RestrictedLayers, RESTRICTED_BEFORE, after)
    plain = RESTRICTED_BEFORE.replace("    restricted = _SafeLoad.restricted()\n", "").replace("restricted and ", "")
    same, outcome = RestrictedLayers().run(cst.parse_module(plain))
    assert outcome is Outcome.NOT_NEEDED and same.code == plain
    # a `restricted` check elsewhere (a method, not parse_model) is not touched
    method = "class A:\n    def parse_model(self):\n" + textwrap.indent(RESTRICTED_BEFORE.split("\n", 1)[1], "    ")
    same, outcome = RestrictedLayers().run(cst.parse_module(method))
    assert outcome is Outcome.NOT_NEEDED and same.code == method


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
    ch_update = re.search(r"^( +)if backbone_built:  # rtdetr-patch: each backbone output.*\n"
                          r"\1    ch\.extend\(c2\)\n\1    c2 = c2\[-1\]\n\1else:\n\1    ch\.append\(c2\)\n", text, re.M)
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


# -- parse-model-modules and fuse-deploy -----------------------------------------------------------
MODULES_BEFORE = """\
def parse_model(d, ch, verbose=True):
    for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
        if m in {Conv, C2f}:
            c1, c2 = ch[f], args[0]
        elif m is Concat:
            c2 = sum(ch[x] for x in f)
        else:
            c2 = ch[f]
        m_ = m(*args)
        ch.append(c2)
"""


def test_parse_model_modules_before_after_and_missing():
    from rtdetr_patch.patches import ParseModelModules

    after = MODULES_BEFORE.replace(
        "        else:\n            c2 = ch[f]\n",
        "        elif m in RTDETR_PATCH_MODULES:  # rtdetr-patch: a module registered with `--module FILE.py:NAME[=RULE]`,"
        " by its channel rule\n"
        "            c2, args, n = rtdetr_patch_module_args(m, i, f, n, args, ch, nc, width, max_channels)\n"
        "        else:\n            c2 = ch[f]\n")
    assert_before_after(ParseModelModules, MODULES_BEFORE, after)
    no_else = MODULES_BEFORE.replace("        else:\n            c2 = ch[f]\n", "")
    assert_missing(ParseModelModules, no_else, "chain ending in `else: c2 = ch[f]`")


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
        "        return self")
    assert after != before
    assert_before_after(FuseDeploy, before, after)
    assert after.count("rtdetr_patch_deploy") == 1  # `other` is not touched
    assert_missing(FuseDeploy, before.replace("self.model.modules()", "self.modules()"), "BaseModel.fuse")


# -- registered-heads and legacy-head-preds ----------------------------------------------------------
HEADS_BEFORE = src('''
    class BaseModel(nn.Module):
        def _apply(self, fn):
            self = super()._apply(fn)
            m = self.model[-1]  # Detect()
            if isinstance(
                m, Detect
            ):  # includes all Detect subclasses
                m.stride = fn(m.stride)
            return self

        def loss(self, batch, preds=None):
            if preds is None:
                preds = self.forward(batch["img"])
            return self.criterion(preds, batch)


    class DetectionModel(BaseModel):
        def __init__(self, cfg="yolov8n.yaml", ch=3, nc=None, verbose=True):
            m = self.model[-1]  # Detect()
            if isinstance(m, (Detect, Segment)):
                s = 256  # 2x min stride

                def _forward(x):
                    output = self.forward(x)
                    if "one2many" in output:
                        output = output["one2many"]
                    return output["feats"]

                m.stride = torch.tensor([s / x.shape[-2] for x in _forward(torch.zeros(1, ch, s, s))])


    class WorldModel(DetectionModel):
        def loss(self, batch, preds=None):
            return self.criterion(preds, batch)


    def guess_model_task(model):
        def cfg2task(cfg):
            """Guess from YAML dictionary."""
            m = cfg["head"][-1][-2].lower()  # output module name
            if "detect" in m:
                return "detect"

        for m in model.modules():
            if isinstance(m, Segment):
                return "segment"
            elif isinstance(m, (Detect, WorldDetect)):
                return "detect"
''')
HEADS_AFTER = (HEADS_BEFORE
               .replace("        ):  # includes", "        ) or rtdetr_patch_is_head(m):  # includes")
               .replace("if isinstance(m, (Detect, Segment)):", "if isinstance(m, (Detect, Segment)) or rtdetr_patch_is_head(m):")
               .replace("elif isinstance(m, (Detect, WorldDetect)):",
                        "elif isinstance(m, (Detect, WorldDetect)) or rtdetr_patch_is_head(m):")
               .replace('            return "detect"\n\n',
                        '            return "detect"\n        if rtdetr_patch_is_head(m):\n            return "detect"\n\n'))
PREDS_AFTER = (HEADS_BEFORE
               .replace("        return self.criterion(preds, batch)\n\n\nclass DetectionModel",
                        "        return self.criterion(rtdetr_patch_preds(self.model[-1], preds), batch)\n\n\n"
                        "class DetectionModel")
               .replace("output = self.forward(x)", "output = rtdetr_patch_preds(self.model[-1], self.forward(x))"))


def test_registered_heads_before_after_and_missing():
    assert HEADS_AFTER.count("rtdetr_patch_is_head(m)") == 4 and "isinstance(m, Segment):" in HEADS_AFTER
    assert_before_after(RegisteredHeads, HEADS_BEFORE, HEADS_AFTER)
    no_apply = HEADS_BEFORE.replace("m, Detect\n", "m, Segment\n")
    assert_missing(RegisteredHeads, no_apply, "not found in: BaseModel._apply")
    no_cfg2task = HEADS_BEFORE.replace("def cfg2task(cfg):", "def cfg_to_task(cfg):")
    assert_missing(RegisteredHeads, no_cfg2task, "not found in: guess_model_task.cfg2task")
    half = HEADS_AFTER.replace("elif isinstance(m, (Detect, WorldDetect)) or rtdetr_patch_is_head(m):",
                               "elif isinstance(m, (Detect, WorldDetect)):")
    assert_missing(RegisteredHeads, half, "found it both patched and unpatched")


def test_legacy_head_preds_before_after_not_needed_and_missing():
    assert PREDS_AFTER.count("rtdetr_patch_preds(self.model[-1], ") == 2  # WorldModel.loss keeps its own
    assert_before_after(LegacyHeadPreds, HEADS_BEFORE, PREDS_AFTER)
    assert LegacyHeadPreds.RELEASES[0] == (8, 4, 0) and LegacyHeadPreds in patches.ALL
    # up to 8.3 the probe reads the maps themselves: not needed, and the file is left as it is
    old = HEADS_BEFORE.replace('                output = self.forward(x)\n', "").replace(
        'output["one2many"]', "output[0]").replace('return output["feats"]', "return self.forward(x)")
    assert "output = self.forward(x)" not in old and '"feats"' not in old
    code, outcome = transform(LegacyHeadPreds, old)
    assert outcome is Outcome.NOT_NEEDED and code == old
    no_loss = HEADS_BEFORE.replace("return self.criterion(preds, batch)\n\n\nclass DetectionModel",
                                   "return self.criterion(batch, preds)\n\n\nclass DetectionModel")
    assert_missing(LegacyHeadPreds, no_loss, "BaseModel.loss")


# -- iou-loss-choice, iou-loss-yolo, iou-loss-detr (the model yaml's iou_loss) ------------------------------------
IOU_TASKS_BEFORE = src('''
    class DetectionModel(BaseModel):
        def init_criterion(self):
            """Initialize the loss criterion."""
            return v8DetectionLoss(self)


    class RTDETRDetectionModel(DetectionModel):
        def init_criterion(self):
            from ultralytics.models.utils.loss import RTDETRDetectionLoss

            return RTDETRDetectionLoss(nc=self.nc, use_vfl=True)


    def parse_model(d, ch, verbose=True):
        """Parse a model yaml."""
        import ast
''')
IOU_TASKS_AFTER = (IOU_TASKS_BEFORE
                   .replace("return v8DetectionLoss(self)", "return rtdetr_patch_criterion(self, v8DetectionLoss(self))")
                   .replace("return RTDETRDetectionLoss(nc=self.nc, use_vfl=True)",
                            "return rtdetr_patch_criterion(self, RTDETRDetectionLoss(nc=self.nc, use_vfl=True))")
                   .replace('"""Parse a model yaml."""\n',
                            '"""Parse a model yaml."""\n    rtdetr_patch_iou_loss(d)  # rtdetr-patch: the yaml\'s iou_loss is '
                            'checked when the model is built\n'))
YOLO_LOSS_BEFORE = src('''
    class BboxLoss(nn.Module):
        def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask):
            weight = target_scores.sum(-1)[fg_mask].unsqueeze(-1)
            iou = bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True)
            loss_iou = ((1.0 - iou) * weight).sum() / target_scores_sum


    class RotatedBboxLoss(BboxLoss):
        def forward(self, pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask):
            iou = probiou(pred_bboxes[fg_mask], target_bboxes[fg_mask])
''')
YOLO_LOSS_AFTER = YOLO_LOSS_BEFORE.replace(
    "iou = bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True)\n",
    'iou = (bbox_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], xywh=False, CIoU=True) if getattr(self, '
    '"rtdetr_patch_iou", None) is None else self.rtdetr_patch_iou(pred_bboxes[fg_mask], target_bboxes[fg_mask], '
    'xywh=False, release=bbox_iou, anchors=anchor_points, fg=fg_mask))  # rtdetr-patch: the model yaml\'s iou_loss, '
    'if any\n')
DETR_LOSS_BEFORE = src('''
    class DETRLoss(nn.Module):
        def _get_loss_bbox(self, pred_bboxes, gt_bboxes, postfix=""):
            loss = {}
            loss[name_giou] = 1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)
            return loss

        def _get_loss_class(self, scores, gt_bboxes, pred_bboxes):
            gt_scores = bbox_iou(pred_bboxes.detach(), gt_bboxes, xywh=True, GIoU=True)
''')
DETR_LOSS_AFTER = DETR_LOSS_BEFORE.replace(
    "loss[name_giou] = 1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)\n",
    'loss[name_giou] = 1.0 - (bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True) if getattr(self, '
    '"rtdetr_patch_iou", None) is None else self.rtdetr_patch_iou(pred_bboxes, gt_bboxes, xywh=True, '
    'release=bbox_iou, size=1.0))  # rtdetr-patch: the model yaml\'s iou_loss, if any\n')


@pytest.mark.parametrize(("cls", "before", "after"), [
    (IouLossChoice, IOU_TASKS_BEFORE, IOU_TASKS_AFTER),
    (YoloBoxIou, YOLO_LOSS_BEFORE, YOLO_LOSS_AFTER),
    (DetrBoxIou, DETR_LOSS_BEFORE, DETR_LOSS_AFTER),  # the matcher-side bbox_iou of another method is left alone
])
def test_iou_loss_transforms(cls, before, after):
    assert_before_after(cls, before, after)


def test_iou_loss_transforms_missing():
    assert_missing(IouLossChoice, IOU_TASKS_BEFORE.replace("def parse_model", "def build_model"), "parse_model")
    assert_missing(YoloBoxIou, YOLO_LOSS_BEFORE.replace("class BboxLoss", "class BoxLoss"), "CIoU=True", "BboxLoss.forward")
    assert_missing(DetrBoxIou, DETR_LOSS_BEFORE.replace("def _get_loss_bbox", "def _bbox_loss"), "_get_loss_bbox")
    half = IOU_TASKS_AFTER.replace("return rtdetr_patch_criterion(self, v8DetectionLoss(self))", "return v8DetectionLoss(self)")
    assert_missing(IouLossChoice, half, "hand-edited")


@pytest.mark.parametrize(("cls", "code"), [
    (YoloBoxIou, YOLO_LOSS_BEFORE.replace("CIoU=True)", "WIoU=True)")),  # a fork's own loss, chosen by a flag
    (DetrBoxIou, DETR_LOSS_BEFORE.replace("1.0 - bbox_iou(pred_bboxes, gt_bboxes, xywh=True, GIoU=True)",
                                          "my_loss(pred_bboxes, gt_bboxes)")),
])
def test_iou_loss_leaves_a_box_term_edited_by_hand(cls, code):
    """The series' forks edit exactly this line: theirs is kept (not needed), the apply goes on."""
    assert cls.KEEPS_EDITS
    assert transform(cls, code) == (code, Outcome.NOT_NEEDED)
