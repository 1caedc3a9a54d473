"""YOLOX-S whose PAFPN applies Convolutional Block Attention Module (ECCV 2018) to dark3, dark4 and dark5."""

from yolox.exp.default.yolox_s import Exp as YOLOXSExp


class Exp(YOLOXSExp):
    """YOLOX-S with the `cbam` attention block on every backbone output."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = "cbam"
