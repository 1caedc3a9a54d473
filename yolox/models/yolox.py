"""The YOLOX detector: a backbone with neck (YOLOPAFPN or YOLOFPN) followed by a YOLOXHead."""


import torch
from torch import nn

from yolox.models.yolo_head import YOLOXHead
from yolox.models.yolo_pafpn import YOLOPAFPN


class YOLOX(nn.Module):
    """Detector wrapper: train mode returns the loss dict, eval mode the ``[B, A, 5 + C]`` predictions.

    Args:
        backbone: backbone with neck returning the per-level feature maps the head takes, or None for
            ``YOLOPAFPN()`` (YOLOX-L). Default: None.
        head: the detection head, or None for ``YOLOXHead(80)``. Default: None.
    """

    def __init__(self, backbone: nn.Module | None = None, head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else YOLOPAFPN()
        self.head = head if head is not None else YOLOXHead(80)

    def forward(
        self, x: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Return losses for ``(images, targets)`` in train mode, decoded predictions in eval mode.

        Args:
            x: ``[B, 3, H, W]`` float BGR images in 0..255, letterboxed; H and W multiples of 32.
            targets: train mode only, ``[B, max_labels, 5]`` rows of (class, cx, cy, w, h) in input pixels,
                all-zero rows as padding.

        Returns:
            Eval: ``[B, A, 5 + num_classes]`` rows of (cx, cy, w, h, objectness, class scores), A the anchors
            of all levels. Train: a dict of 0-d tensors ``total_loss, iou_loss, l1_loss, conf_loss,
            cls_loss, num_fg``.
        """
        fpn_outs = self.backbone(x)
        if not self.training:
            return self.head(fpn_outs)
        if targets is None:
            raise ValueError(
                "YOLOX in train mode needs targets [B, max_labels, 5] of (class, cx, cy, w, h): "
                "pass them, or call model.eval() to predict"
            )
        total_loss, iou_loss, conf_loss, cls_loss, l1_loss, num_fg = self.head(fpn_outs, targets)
        return {
            "total_loss": total_loss,
            "iou_loss": iou_loss,
            "l1_loss": l1_loss,
            "conf_loss": conf_loss,
            "cls_loss": cls_loss,
            "num_fg": num_fg,
        }
