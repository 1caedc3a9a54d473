"""YOLOX with a ResNet-50 trunk whose C3, C4 and C5 each pass through Coordinate Attention before the neck."""

from yolox.exp.yolox_base import Exp as YOLOXExp


class Exp(YOLOXExp):
    """ResNet-50 + CAM on c3/c4/c5; 1x1 laterals halve 512/1024/2048 to the width-1.0 neck's 256/512/1024."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = "resnet50"
        self.depth = 0.33
        self.width = 1.00
        self.attention = "cam"
