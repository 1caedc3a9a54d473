"""YOLOX with an SE-ResNet-18 trunk: Squeeze-and-Excitation inside every residual block of layer3 and layer4."""

from yolox.exp.yolox_base import Exp as YOLOXExp


class Exp(YOLOXExp):
    """ResNet-18 with SE at the standard position (residual branch, before the addition) of its later stages."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = "resnet18"
        self.depth = 0.33
        self.width = 0.50
        self.block_attention = "se"
        self.block_attention_position = "standard"
        self.block_attention_stages = ("layer3", "layer4")
