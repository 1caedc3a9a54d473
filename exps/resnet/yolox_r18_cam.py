"""YOLOX with a ResNet-18 trunk whose C3, C4 and C5 each pass through Coordinate Attention before the neck."""

from yolox.exp.yolox_base import Exp as YOLOXExp


class Exp(YOLOXExp):
    """ResNet-18 + CAM on c3/c4/c5; the neck and head at width 0.5 take the trunk's 128/256/512 channels as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = "resnet18"
        self.depth = 0.33
        self.width = 0.50
        self.attention = "cam"
