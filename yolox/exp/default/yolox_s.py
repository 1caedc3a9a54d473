"""YOLOX-S: depth 0.33, width 0.50."""

from yolox.exp.yolox_base import Exp as BaseYOLOXExp


class Exp(BaseYOLOXExp):
    """YOLOX-S: depth 0.33, width 0.50."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.33
        self.width = 0.50
