"""The evaluation pictures: precision-recall curves from COCOeval and a confusion matrix at one IoU.

``pr_curves`` reads COCOeval's own precision array (area "all", 100 detections per image), so each curve's
mean is exactly the AP that COCOeval reports. ``confusion_matrix`` matches the detections scoring at least a
stated confidence to the ground truth at IoU >= 0.5, whatever their classes, best overlaps first, one to one;
its last row holds the objects no detection matched (missed) and its last column the detections that matched
no object (false positives). ``write_eval_plots`` writes both as PNG (with matplotlib) and their numbers as JSON.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from loguru import logger
from torchvision.ops import box_iou

from yolox.utils.files import write_json_atomically
from yolox.utils.plotting import PLOT_EXTRA_NOTE, load_pyplot

RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCOeval's recall thresholds
COCO_IOUS = np.linspace(0.5, 0.95, 10)
PLOTS_JSON = "eval_plots.json"


def _mean_over_classes(curves: np.ndarray) -> list[float | None]:
    """Per recall point, the mean precision over the classes that have objects (-1 marks the others)."""
    means = []
    for row in curves:
        valid = row[row > -1]
        means.append(float(valid.mean()) if valid.size else None)
    return means


def pr_curves(precision: np.ndarray, class_names: Sequence[str]) -> dict:
    """Precision at COCO's 101 recall points, per class and over all classes, at IoU 0.50 and 0.75 and
    averaged over 0.50:0.95; with each curve's AP (its mean) for the legend. -1 (no objects) becomes None."""
    ious = {"0.50": precision[0], "0.75": precision[int(np.argmin(np.abs(COCO_IOUS - 0.75)))]}
    masked = np.where(precision > -1, precision, np.nan)
    with np.errstate(invalid="ignore"):
        averaged = np.nanmean(masked, axis=0)  # [recall, class], NaN for classes without objects
    ious["0.50:0.95"] = np.where(np.isnan(averaged), -1.0, averaged)
    result: dict = {"recall": RECALL_POINTS.round(2).tolist(), "iou": {}}
    for label, curves in ious.items():
        per_class = {}
        for index, name in enumerate(class_names):
            column = curves[:, index]
            present = bool((column > -1).all())
            per_class[name] = {"precision": column.tolist() if present else None,
                               "ap": float(column.mean()) if present else None}
        overall = _mean_over_classes(curves)
        known = [value for value in overall if value is not None]
        result["iou"][label] = {"all": {"precision": overall, "ap": float(np.mean(known)) if known else None},
                                "per_class": per_class}
    return result


