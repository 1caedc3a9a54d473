"""What every evaluator shares: inference on every rank, scoring once on rank 0, the same report everywhere.

A subclass supplies the scoring of the gathered detections, the headline figures of its report and the
per-image outputs that ``evaluate(..., return_outputs=True)`` returns.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch

from yolox.evaluators.inference import InferenceResult, broadcast_from_main, gather_inference, run_inference
from yolox.utils.errors import UserError

Report = TypeVar("Report")
# The figures of every evaluation record (metrics.jsonl, loggers), all fractions; None where a metric has no such figure.
EVAL_FIGURES = ("ap50_95", "ap50", "ap75", "aps", "apm", "apl")


class Evaluator(ABC, Generic[Report]):
    """Evaluate a model over a loader of (imgs, targets, img_info, ids) batches with its own metric."""

    progress_label: str  # shown on the progress bar, e.g. "COCO eval"

    def __init__(self, dataloader, img_size: tuple[int, int], confthre: float, nmsthre: float, num_classes: int) -> None:
        """Keep the loader and the inference settings (input size, score and NMS thresholds, class count)."""
        self.dataloader = dataloader
        self.img_size = tuple(img_size)
        self.confthre, self.nmsthre, self.num_classes = confthre, nmsthre, num_classes
        self.last_figures: dict[str, float | None] | None = None  # of the latest evaluate_report

    @abstractmethod
    def score(self, inference: InferenceResult, return_outputs: bool = False) -> Report:
        """Score the gathered detections on the main process and return the report."""

    @abstractmethod
    def headline(self, report: Report) -> tuple[float, float, str]:
        """The report's ``(AP50:95, AP50, summary)``."""

    @abstractmethod
    def figures(self, report: Report) -> dict[str, float | None]:
        """The report's ``EVAL_FIGURES`` as fractions (None where the metric has no such figure)."""

    @abstractmethod
    def outputs(self, report: Report) -> Any:
        """The detections per image that ``evaluate(..., return_outputs=True)`` returns."""

    def inference(
        self, model: torch.nn.Module, half: bool = False, decoder: Callable | None = None, test_size=None
    ) -> InferenceResult:
        """Run the model over this process's share of the loader."""
        return run_inference(
            model, self.dataloader, self.num_classes, self.confthre, self.nmsthre,
            tuple(test_size or self.img_size), half=half, decoder=decoder, desc=self.progress_label,
        )  # fmt: skip

    def evaluate_report(
        self,
        model: torch.nn.Module,
        distributed: bool = False,
        half: bool = False,
        trt_file: str | None = None,
        decoder: Callable | None = None,
        test_size=None,
        return_outputs: bool = False,
    ) -> Report:
        """Infer on every rank, score once on rank 0 and return the same report on every rank."""
        if trt_file is not None:
            raise UserError(f"TensorRT engines ({trt_file}) are not supported: evaluate the PyTorch checkpoint instead")
        local = self.inference(model, half=half, decoder=decoder, test_size=test_size)
        merged = gather_inference(local) if distributed else local
        report = self.score(merged, return_outputs) if merged is not None else None
        report = broadcast_from_main(report) if distributed else report
        self.last_figures = self.figures(report)
        return report

    def evaluate(
        self,
        model: torch.nn.Module,
        distributed: bool = False,
        half: bool = False,
        trt_file: str | None = None,
        decoder: Callable | None = None,
        test_size=None,
        return_outputs: bool = False,
    ):
        """Return ``(ap50_95, ap50, summary)`` on every rank, plus the detections per image when ``return_outputs``."""
        report = self.evaluate_report(model, distributed, half, trt_file, decoder, test_size, return_outputs)
        figures = self.headline(report)
        return (figures, self.outputs(report)) if return_outputs else figures


def evaluation_figures(evaluator: Any, ap50_95: float, ap50: float) -> dict[str, float | None]:
    """Every ``EVAL_FIGURES`` key for one evaluation: the evaluator's own figures when it keeps them (this
    package's evaluators do), else the headline pair that any official-style evaluator returns, the rest None."""
    figures = dict.fromkeys(EVAL_FIGURES)
    figures.update(getattr(evaluator, "last_figures", None) or {})
    figures.update(ap50_95=float(ap50_95), ap50=float(ap50))
    return figures
