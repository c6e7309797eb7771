"""Before/after cases of decoder-anchors (TensorBoard's trace under inference mode, 8.3.206+): the transform on small
sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing, src, transform
from rtdetr_patch.patches import Outcome
from rtdetr_patch.patches.decoder_anchors import DecoderAnchors

DECODER_BEFORE = src("""
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
""")
DECODER_AFTER = DECODER_BEFORE.replace(
    "if self.dynamic or self.shapes != shapes:\n",
    "if self.dynamic or self.shapes != shapes or (self.anchors.is_inference() and not "
    "torch.is_inference_mode_enabled()):  # rtdetr-patch: anchors cached under inference mode are rebuilt to train\n",
)
DECODER_UNCACHED = src("""
    class RTDETRDecoder(nn.Module):
        def _get_decoder_input(self, feats, shapes, dn_embed=None, dn_bbox=None):
            bs = feats.shape[0]
            anchors, valid_mask = self._generate_anchors(shapes, dtype=feats.dtype, device=feats.device)
            return self.enc_output(valid_mask * feats), anchors
""")


def test_decoder_anchors():
    assert DECODER_AFTER != DECODER_BEFORE
    assert_before_after(DecoderAnchors, DECODER_BEFORE, DECODER_AFTER)


def test_decoder_anchors_not_needed_where_the_release_builds_them_every_call():
    code, outcome = transform(DecoderAnchors, DECODER_UNCACHED)
    assert outcome is Outcome.NOT_NEEDED and code == DECODER_UNCACHED


def test_decoder_anchors_missing():
    assert_missing(
        DecoderAnchors,
        DECODER_BEFORE.replace("self._generate_anchors", "self._make_anchors"),
        "RTDETRDecoder._get_decoder_input",
    )
    elsewhere = DECODER_BEFORE.replace("class RTDETRDecoder", "class OtherDecoder")
    assert_missing(DecoderAnchors, elsewhere, "RTDETRDecoder._get_decoder_input")


def test_decoder_anchors_rebuilds_only_what_inference_mode_cached():
    """The patched test, run: anchors cached under inference mode are rebuilt for a pass with autograd (so a
    backward can save them), anchors cached outside it are reused as before (the same tensor object)."""
    import torch

    ns = {"torch": torch, "nn": torch.nn}
    exec(DECODER_AFTER, ns)  # the transform's own output

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
