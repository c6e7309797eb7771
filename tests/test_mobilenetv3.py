"""Tests for templates/Addmodules/MobileNetV3.py (loaded by file path; CPU only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "Addmodules" / "MobileNetV3.py"


def _load_template():
    spec = importlib.util.spec_from_file_location("rtdetr_patch_template_mobilenetv3", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MobileNetV3 = _load_template().MobileNetV3
TV = {"small": torchvision.models.mobilenet_v3_small, "large": torchvision.models.mobilenet_v3_large}
CHANNELS = {"small": [16, 24, 48, 576], "large": [24, 40, 112, 960]}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {v: MobileNetV3(v).eval() for v in ("small", "large")}


@pytest.mark.parametrize("variant,expected", [("small", 927_008), ("large", 2_971_952)])
def test_param_count_matches_torchvision(models, variant, expected):
    assert n_params(models[variant]) == expected
    assert n_params(TV[variant]().features) == expected


def test_default_variant_is_small(models):
    m = MobileNetV3()
    assert m.variant == "small" and m.width == 1.0
    assert n_params(m) == n_params(models["small"])
    assert list(m.state_dict()) == list(TV["small"]().features.state_dict(prefix="features."))


@pytest.mark.parametrize("variant", ["small", "large"])
@pytest.mark.parametrize("size", [(640, 640), (320, 320), (256, 384)])
def test_outputs_strides_and_channels(models, variant, size):
    m = models[variant]
    h, w = size
    with torch.no_grad():
        outs = m(torch.zeros(1, 3, h, w))
    assert isinstance(outs, list) and len(outs) == 4
    assert [o.shape[1] for o in outs] == CHANNELS[variant] == m.width_list
    for out, r in zip(outs, m.reductions):
        assert tuple(out.shape[2:]) == (h // r, w // r)
    assert m.reductions == [4, 8, 16, 32]


@pytest.mark.parametrize("variant", ["small", "large"])
def test_outputs_are_last_block_of_each_stride(models, variant):
    """P2-P5 must equal torchvision's features at the last block of each stride."""
    m, x = models[variant], torch.randn(1, 3, 128, 96)
    ref, taps = x, {}
    with torch.no_grad():
        outs = m(x)
        for i, block in enumerate(m.features):
            ref = block(ref)
            taps.setdefault(ref.shape[-1], []).append((i, ref))
    expected = [taps[96 // r][-1][1] for r in (4, 8, 16, 32)]
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp)
    assert torch.equal(outs[-1], ref)  # P5 is the final 1x1 conv


def test_build_runs_no_forward(monkeypatch):
    calls = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda mod, args: calls.append(type(mod)))
    monkeypatch.setattr(MobileNetV3, "forward", lambda self, x: pytest.fail("forward called while building"))
    try:
        small, large = MobileNetV3("small"), MobileNetV3("large", 0.75)
    finally:
        handle.remove()
    assert calls == []
    assert small.width_list == CHANNELS["small"]
    assert len(large.width_list) == 4


def test_width_multiplier_075():
    m = MobileNetV3("small", 0.75).eval()
    tv = TV["small"](width_mult=0.75).features
    assert n_params(m) == n_params(tv)
    with torch.no_grad():
        outs = m(torch.zeros(1, 3, 160, 224))
    assert [o.shape[1] for o in outs] == m.width_list == [16, 24, 40, 432]
    assert [tuple(o.shape[2:]) for o in outs] == [(160 // r, 224 // r) for r in (4, 8, 16, 32)]


def test_case_insensitive_variant():
    assert MobileNetV3("LARGE").width_list == CHANNELS["large"]


def _random_checkpoint(variant: str, **kw) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    model = TV[variant](**kw)
    for name, buf in model.named_buffers():  # make BN statistics non-default so loading is observable
        if buf.is_floating_point():
            buf.uniform_(0.5, 1.5)
    return model.state_dict()


@pytest.mark.parametrize("wrap", [None, "state_dict", "model", "features_only"])
def test_pretrained_full_key_match(tmp_path, wrap):
    sd = _random_checkpoint("small")
    payload = {k: v for k, v in sd.items() if k.startswith("features.")} if wrap == "features_only" else sd
    if wrap in ("state_dict", "model"):
        payload = {wrap: payload, "epoch": 3}
    path = tmp_path / "mnv3_small.pth"
    torch.save(payload, path)

    m = MobileNetV3("small", 1.0, str(path))
    own = m.state_dict()
    feats = {k: v for k, v in sd.items() if k.startswith("features.")}
    assert set(own) == set(feats)
    for k, v in feats.items():
        assert torch.equal(own[k], v), k


def test_pretrained_large_and_outputs_match_torchvision(tmp_path):
    torch.manual_seed(5)
    tv = TV["large"]().eval()
    path = tmp_path / "large.pt"
    torch.save(tv.state_dict(), path)
    m = MobileNetV3("large", pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x)[-1], tv.features(x))


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError) as e:
        MobileNetV3("small", 1.0, str(missing))
    msg = str(e.value)
    assert str(missing) in msg and "small" in msg and "not found" in msg


