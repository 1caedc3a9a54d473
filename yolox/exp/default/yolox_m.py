"""YOLOX-M: depth 0.67, width 0.75."""

from yolox.exp.yolox_base import Exp as BaseYOLOXExp


class Exp(BaseYOLOXExp):
    """YOLOX-M: depth 0.67, width 0.75."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0.67
        self.width = 0.75
