"""Box regression losses on (cx, cy, w, h) boxes."""

import torch
from torch import nn

_REDUCTIONS = ("none", "mean", "sum")
_LOSS_TYPES = ("iou", "giou")


class IOUloss(nn.Module):
    """IoU loss ``1 - IoU**2`` or GIoU loss ``1 - GIoU`` between predicted and target cxcywh boxes."""

    def __init__(self, reduction: str = "none", loss_type: str = "iou") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}: use one of {', '.join(_REDUCTIONS)}")
        if loss_type not in _LOSS_TYPES:
            raise ValueError(f"unknown IoU loss type {loss_type!r}: use one of {', '.join(_LOSS_TYPES)}")
        self.reduction = reduction
        self.loss_type = loss_type

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the per-box loss (or its mean/sum) for ``[N, 4]`` prediction and target boxes."""
        if pred.shape[0] != target.shape[0]:
            raise ValueError(f"IOUloss got {pred.shape[0]} predictions but {target.shape[0]} targets")
        pred = pred.view(-1, 4)
        target = target.view(-1, 4)
        pred_lo, pred_hi = pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2
        target_lo, target_hi = target[:, :2] - target[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2
        inter_lo = torch.max(pred_lo, target_lo)
        inter_hi = torch.min(pred_hi, target_hi)
        overlaps = (inter_lo < inter_hi).to(pred.dtype).prod(dim=1)
        area_inter = (inter_hi - inter_lo).prod(dim=1) * overlaps
        area_union = pred[:, 2:].prod(dim=1) + target[:, 2:].prod(dim=1) - area_inter
        iou = area_inter / (area_union + 1e-16)

        if self.loss_type == "iou":
            loss = 1 - iou**2
        else:
            enclose_area = (torch.max(pred_hi, target_hi) - torch.min(pred_lo, target_lo)).prod(dim=1)
            giou = iou - (enclose_area - area_union) / enclose_area.clamp(min=1e-16)
            loss = 1 - giou.clamp(min=-1.0, max=1.0)

        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
