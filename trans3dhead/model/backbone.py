"""MobileNet-V1 backbone (Howard et al., 2017) in the layout of 3DDFA_V2's MobileNet, written here
so that the reference weights load by name and no torchvision is needed.

Input: (B, 3, S, S) float32, BGR, already normalised. Output: the stride-32 feature map
(B, C, ceil(S/32), ceil(S/32)) - 4x4 for a 120x120 crop - with C = ``num_channels``.
"""
from __future__ import annotations

from torch import nn

# The reference network's input normalisation, (x - 127.5) / 128 of BGR pixel values, shared by
# every network here so the reference weights can initialise the backbone.
PIXEL_MEAN, PIXEL_STD = 127.5, 128.0

# (out_channels at width 1.0, stride) for dw2_1 ... dw6, as in MobileNet-V1.
_BLOCKS = [
    ("dw2_1", 64, 1), ("dw2_2", 128, 2), ("dw3_1", 128, 1), ("dw3_2", 256, 2), ("dw4_1", 256, 1),
    ("dw4_2", 512, 2), ("dw5_1", 512, 1), ("dw5_2", 512, 1), ("dw5_3", 512, 1), ("dw5_4", 512, 1),
    ("dw5_5", 512, 1), ("dw5_6", 1024, 2), ("dw6", 1024, 1),
]


class DepthWiseBlock(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv_dw = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False)
        self.bn_dw = nn.BatchNorm2d(in_channels)
        self.conv_sep = nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False)
        self.bn_sep = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu(self.bn_dw(self.conv_dw(x)))
        return self.relu(self.bn_sep(self.conv_sep(x)))


class MobileNetV1(nn.Module):
    """MobileNet-V1 feature extractor at a given width multiplier (0.5 for the reference)."""

    def __init__(self, width: float = 0.5, in_channels: int = 3):
        super().__init__()
        c = int(32 * width)
        self.conv1 = nn.Conv2d(in_channels, c, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        for name, out, stride in _BLOCKS:
            setattr(self, name, DepthWiseBlock(c, int(out * width), stride))
            c = int(out * width)
        self.num_channels = c

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for name, _, _ in _BLOCKS:
            x = getattr(self, name)(x)
        return x