def test_wrong_variant_large_into_small(tmp_path):
    path = tmp_path / "large.pth"
    torch.save(_random_checkpoint("large"), path)
    with pytest.raises(ValueError) as e:
        MobileNetV3("small", 1.0, str(path))
    msg = str(e.value)
    assert str(path) in msg and "MobileNetV3-small" in msg
    assert "looks like MobileNetV3-large" in msg and "960" in msg
    assert "shape mismatches" in msg and "unexpected keys" in msg
    assert "Set the variant to 'large'" in msg


def test_wrong_variant_small_into_large(tmp_path):
    path = tmp_path / "small.pth"
    torch.save(_random_checkpoint("small"), path)
    with pytest.raises(ValueError) as e:
        MobileNetV3("large", 1.0, str(path))
    msg = str(e.value)
    assert "MobileNetV3-large" in msg and "looks like MobileNetV3-small" in msg and "missing keys" in msg
    assert "13 feature blocks" in msg and "Set the variant to 'small'" in msg


def test_wrong_width(tmp_path):
    path = tmp_path / "small075.pth"
    torch.save(_random_checkpoint("small", width_mult=0.75), path)
    with pytest.raises(ValueError, match=r"width ~0\.75"):
        MobileNetV3("small", 1.0, str(path))


def test_unmatched_keys(tmp_path):
    sd = _random_checkpoint("small")
    sd.pop("features.3.block.0.0.weight")
    sd["backbone.extra.weight"] = torch.zeros(1)
    path = tmp_path / "odd.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError) as e:
        MobileNetV3("small", 1.0, str(path))
    msg = str(e.value)
    assert str(path) in msg and "small" in msg
    assert "missing keys: features.3.block.0.0.weight" in msg
    assert "unexpected keys: backbone.extra.weight" in msg


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "junk.pth"
    torch.save({"foo": [1, 2, 3]}, path)
    with pytest.raises(ValueError, match="state_dict"):
        MobileNetV3("small", 1.0, str(path))


def test_weights_name_for_other_variant():
    with pytest.raises(ValueError, match="another variant"):
        MobileNetV3("small", 1.0, "MobileNet_V3_Large_Weights.IMAGENET1K_V1")


def test_unknown_weights_name():
    with pytest.raises(ValueError, match="IMAGENET1K_V9"):
        MobileNetV3("small", 1.0, "IMAGENET1K_V9")


@pytest.mark.parametrize("variant", ["medium", "", None, 3])
def test_bad_variant(variant):
    with pytest.raises(ValueError) as e:
        MobileNetV3(variant)
    assert "variant" in str(e.value) and "'small' or 'large'" in str(e.value)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), float("inf")])
def test_bad_width_value(width):
    with pytest.raises(ValueError, match="width must be > 0"):
        MobileNetV3("small", width)


@pytest.mark.parametrize("width", ["wide", None, True, [1.0]])
def test_bad_width_type(width):
    with pytest.raises(ValueError, match="width must be a number"):
        MobileNetV3("small", width)
