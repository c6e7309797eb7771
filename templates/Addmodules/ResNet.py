"""The ResNet base of the RT-DETR blog series, written for rtdetr-patch (ResNet18/34/50/101 stages).

The series' RT-DETR yamls build the backbone row by row from four names, and this file gives them
the argument layout those yamls are written in:

* ``[-1, 1, ConvNormLayer, [ch_out, kernel, stride, groups, act]]``: a convolution, its batch norm
  and an optional activation (``'relu'``, ``'silu'``, ...). The three of them make the deep stem
  (3x3 convolutions 3-32-32-64, the first with stride 2), followed by ``nn.MaxPool2d [3, 2, 1]``.
* ``[-1, repeats, Blocks, [ch_out, BLOCK, stage_num, att]]``: one ResNet stage of ``repeats``
  blocks. ``BLOCK`` is a bare word in the yaml (it reaches us as a string): ``BasicBlock``
  (ResNet18/34) or ``BottleNeck`` (ResNet50/101, four times ``ch_out`` wide), or a block of your
  own registered with ``rtdetr-patch apply --module FILE.py:NAME=block``. ``stage_num`` 2 keeps the
  resolution (the max-pool halved it already), 3-5 halve it; ``att`` adds squeeze-and-excitation.

``parse_model`` passes the input width first: ``Blocks(ch_in, ch_out, count, block, stage_num,
att=False, variant='b')``. ``model.fuse()`` calls ``switch_to_deploy()``, which folds each batch norm
into its convolution (outputs agree to float precision).

This file is written by rtdetr-patch; ``rtdetr-patch revert`` removes it.
"""

import torch
import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU,
               "hardswish": nn.Hardswish, "sigmoid": nn.Sigmoid}


def _activation(act) -> nn.Module:
    if act is None or act is False:
        return nn.Identity()
    if isinstance(act, nn.Module):
        return act
    if act is True:
        return nn.ReLU()
    try:
        return ACTIVATIONS[str(act).lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {act!r}: use one of {', '.join(ACTIVATIONS)} or None") from None


@torch.no_grad()
def fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution that computes ``norm(conv(x))`` in eval mode (with a bias)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    fused.bias.copy_((bias - norm.running_mean) * scale + norm.bias)
    return fused


class ConvNormLayer(nn.Module):
    """Convolution (padding ``(kernel - 1) // 2``, no bias), BatchNorm2d, then ``act`` if given."""

    def __init__(self, ch_in, ch_out, filter_size, stride, groups=1, act=None):
        super().__init__()
        self.conv = nn.Conv2d(ch_in, ch_out, filter_size, stride, (filter_size - 1) // 2, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(ch_out)
        self.act = _activation(act)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))

    def switch_to_deploy(self) -> None:
        """Fold the batch norm into the convolution (for predict, val and export)."""
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv, self.norm = fold_batch_norm(self.conv, self.norm), nn.Identity()


class SqueezeExcite(nn.Module):
    """Channel attention: global average, a 1/16 bottleneck, a sigmoid gate."""

    def __init__(self, ch, reduction=16):
        super().__init__()
        hidden = max(ch // reduction, 8)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, hidden, 1), nn.ReLU(),
                                  nn.Conv2d(hidden, ch, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.gate(x)


def _shortcut(ch_in, ch_out, stride, variant) -> nn.Module:
    """The projection of a block's input when it changes width or resolution ('d': pool, then 1x1)."""
    if variant == "d" and stride == 2:
        return nn.Sequential(nn.AvgPool2d(2, 2, 0, ceil_mode=True), ConvNormLayer(ch_in, ch_out, 1, 1))
    return ConvNormLayer(ch_in, ch_out, 1, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual (ResNet18/34)."""

    expansion = 1

    def __init__(self, ch_in, ch_out, stride, shortcut, act="relu", variant="b", att=False):
        super().__init__()
        self.shortcut = shortcut
        self.short = None if shortcut else _shortcut(ch_in, ch_out, stride, variant)
        self.branch2a = ConvNormLayer(ch_in, ch_out, 3, stride, act=act)
        self.branch2b = ConvNormLayer(ch_out, ch_out, 3, 1)
        self.att = SqueezeExcite(ch_out) if att else nn.Identity()
        self.act = _activation(act)

    def forward(self, x):
        out = self.att(self.branch2b(self.branch2a(x)))
        return self.act(out + (x if self.short is None else self.short(x)))


class BottleNeck(nn.Module):
    """1x1, 3x3, 1x1 (four times wider) and a residual (ResNet50/101)."""

    expansion = 4

    def __init__(self, ch_in, ch_out, stride, shortcut, act="relu", variant="b", att=False):
        super().__init__()
        first, middle = (stride, 1) if variant == "a" else (1, stride)
        width = ch_out * self.expansion
        self.shortcut = shortcut
        self.short = None if shortcut else _shortcut(ch_in, width, stride, variant)
        self.branch2a = ConvNormLayer(ch_in, ch_out, 1, first, act=act)
        self.branch2b = ConvNormLayer(ch_out, ch_out, 3, middle, act=act)
        self.branch2c = ConvNormLayer(ch_out, width, 1, 1)
        self.att = SqueezeExcite(width) if att else nn.Identity()
        self.act = _activation(act)

    def forward(self, x):
        out = self.att(self.branch2c(self.branch2b(self.branch2a(x))))
        return self.act(out + (x if self.short is None else self.short(x)))


BLOCKS = {"BasicBlock": BasicBlock, "BottleNeck": BottleNeck}  # users' blocks join (--module FILE.py:NAME=block)


def block_class(block):
    """The block a ``Blocks`` row names: a class, or its name (the yaml's bare word arrives as a string)."""
    if isinstance(block, type):
        return block
    try:
        return BLOCKS[str(block)]
    except KeyError:
        raise KeyError(f"Blocks: no ResNet block named {block!r} (known: {', '.join(sorted(BLOCKS))}); register "
                       f"your own with `rtdetr-patch apply --module FILE.py:{block}=block`") from None


class Blocks(nn.Module):
    """One ResNet stage: ``count`` blocks, the first projecting (stride 2 from stage 3 on)."""

    def __init__(self, ch_in, ch_out, count, block, stage_num, att=False, variant="b"):
        super().__init__()
        kind = block_class(block)
        layers = []
        for i in range(count):
            stride = 2 if i == 0 and stage_num != 2 else 1
            layers.append(kind(ch_in, ch_out, stride, shortcut=i != 0, variant=variant, att=att))
            ch_in = ch_out * getattr(kind, "expansion", 1)
        self.blocks = nn.Sequential(*layers)

    def forward(self, x):
        return self.blocks(x)


__all__ = ["ConvNormLayer", "BasicBlock", "BottleNeck", "Blocks"]
