"""MobileNetV3-Large from torchvision's own class, returning its stride 8, 16 and 32 stage outputs.

``torchvision.models.mobilenet_v3_large(weights=None)`` (nothing is downloaded) keeps only its ``features``,
so the state dict has exactly torchvision's ``features.*`` keys and an ImageNet state dict saved by torchvision
loads into it. The stages end where the resolution halves for the next time (Howard et al., "Searching for
MobileNetV3", ICCV 2019, Table 1): ``features[0:7]`` ends at stride 8 (40 channels), ``features[7:13]`` at
stride 16 (112) and ``features[13:17]`` at stride 32 (960, after the last 1x1 conv).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large

from yolox.models.imagenet_input import ImageNetInput
from yolox.utils.model_utils import fuse_conv_and_bn

MOBILENET_OUT_FEATURES = ("c3", "c4", "c5")  # strides 8, 16, 32
MOBILENET_OUT_CHANNELS = (40, 112, 960)
# The index of the last ``features`` module of each output stage.
MOBILENET_STAGE_ENDS = (6, 12, 16)


class MobileNetV3Trunk(nn.Module):
    """MobileNetV3-Large's feature layers returning ``{"c3", "c4", "c5"}`` for the PAN neck.

    Input: ``[B, 3, H, W]`` BGR in 0..255 (YOLOX's), converted to torchvision's normalised RGB inside.
    BatchNorms keep torchvision's eps (1e-3). :meth:`fold_batchnorm` folds every conv/BN pair for inference.
    """

    def __init__(self) -> None:
        """Build the trunk with random weights (``weights=None``)."""
        super().__init__()
        self.name = "mobilenet_v3_large"
        self.features = mobilenet_v3_large(weights=None).features
        self.imagenet_input = ImageNetInput()
        self.out_features = MOBILENET_OUT_FEATURES
        self.out_channels = MOBILENET_OUT_CHANNELS
        self.out_strides = (8, 16, 32)

    def fold_batchnorm(self) -> None:
        """Fold each BatchNorm into the conv before it in torchvision's conv-norm-activation units (inference only)."""
        for module in self.modules():
            if not isinstance(module, nn.Sequential):
                continue
            children = list(module.named_children())
            for (conv_name, conv), (norm_name, norm) in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                    setattr(module, conv_name, fuse_conv_and_bn(conv, norm))
                    setattr(module, norm_name, nn.Identity())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the stride 8, 16 and 32 stage outputs ``{"c3": 40, "c4": 112, "c5": 960 channels}``."""
        x = self.imagenet_input(images)
        outputs = {}
        ends = dict(zip(MOBILENET_STAGE_ENDS, MOBILENET_OUT_FEATURES))
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in ends:
                outputs[ends[index]] = x
        return outputs
