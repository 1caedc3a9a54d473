"""YOLOX-L: depth 1.0, width 1.0."""

from yolox.exp.yolox_base import Exp as BaseYOLOXExp


class Exp(BaseYOLOXExp):
    """YOLOX-L: depth 1.0, width 1.0."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 1.0
        self.width = 1.0
