"""The input conversion every torchvision trunk needs: YOLOX's BGR 0..255 images to ImageNet-normalised RGB."""

from __future__ import annotations

import torch
from torch import nn

# torchvision's ImageNet models take RGB in 0..1 normalised by these; YOLOX feeds BGR in 0..255.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


class ImageNetInput(nn.Module):
    """``(images[:, ::-1] - 255 * mean) / (255 * std)``, held in non-persistent buffers (no state-dict keys)."""

    def __init__(self) -> None:
        """Build the channel order, shift and scale buffers."""
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN_RGB) * 255.0
        std = torch.tensor(IMAGENET_STD_RGB) * 255.0
        self.register_buffer("rgb_order", torch.tensor([2, 1, 0]), persistent=False)
        self.register_buffer("input_shift", mean.reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_scale", (1.0 / std).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` BGR in 0..255 -> the same images as torchvision's normalised RGB."""
        return (images.index_select(1, self.rgb_order) - self.input_shift) * self.input_scale
