"""YOLOX-S whose PAFPN applies Efficient Channel Attention (CVPR 2020) to dark3, dark4 and dark5."""

from yolox.exp.default.yolox_s import Exp as YOLOXSExp


class Exp(YOLOXSExp):
    """YOLOX-S with the `eca` attention block on every backbone output."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = "eca"
