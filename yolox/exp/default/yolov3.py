"""YOLOv3 baseline: Darknet-53 backbone and YOLOv3 FPN with the decoupled YOLOX head."""

import torch.nn as nn

from yolox.exp.yolox_base import Exp as BaseYOLOXExp
from yolox.utils.errors import UserError


class Exp(BaseYOLOXExp):
    """YOLOX-Darknet53: the YOLOv3 FPN (128/256/512 outputs) and a leaky-ReLU head."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 1.0
        self.width = 1.0

    def get_model(self) -> nn.Module:
        """Build Darknet-53 + YOLOFPN + YOLOXHead (attention is a PAFPN feature, so it must be off)."""
        from yolox.models import YOLOFPN, YOLOX, YOLOXHead

        self.validate()
        if self.attention is not None:
            raise UserError(f"exp key attention={self.attention!r}: the yolov3 FPN has no attention hook; "
                            "use a YOLOX (PAFPN) exp such as exps/yolox_s_cam.py")
        if getattr(self, "model", None) is None:
            backbone = YOLOFPN()
            head = YOLOXHead(self.num_classes, self.width, in_channels=[128, 256, 512], act="lrelu")
            self.model = YOLOX(backbone, head)
            self.finish_model(self.model)
        return self.model
