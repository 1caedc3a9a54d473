"""Pascal VOC detection metrics: per-class AP at an IoU threshold, 11-point (VOC2007) or area (VOC2010+).

Boxes are 0-based inclusive pixel coordinates (the VOC XML values minus one, as the dataset gives them), and overlaps count the
pixels on both borders (the +1 of the VOC devkit). Objects marked difficult neither count as positives
nor make a matching detection a false positive.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VOC_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass
class VOCObjects:
    """The annotated objects of one image: boxes (N, 4) x1 y1 x2 y2, class indices (N,), difficult (N,)."""

    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """AP from a precision/recall curve: 11-point interpolation (VOC2007) or the exact area (VOC2010+)."""
    if use_07_metric:
        points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.arange(0.0, 1.1, 0.1)]
        return float(np.mean(points))
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope, non-increasing in recall
    changes = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def _inclusive_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with many, counting border pixels as the VOC devkit does."""
    iw = np.maximum(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]) + 1.0, 0.0)
    inter = iw * ih
    area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    areas = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    return inter / (area + areas - inter)


def voc_class_ap(
    det_keys: Sequence,
    det_scores: np.ndarray,
    det_boxes: np.ndarray,
    ground_truth: dict,
    iou_threshold: float = 0.5,
    use_07_metric: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Recall, precision and AP of one class.

    ``ground_truth`` maps an image key to ``(boxes (N, 4), difficult (N,))`` of this class; detections are
    ``det_keys[i]`` (image key), ``det_scores[i]``, ``det_boxes[i]``. AP is NaN when the class has no
    non-difficult object.
    """
    positives = sum(int((~difficult).sum()) for _, difficult in ground_truth.values())
    matched = {key: np.zeros(len(boxes), dtype=bool) for key, (boxes, _) in ground_truth.items()}
    order = np.argsort(-np.asarray(det_scores, dtype=np.float64), kind="stable")
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, i in enumerate(order):
        boxes, difficult = ground_truth.get(det_keys[i], (np.zeros((0, 4)), np.zeros(0, dtype=bool)))
        if len(boxes) == 0:
            fp[rank] = 1
            continue
        overlaps = _inclusive_iou(np.asarray(det_boxes[i], dtype=np.float64), boxes)
        best = int(overlaps.argmax())
        if overlaps[best] <= iou_threshold:
            fp[rank] = 1
        elif difficult[best]:
            continue
        elif not matched[det_keys[i]][best]:
            tp[rank], matched[det_keys[i]][best] = 1, True
        else:
            fp[rank] = 1
    if positives == 0:
        return np.zeros(len(order)), np.zeros(len(order)), float("nan")
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return recall, precision, voc_ap(recall, precision, use_07_metric)


def voc_evaluate(
    detections: dict,
    ground_truth: dict,
    class_names: Sequence[str],
    iou_thresholds: Sequence[float] = VOC_IOU_THRESHOLDS,
    use_07_metric: bool = False,
) -> dict[str, np.ndarray]:
    """Per-class AP at each IoU threshold: ``{class name: array over iou_thresholds}``.

    ``detections`` maps an image key to rows ``x1, y1, x2, y2, obj, cls_score, cls_idx`` (score is
    obj x cls_score); ``ground_truth`` maps the same keys to :class:`VOCObjects`.
    """
    keys = list(detections)
    rows = [np.asarray(detections[k], dtype=np.float64).reshape(-1, 7) for k in keys]
    all_rows = np.concatenate(rows, axis=0) if rows else np.zeros((0, 7))
    row_keys = np.repeat(np.arange(len(keys)), [len(r) for r in rows])
    result = {}
    for class_index, name in enumerate(class_names):
        per_image = {
            key: (objs.boxes[objs.labels == class_index], objs.difficult[objs.labels == class_index])
            for key, objs in ground_truth.items()
        }
        chosen = all_rows[:, 6].astype(np.int64) == class_index
        det_keys = [keys[j] for j in row_keys[chosen]]
        scores = all_rows[chosen, 4] * all_rows[chosen, 5]
        result[name] = np.array(
            [voc_class_ap(det_keys, scores, all_rows[chosen, :4], per_image, t, use_07_metric)[2] for t in iou_thresholds]
        )
    return result
