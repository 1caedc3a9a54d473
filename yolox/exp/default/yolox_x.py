"""YOLOX-X: depth 1.33, width 1.25."""

from yolox.exp.yolox_base import Exp as BaseYOLOXExp


class Exp(BaseYOLOXExp):
    """YOLOX-X: depth 1.33, width 1.25."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 1.33
        self.width = 1.25