def confusion_matrix(predictions: dict, truths: dict, num_classes: int, conf: float = 0.25,
                     iou: float = 0.5) -> np.ndarray:
    """``[C + 1, C + 1]`` counts, rows the predicted class, columns the true class, index C the background.

    ``predictions[image]`` = (boxes [N, 4], scores [N], classes [N]); ``truths[image]`` = (boxes [M, 4],
    classes [M]), boxes x1, y1, x2, y2 in the same pixels, classes 0..C-1. Detections below ``conf`` are left out.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    background = num_classes
    for image in set(predictions) | set(truths):
        true_boxes, true_classes = truths.get(image, (np.zeros((0, 4)), np.zeros(0, np.int64)))
        boxes, scores, classes = predictions.get(image, (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)))
        keep = np.asarray(scores) >= conf
        boxes, classes = np.asarray(boxes, np.float64).reshape(-1, 4)[keep], np.asarray(classes, np.int64)[keep]
        true_boxes = np.asarray(true_boxes, np.float64).reshape(-1, 4)
        true_classes = np.asarray(true_classes, np.int64)
        matched_pred, matched_true = set(), set()
        if len(boxes) and len(true_boxes):
            overlaps = box_iou(torch.from_numpy(boxes), torch.from_numpy(true_boxes)).numpy()
            pairs = np.argwhere(overlaps >= iou)
            for p, t in sorted(pairs.tolist(), key=lambda pair: -overlaps[pair[0], pair[1]]):
                if p not in matched_pred and t not in matched_true:
                    matched_pred.add(p)
                    matched_true.add(t)
                    matrix[classes[p], true_classes[t]] += 1
        for p in range(len(boxes)):
            if p not in matched_pred:
                matrix[classes[p], background] += 1
        for t in range(len(true_boxes)):
            if t not in matched_true:
                matrix[background, true_classes[t]] += 1
    return matrix


def coco_truths(coco_gt, class_ids: Sequence[int]) -> dict:
    """Per image id: the non-crowd ground-truth boxes (x1, y1, x2, y2) and their class indices."""
    index_of = {cat_id: index for index, cat_id in enumerate(class_ids)}
    truths = {}
    for image_id in coco_gt.getImgIds():
        anns = [ann for ann in coco_gt.imgToAnns.get(image_id, []) if not ann.get("iscrowd", 0)]
        boxes = np.array([ann["bbox"] for ann in anns], dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        truths[image_id] = (boxes, np.array([index_of[ann["category_id"]] for ann in anns], dtype=np.int64))
    return truths


def _plot_pr(plt, curves: dict, path: Path) -> None:
    """Overall curves at each IoU on the left, per-class curves at IoU 0.50 on the right."""
    figure, (overall_axis, class_axis) = plt.subplots(1, 2, figsize=(12, 5))
    recall = curves["recall"]
    for label, entry in curves["iou"].items():
        overall = entry["all"]
        if overall["ap"] is not None:
            values = [np.nan if value is None else value for value in overall["precision"]]
            overall_axis.plot(recall, values, label=f"IoU {label}: AP {overall['ap']:.3f}")
    for name, entry in curves["iou"]["0.50"]["per_class"].items():
        if entry["ap"] is not None:
            class_axis.plot(recall, entry["precision"], label=f"{name} {entry['ap']:.3f}")
    for axis, title in ((overall_axis, "all classes (mean precision)"), (class_axis, "per class at IoU 0.50 (AP50)")):
        axis.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
        if axis.lines:
            axis.legend(fontsize="small", loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_confusion(plt, matrix: np.ndarray, labels: Sequence[str], conf: float, iou: float, path: Path) -> None:
    """The count matrix as a heat map with the counts written in, normalised per true class for the colours."""
    size = max(6.0, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    totals = matrix.sum(axis=0, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axis.text(column, row, str(count), ha="center", va="center",
                      color="white" if shares[row, column] > 0.5 else "black", fontsize="small")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel="true class", ylabel="predicted class",
             title=f"confusion matrix: IoU >= {iou:.2f}, score >= {conf:.2f}")
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the true class (column)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_eval_plots(out_dir: Path, precision: np.ndarray | None, detections: dict, coco_gt, class_ids: Sequence[int],
                     class_names: Sequence[str], conf: float = 0.25, iou: float = 0.5) -> list[Path]:
    """Write ``eval_plots.json`` (PR curves, confusion matrix, thresholds) and, with matplotlib,
    ``pr_curves.png`` and ``confusion_matrix.png`` into ``out_dir``; return the files written.

    ``detections[image_id]`` holds rows x1, y1, x2, y2, obj, cls_score, cls_idx in original pixels.
    """
    out_dir = Path(out_dir)
    predictions = {image_id: (rows[:, :4], rows[:, 4] * rows[:, 5], rows[:, 6].astype(np.int64))
                   for image_id, rows in detections.items()}
    matrix = confusion_matrix(predictions, coco_truths(coco_gt, class_ids), len(class_names), conf, iou)
    labels = [*class_names, "background"]
    curves = pr_curves(precision, class_names) if precision is not None else None
    numbers = {"pr_curves": curves,
               "confusion_matrix": {"iou": iou, "conf": conf, "rows": "predicted class", "columns": "true class",
                                    "labels": labels, "counts": matrix.tolist()}}
    json_path = out_dir / PLOTS_JSON
    write_json_atomically(json_path, numbers, indent=None)
    written = [json_path]
    plt = load_pyplot()
    if plt is None:
        logger.info(f"wrote the numbers to {json_path}; {PLOT_EXTRA_NOTE}")
        return written
    if curves is not None:
        _plot_pr(plt, curves, out_dir / "pr_curves.png")
        written.append(out_dir / "pr_curves.png")
    _plot_confusion(plt, matrix, labels, conf, iou, out_dir / "confusion_matrix.png")
    written.append(out_dir / "confusion_matrix.png")
    return written
