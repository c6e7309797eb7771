"""MobileNetV3 backbone that returns a list of multi-scale feature maps (for RT-DETR).

Design
------
* Paper-exact configurations. The layers are torchvision's ``mobilenet_v3_small`` /
  ``mobilenet_v3_large`` ``.features`` (Howard et al., "Searching for MobileNetV3",
  Tables 1 and 2), built with ``width_mult=width`` and without weights, so nothing is
  downloaded. They are kept as ``self.features``; state-dict keys are therefore
  ``features.N...`` exactly as in torchvision's ImageNet checkpoints.
* Stride-selected outputs. ``forward`` returns ``[P2, P3, P4, P5]`` (strides 4, 8, 16, 32):
  for each stride the output of the *last* block running at that stride. P5 is the final
  1x1 conv (576 channels small / 960 large at width 1.0).
* ``width_list`` without a forward pass. Each block's stride and output channels are read
  from its ``nn.Conv2d`` layers (product of strides, ``out_channels`` of the last conv),
  so building the module runs no forward pass and works on any device.
* ``pretrained`` loads a local torchvision checkpoint (full classifier model or just
  ``features.*``; optionally wrapped under ``'state_dict'`` / ``'model'``) or a torchvision
  weights name such as ``"IMAGENET1K_V1"`` (downloaded by torchvision where online).
  Every ``features.*`` key must match; ``classifier.*`` is ignored.

YAML usage: ``[-1, 1, MobileNetV3, []]``, ``[-1, 1, MobileNetV3, [large]]``,
``[-1, 1, MobileNetV3, [small, 0.75]]``, ``[-1, 1, MobileNetV3, [small, 1.0, weights.pth]]``.
"""

from __future__ import annotations

import math
import os
import re
from numbers import Real
from typing import Any

import torch
import torch.nn as nn

__all__ = ["MobileNetV3"]

# torchvision is imported when a MobileNetV3 is built, never when Ultralytics imports this file.
_BUILDERS = {"small": "mobilenet_v3_small", "large": "mobilenet_v3_large"}
_WEIGHT_ENUMS = {"small": "MobileNet_V3_Small_Weights", "large": "MobileNet_V3_Large_Weights"}
_LAST_CONV = {"small": 576, "large": 960}  # final 1x1 conv channels at width 1.0
_NUM_BLOCKS = {13: "small", 17: "large"}  # len(features) -> variant
_WEIGHTS_NAME = re.compile(r"^(MobileNet_V3_(Small|Large)_Weights\.)?(IMAGENET\w*|DEFAULT)$", re.IGNORECASE)


