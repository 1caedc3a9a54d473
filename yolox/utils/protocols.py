"""What the commands, benchmarks and checkpoint reader need from an exp and from an evaluation report.

``yolox.exp.Exp`` satisfies :class:`ExpLike`; a test or a user can pass any object with these members
instead. Only typing is imported here, so any layer may name these contracts without importing the exp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn


class EvaluationReportLike(Protocol):
    """What an evaluator's ``evaluate_report`` returns, whatever the metric (COCO or VOC)."""

    summary: str

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values with at least ``ap50_95`` and ``ap50``, as in eval_results.json."""
        ...


class EvaluatorLike(Protocol):
    """An evaluator as the commands and benchmarks drive it; the metric-specific parts stay behind it."""

    dataloader: Any

    def evaluate_report(self, model: nn.Module, distributed: bool = False, half: bool = False,
                        return_outputs: bool = False) -> EvaluationReportLike:
        """Infer over the loader and score; the same report on every rank."""
        ...

    def headline(self, report: EvaluationReportLike) -> tuple[float, float, str]:
        """The report's ``(AP50:95, AP50, summary)``."""
        ...

    def outputs(self, report: EvaluationReportLike) -> Any:
        """The detections per image kept when ``return_outputs`` was asked for."""
        ...


class ExpLike(Protocol):
    """The settings and factories of an experiment that the commands and benchmarks use."""

    exp_name: str
    output_dir: str
    run_dir: Path  # <output_dir>/<exp_name>, read-only
    num_classes: int
    depth: float
    width: float
    attention: str | None
    input_size: tuple[int, int]
    test_size: tuple[int, int]
    test_conf: float
    nmsthre: float
    data_dir: str | None
    data_num_workers: int
    seed: int | None
    class_names: Sequence[str] | None

    def merge(self, opts: Sequence[str]) -> None:
        """Apply ``key value`` overrides from the command line."""
        ...

    def get_model(self) -> nn.Module:
        """Build the detector the exp describes."""
        ...

    def get_evaluator(self, batch_size: int, is_distributed: bool, testdev: bool = False,
                      legacy: bool = False) -> EvaluatorLike:
        """Build the evaluator of the exp's validation set."""
        ...

    def get_data_loader(self, batch_size: int, is_distributed: bool, no_aug: bool = False,
                        cache_img: str | None = None) -> Any:
        """Build the training loader."""
        ...

    def get_optimizer(self, batch_size: int) -> torch.optim.Optimizer:
        """Build (once) the optimizer of the model ``get_model`` built."""
        ...

    def check_meta(self, meta: dict[str, Any] | None, ckpt_path: str) -> None:
        """Raise a UserError when a checkpoint's recorded settings contradict the exp's."""
        ...

    def resolved_class_names(self) -> tuple[str, ...] | None:
        """The class names, checked against num_classes, or None."""
        ...


class TrainingExpLike(ExpLike, Protocol):
    """What the Trainer reads from an exp on top of :class:`ExpLike`: schedule, cadence and training hooks."""

    max_epoch: int
    no_aug_epochs: int
    basic_lr_per_img: float
    ema: bool
    save_history_ckpt: bool
    print_interval: int
    eval_interval: int

    def get_lr_scheduler(self, lr: float, iters_per_epoch: int, **kwargs: Any) -> Any:
        """Build the learning-rate schedule (``update_lr(iteration)``)."""
        ...

    def random_resize(self, data_loader: Any, epoch: int, rank: int, is_distributed: bool,
                      iteration: int | None = None) -> tuple[int, int]:
        """Draw the next multiscale input size, the same on every rank (from (seed, iteration) when given)."""
        ...

    def preprocess(self, inputs: torch.Tensor, targets: torch.Tensor,
                   tsize: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Resize a batch and its boxes to ``tsize``."""
        ...

    def eval(self, model: nn.Module, evaluator: Any, is_distributed: bool, half: bool = False,
             return_outputs: bool = False) -> Any:
        """Evaluate ``model``: ``(AP50:95, AP50, summary)``."""
        ...

    def meta(self) -> dict[str, Any]:
        """The model description stored in checkpoints."""
        ...


class BenchmarkExpLike(ExpLike, Protocol):
    """What the benchmarks read or set from an exp on top of :class:`ExpLike`.

    They measure shallow copies of the exp; on each copy they clear the lazily cached ``model``,
    ``optimizer`` and ``dataset`` (set by the exp's factories, so not declared here) and may point the
    training set elsewhere (``data_dir``, ``train_ann``, ``train_name``).
    """

    attention_kwargs: dict[str, Any]
    mosaic_prob: float
    enable_mixup: bool
    mixup_prob: float
    train_ann: str
    train_name: str
