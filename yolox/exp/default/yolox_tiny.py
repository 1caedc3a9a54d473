"""YOLOX-Tiny: depth 0.33, width 0.375, 416 input, lighter augmentation."""

from yolox.exp.yolox_base import Exp as BaseYOLOXExp


class Exp(BaseYOLOXExp):
    """YOLOX-Tiny: depth 0.33, width 0.375, 416 input, lighter augmentation."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.33
        self.width = 0.375
        self.input_size = (416, 416)
        self.test_size = (416, 416)
        self.random_size = (10, 20)
        self.mosaic_scale = (0.5, 1.5)
        self.enable_mixup = False
