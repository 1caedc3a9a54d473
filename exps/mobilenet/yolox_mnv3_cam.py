"""YOLOX with torchvision's MobileNetV3-Large trunk and Coordinate Attention on its three stage outputs."""

from yolox.exp.yolox_base import Exp as YOLOXExp


class Exp(YOLOXExp):
    """MobileNetV3-Large (strides 8/16/32: 40, 112, 960 channels) into a YOLOX-S-wide neck and head, CAM on c3-c5."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = "mobilenet_v3_large"
        self.depth = 0.33
        self.width = 0.50
        self.attention = "cam"
        self.attention_levels = ("c3", "c4", "c5")
