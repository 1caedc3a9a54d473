"""Box geometry helpers and the detection post-processing (score filter + NMS), all vectorised."""

import numpy as np
import torch
import torchvision

ArrayLike = np.ndarray | torch.Tensor


def _copy(boxes: ArrayLike) -> ArrayLike:
    """Return a copy of a numpy array or tensor, so helpers never modify their input."""
    return boxes.clone() if isinstance(boxes, torch.Tensor) else np.array(boxes, copy=True)


def meshgrid(*tensors: torch.Tensor) -> tuple:
    """Return ``torch.meshgrid`` with matrix ("ij") indexing, the convention used throughout."""
    return torch.meshgrid(*tensors, indexing="ij")


def bboxes_iou(bboxes_a: torch.Tensor, bboxes_b: torch.Tensor, xyxy: bool = True) -> torch.Tensor:
    """Return the IoU matrix ``[..., N, M]`` of boxes ``[..., N, 4]`` and ``[..., M, 4]``.

    Boxes are (x1, y1, x2, y2), or (cx, cy, w, h) when ``xyxy=False``; leading batch dimensions broadcast.
    """
    if bboxes_a.shape[-1] != 4 or bboxes_b.shape[-1] != 4:
        raise IndexError(
            f"bboxes_iou needs boxes of 4 coordinates, got shapes {tuple(bboxes_a.shape)} and {tuple(bboxes_b.shape)}"
        )
    boxes_a = bboxes_a.unsqueeze(-2)  # [..., N, 1, 4] against [..., 1, M, 4]
    boxes_b = bboxes_b.unsqueeze(-3)
    if xyxy:
        top_left = torch.max(boxes_a[..., :2], boxes_b[..., :2])
        bottom_right = torch.min(boxes_a[..., 2:], boxes_b[..., 2:])
        area_a = torch.prod(bboxes_a[..., 2:] - bboxes_a[..., :2], -1)
        area_b = torch.prod(bboxes_b[..., 2:] - bboxes_b[..., :2], -1)
    else:
        top_left = torch.max(boxes_a[..., :2] - boxes_a[..., 2:] / 2, boxes_b[..., :2] - boxes_b[..., 2:] / 2)
        bottom_right = torch.min(boxes_a[..., :2] + boxes_a[..., 2:] / 2, boxes_b[..., :2] + boxes_b[..., 2:] / 2)
        area_a = torch.prod(bboxes_a[..., 2:], -1)
        area_b = torch.prod(bboxes_b[..., 2:], -1)
    overlaps = (top_left < bottom_right).to(top_left.dtype).prod(dim=-1)
    area_inter = torch.prod(bottom_right - top_left, -1) * overlaps
    return area_inter / (area_a.unsqueeze(-1) + area_b.unsqueeze(-2) - area_inter)


def xyxy2xywh(bboxes: ArrayLike) -> ArrayLike:
    """Return a copy of ``[N, 4+]`` boxes with (x1, y1, x2, y2) turned into (x1, y1, w, h) (COCO format)."""
    out = _copy(bboxes)
    out[:, 2] = bboxes[:, 2] - bboxes[:, 0]
    out[:, 3] = bboxes[:, 3] - bboxes[:, 1]
    return out


def xyxy2cxcywh(bboxes: ArrayLike) -> ArrayLike:
    """Return a copy of ``[N, 4+]`` boxes with (x1, y1, x2, y2) turned into (cx, cy, w, h)."""
    out = _copy(bboxes)
    out[:, 2] = bboxes[:, 2] - bboxes[:, 0]
    out[:, 3] = bboxes[:, 3] - bboxes[:, 1]
    out[:, 0] = bboxes[:, 0] + out[:, 2] * 0.5
    out[:, 1] = bboxes[:, 1] + out[:, 3] * 0.5
    return out


def cxcywh2xyxy(bboxes: ArrayLike) -> ArrayLike:
    """Return a copy of ``[N, 4+]`` boxes with (cx, cy, w, h) turned into (x1, y1, x2, y2)."""
    out = _copy(bboxes)
    out[:, 0] = bboxes[:, 0] - bboxes[:, 2] * 0.5
    out[:, 1] = bboxes[:, 1] - bboxes[:, 3] * 0.5
    out[:, 2] = bboxes[:, 0] + bboxes[:, 2] * 0.5
    out[:, 3] = bboxes[:, 1] + bboxes[:, 3] * 0.5
    return out


def postprocess(
    prediction: torch.Tensor,
    num_classes: int,
    conf_thre: float = 0.7,
    nms_thre: float = 0.45,
    class_agnostic: bool = False,
) -> list[torch.Tensor | None]:
    """Filter and NMS raw detections ``[B, A, 5 + num_classes]`` (cx, cy, w, h, obj, class scores).

    Returns one entry per image: ``None`` when nothing survives, else a tensor of rows
    ``x1, y1, x2, y2, obj, class_score, class_index`` sorted by decreasing score (obj x class_score).
    Detections scoring below ``conf_thre`` are dropped; NMS with IoU ``nms_thre`` runs per class, or
    across classes when ``class_agnostic``.
    """
    if prediction.dim() != 3 or prediction.shape[2] < 5 + num_classes:
        raise ValueError(
            f"postprocess expects predictions of shape [B, A, 5 + num_classes] = [B, A, {5 + num_classes}], "
            f"got {tuple(prediction.shape)}: check num_classes"
        )
    boxes = cxcywh2xyxy(prediction[..., :4].reshape(-1, 4)).view(prediction.shape[0], -1, 4)
    objectness = prediction[..., 4:5]
    class_conf, class_pred = prediction[..., 5 : 5 + num_classes].max(dim=2, keepdim=True)
    detections = torch.cat((boxes, objectness, class_conf, class_pred.to(prediction.dtype)), dim=2)
    keep = (objectness * class_conf).squeeze(2) >= conf_thre

    outputs: list[torch.Tensor | None] = []
    # One NMS call per image: offsetting boxes to batch images together would cost float precision.
    for image_detections, image_keep in zip(detections, keep):
        candidates = image_detections[image_keep]
        if candidates.shape[0] == 0:
            outputs.append(None)
            continue
        scores = candidates[:, 4] * candidates[:, 5]
        if class_agnostic:
            kept = torchvision.ops.nms(candidates[:, :4], scores, nms_thre)
        else:
            kept = torchvision.ops.batched_nms(candidates[:, :4], scores, candidates[:, 6], nms_thre)
        outputs.append(candidates[kept])
    return outputs
