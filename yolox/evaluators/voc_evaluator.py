"""Pascal VOC evaluation of a model: per-class AP and mAP at IoU 0.5, and the mean over IoU 0.5:0.95."""

from dataclasses import dataclass

import numpy as np
from loguru import logger
from tabulate import tabulate

from yolox.evaluators.base import EVAL_FIGURES, Evaluator
from yolox.evaluators.inference import InferenceResult, InferenceTiming
from yolox.evaluators.voc_eval import VOC_IOU_THRESHOLDS, VOCObjects, voc_evaluate
from yolox.utils.errors import UserError


@dataclass
class VOCReport:
    """Per-class AP over the IoU thresholds, mAP at 0.5 and over 0.5:0.95, timing and summary."""

    per_class_ap: dict[str, np.ndarray]
    map50: float
    map50_95: float
    timing: InferenceTiming
    summary: str
    detections: dict[int, np.ndarray] | None = None

    def to_dict(self) -> dict:
        """Plain-Python figures for eval_results.json (AP in 0..1, NaN for classes without objects as None)."""
        return {
            "metric": "voc",
            **voc_figures(self.per_class_ap, self.map50_95, self.map50),
            "per_class_AP50": {k: None if np.isnan(v[0]) else float(v[0]) for k, v in self.per_class_ap.items()},
            "per_class_AP50_95": {k: None if np.isnan(v[0]) else float(v.mean()) for k, v in self.per_class_ap.items()},
            "timing": self.timing.per_image_ms(),
        }


def voc_figures(per_class_ap: dict[str, np.ndarray], map50_95: float, map50: float) -> dict[str, float | None]:
    """The headline figures (``EVAL_FIGURES``); AP75 is the mean over classes with objects, sizes are None (VOC has no split)."""
    figures = {**dict.fromkeys(EVAL_FIGURES), "ap50_95": float(map50_95), "ap50": float(map50)}
    table = np.array(list(per_class_ap.values()), dtype=np.float64).reshape(len(per_class_ap), -1)
    at_75 = np.flatnonzero(np.isclose(VOC_IOU_THRESHOLDS, 0.75))
    present = ~np.isnan(table[:, 0])
    if at_75.size and table.shape[1] == len(VOC_IOU_THRESHOLDS) and present.any():
        figures["ap75"] = float(table[present, at_75[0]].mean())
    return figures


def summarize_voc(per_class_ap: dict[str, np.ndarray], use_07_metric: bool) -> tuple[float, float, str]:
    """mAP at IoU 0.5, mean AP over 0.5:0.95 and a table; classes without objects are left out of the means."""
    table = np.array(list(per_class_ap.values())).reshape(len(per_class_ap), -1)
    present = ~np.isnan(table[:, 0])
    map50 = float(table[present, 0].mean()) if present.any() else 0.0
    map50_95 = float(table[present].mean()) if present.any() else 0.0
    rows = [
        [name, "-" if np.isnan(aps[0]) else f"{aps[0]:.4f}", "-" if np.isnan(aps[0]) else f"{aps.mean():.4f}"]
        for name, aps in per_class_ap.items()
    ]
    rows.append(["mAP", f"{map50:.4f}", f"{map50_95:.4f}"])
    metric = "VOC2007 11-point" if use_07_metric else "VOC2010+ area"
    text = f"VOC AP ({metric} metric):\n" + tabulate(rows, headers=["class", "AP50", "AP50:95"], tablefmt="pipe")
    return map50, map50_95, text + "\n"


def voc_ground_truth(dataset) -> dict[int, VOCObjects]:
    """Every image's objects (original pixels, difficult flags included), keyed by the dataset index."""
    truth = {}
    for index in range(len(dataset)):
        objects = dataset.ground_truth(index)
        truth[index] = VOCObjects(
            np.asarray(objects["boxes"], dtype=np.float64).reshape(-1, 4),
            np.asarray(objects["classes"], dtype=np.int64),
            np.asarray(objects["difficult"], dtype=bool),
        )
    return truth


class VOCEvaluator(Evaluator[VOCReport]):
    """Evaluate a model on a VOC-format dataset whose loader yields the dataset index as the image id.

    The dataset gives each image's objects through ``ground_truth(index)`` (boxes in original pixels,
    class indices, difficult flags), as ``VOCDetection`` does.
    """

    progress_label = "VOC eval"

    def __init__(
        self,
        dataloader,
        img_size: tuple[int, int],
        confthre: float,
        nmsthre: float,
        num_classes: int,
        use_07_metric: bool | None = None,
    ) -> None:
        """``use_07_metric=None`` follows VOC: the 11-point metric when every image set is from 2007."""
        super().__init__(dataloader, img_size, confthre, nmsthre, num_classes)
        dataset = dataloader.dataset
        if len(dataset) == 0:
            raise UserError("the VOC evaluation set has no images: check data_dir and the image sets")
        self.class_names = tuple(getattr(dataset, "class_names", None) or dataset._classes)
        if len(self.class_names) != num_classes:
            raise UserError(
                f"the VOC dataset has {len(self.class_names)} classes ({', '.join(self.class_names)}) but the exp has "
                f"num_classes={num_classes}: set num_classes and class_names in the exp to match"
            )
        if use_07_metric is None:
            years = {str(year) for year, _ in getattr(dataset, "image_sets", [])}
            use_07_metric = years == {"2007"}
        self.use_07_metric = use_07_metric

    def headline(self, report: VOCReport) -> tuple[float, float, str]:
        """The report's ``(map50_95, map50, summary)``."""
        return report.map50_95, report.map50, report.summary

    def figures(self, report: VOCReport) -> dict[str, float | None]:
        """mAP over IoU 0.5:0.95, at 0.5 and at 0.75; the size split is None."""
        return voc_figures(report.per_class_ap, report.map50_95, report.map50)

    def outputs(self, report: VOCReport) -> dict[int, np.ndarray] | None:
        """The detection rows per dataset index, as the inference produced them."""
        return report.detections

    def score(self, inference: InferenceResult, return_outputs: bool = False) -> VOCReport:
        """Score gathered detections against the VOC annotation files and log the table."""
        truth = voc_ground_truth(self.dataloader.dataset)
        per_class = voc_evaluate(inference.detections, truth, self.class_names, VOC_IOU_THRESHOLDS, self.use_07_metric)
        map50, map50_95, table = summarize_voc(per_class, self.use_07_metric)
        summary = f"{inference.timing.summary()}\n{table}"
        logger.info("\n" + summary)
        return VOCReport(per_class, map50, map50_95, inference.timing, summary, inference.detections if return_outputs else None)