class MobileNetV3(nn.Module):
    """MobileNetV3-Small/-Large feature extractor returning ``[P2, P3, P4, P5]``.

    Args:
        variant: ``"small"`` (default) or ``"large"``.
        width: width multiplier (> 0); channels are rounded to multiples of 8 as in the paper.
        pretrained: optional local checkpoint path or torchvision weights name.
    """

    def __init__(self, variant: str = "small", width: float = 1.0, pretrained: str | os.PathLike | None = None):
        super().__init__()
        if not isinstance(variant, str) or variant.lower() not in _BUILDERS:
            raise ValueError(f"MobileNetV3: unknown variant {variant!r}; expected 'small' or 'large'.")
        if isinstance(width, bool) or not isinstance(width, Real):
            raise ValueError(f"MobileNetV3: width must be a number (e.g. 1.0 or 0.75), got {width!r}.")
        if not (width > 0 and math.isfinite(width)):
            raise ValueError(f"MobileNetV3: width must be > 0 and finite, got {width!r}.")
        self.variant, self.width = variant.lower(), float(width)
        import torchvision.models

        builder = getattr(torchvision.models, _BUILDERS[self.variant])
        self.features = builder(weights=None, width_mult=self.width).features

        # Stride and channels of every block, read from the layer configuration (no forward pass).
        stride, strides, channels = 1, [], []
        for block in self.features:
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
            for conv in convs:
                stride *= conv.stride[0]
            strides.append(stride)
            channels.append(convs[-1].out_channels)
        self.out_indices = [max(i for i, s in enumerate(strides) if s == r) for r in self.reductions]
        self.width_list = [channels[i] for i in self.out_indices]

        if pretrained:
            self.load_pretrained(pretrained)

    @property
    def reductions(self) -> list[int]:
        """Strides of the returned feature maps (like timm's ``feature_info.reduction()``)."""
        return [4, 8, 16, 32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.out_indices:
                outputs.append(x)
            if i == self.out_indices[-1]:
                break
        return outputs

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, width={self.width}, width_list={self.width_list}"

    def switch_to_deploy(self) -> None:
        """Fold each batch norm into the convolution before it (``model.fuse()``: predict, val, export)."""
        from .ResNet import fold_batch_norm

        for seq in self.modules():
            if isinstance(seq, nn.Sequential) and len(seq) > 1 and isinstance(seq[0], nn.Conv2d) \
                    and isinstance(seq[1], nn.BatchNorm2d):
                seq[0], seq[1] = fold_batch_norm(seq[0], seq[1]), nn.Identity()

    # ------------------------------------------------------------------ weights
    def load_pretrained(self, pretrained: str | os.PathLike) -> None:
        """Load ``features.*`` weights from a local file or a torchvision weights name."""
        source = os.fspath(pretrained)
        if os.path.isfile(source):
            try:
                ckpt = torch.load(source, map_location="cpu", weights_only=True)
            except Exception as e:  # corrupt file or pickled objects other than tensors
                raise ValueError(
                    f"MobileNetV3-{self.variant}: could not read weights file '{source}' ({e}). "
                    "Save a state_dict with torch.save(model.state_dict(), path)."
                ) from e
            self._load_state(self._extract_state_dict(ckpt, source), source)
        elif _WEIGHTS_NAME.match(source):
            self._load_state(self._download(source), source)
        else:
            raise FileNotFoundError(
                f"MobileNetV3-{self.variant}: weights file '{source}' not found. Pass an existing path to a "
                f"torchvision MobileNetV3-{self.variant} checkpoint, a torchvision weights name such as "
                f"'IMAGENET1K_V1', or leave pretrained empty for random init."
            )

    def _download(self, name: str) -> dict[str, torch.Tensor]:
        import torchvision.models

        enum_name = _WEIGHT_ENUMS[self.variant]
        if "." in name and name.split(".")[0].lower() != enum_name.lower():
            raise ValueError(
                f"MobileNetV3-{self.variant}: weights '{name}' are for another variant; use "
                f"'{enum_name}.<NAME>' or build the matching variant."
            )
        enum = getattr(torchvision.models, enum_name)
        try:
            weights = enum[name.split(".")[-1].upper()]
        except KeyError:
            raise ValueError(
                f"MobileNetV3-{self.variant}: unknown torchvision weights '{name}'; "
                f"available: {[w.name for w in enum]}."
            ) from None
        try:
            return weights.get_state_dict(progress=True)
        except Exception as e:
            raise RuntimeError(
                f"MobileNetV3-{self.variant}: could not download torchvision weights '{name}' ({e}). "
                f"Download {weights.url} on an online machine and pass its local path as pretrained."
            ) from e

    def _extract_state_dict(self, ckpt: Any, source: str) -> dict[str, torch.Tensor]:
        for key in ("state_dict", "model"):
            if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
        if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            raise ValueError(
                f"MobileNetV3-{self.variant}: '{source}' does not hold a state_dict of tensors "
                "(expected keys 'features.*', optionally under 'state_dict' or 'model')."
            )
        return {k[7:] if k.startswith("module.") else k: v for k, v in ckpt.items()}

    @staticmethod
    def _describe(sd: dict[str, torch.Tensor]) -> tuple[str | None, str]:
        """Guess (variant, description) of a ``features.*`` state dict: block count and last conv width."""
        idx = {int(k.split(".")[1]) for k in sd if re.match(r"features\.\d+\.", k)}
        if not idx:
            return None, "no MobileNetV3 'features.*' keys"
        n, variant = max(idx) + 1, _NUM_BLOCKS.get(max(idx) + 1)
        if variant is None:
            return None, f"an unknown model with {n} feature blocks"
        last = sd.get(f"features.{n - 1}.0.weight")
        if last is None:
            return variant, f"MobileNetV3-{variant} ({n} feature blocks)"
        c = int(last.shape[0])
        return variant, f"MobileNetV3-{variant} ({n} feature blocks, last conv {c} channels, width ~{c / _LAST_CONV[variant]:g})"

    def _load_state(self, sd: dict[str, torch.Tensor], source: str) -> None:
        own = self.state_dict()
        feats = {k: v for k, v in sd.items() if k.startswith("features.")}
        unexpected = [k for k in sd if not k.startswith("classifier.") and k not in own]
        missing = [k for k in own if k not in feats and not k.endswith("num_batches_tracked")]
        mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                      for k, v in feats.items() if k in own and v.shape != own[k].shape]
        if not (unexpected or missing or mismatched):
            self.load_state_dict(feats, strict=False)  # strict=False only tolerates absent num_batches_tracked
            return
        variant, looks_like = self._describe(feats)
        parts = [f"MobileNetV3-{self.variant} (width {self.width:g}): weights '{source}' do not match; "
                 f"the file looks like {looks_like}."]
        for label, items in (("shape mismatches", mismatched), ("missing keys", missing),
                             ("unexpected keys", unexpected)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:5])}{more}.")
        if variant and variant != self.variant:
            parts.append(f"Set the variant to '{variant}' in the model yaml (e.g. [-1, 1, MobileNetV3, [{variant}]]) "
                         f"or use a MobileNetV3-{self.variant} checkpoint.")
        else:
            parts.append(f"Use a checkpoint of torchvision mobilenet_v3_{self.variant}(width_mult={self.width:g}) "
                         "or change the variant/width in the model yaml.")
        raise ValueError(" ".join(parts))
