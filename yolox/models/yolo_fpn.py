"""YOLOFPN: the YOLOv3 feature pyramid on a Darknet backbone (leaky ReLU)."""

from collections.abc import Sequence

import torch
from torch import nn

from yolox.models.darknet import Darknet
from yolox.models.network_blocks import BaseConv, check_input_size


class YOLOFPN(nn.Module):
    """Darknet backbone with the YOLOv3 top-down pyramid; outputs 128, 256 and 512 channels."""

    def __init__(self, depth: int = 53, in_features: Sequence[str] = ("dark3", "dark4", "dark5")) -> None:
        super().__init__()
        if len(in_features) != 3:
            raise ValueError(f"YOLOFPN needs three input levels, got in_features={tuple(in_features)}")
        self.backbone = Darknet(depth, out_features=in_features)
        self.in_features = tuple(in_features)
        # dark5 ends with 512 channels, dark4 has 512 and dark3 256.
        self.out1_cbl = BaseConv(512, 256, 1, 1, act="lrelu")
        self.out1 = self._embedding(512 + 256, 256, 512)
        self.out2_cbl = BaseConv(256, 128, 1, 1, act="lrelu")
        self.out2 = self._embedding(256 + 128, 128, 256)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    @staticmethod
    def _embedding(in_channels: int, narrow: int, wide: int) -> nn.Sequential:
        """Return five alternating 1x1 / 3x3 convs ending with ``narrow`` channels."""
        return nn.Sequential(
            BaseConv(in_channels, narrow, 1, 1, act="lrelu"),
            BaseConv(narrow, wide, 3, 1, act="lrelu"),
            BaseConv(wide, narrow, 1, 1, act="lrelu"),
            BaseConv(narrow, wide, 3, 1, act="lrelu"),
            BaseConv(wide, narrow, 1, 1, act="lrelu"),
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the feature maps at strides 8, 16 and 32."""
        check_input_size(images)
        features = self.backbone(images)
        x2, x1, x0 = (features[name] for name in self.in_features)
        out_dark4 = self.out1(torch.cat([self.upsample(self.out1_cbl(x0)), x1], 1))
        out_dark3 = self.out2(torch.cat([self.upsample(self.out2_cbl(out_dark4)), x2], 1))
        return out_dark3, out_dark4, x0
