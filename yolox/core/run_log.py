"""The run log of a training member: one :meth:`RunLog.log_scalars` call reaches every writer.

The writers are the console (loguru, which also writes ``train_log.txt``), ``metrics.jsonl``, TensorBoard
(``-l tensorboard``) and the W&B or MLflow tracker (``-l wandb`` / ``-l mlflow``). Only rank 0 writes.
TensorBoard and the trackers keep the official YOLOX's names: ``train/<name>`` against the iteration, and
``val/COCOAP50`` and ``val/COCOAP50_95`` against the epoch; every other evaluation figure goes to
``metrics.jsonl``. The attention usage of a train record (gate mean and spread, learnt scale, per block) reaches
every writer under the same names, ``attention/<block>/<figure>`` against the iteration.
"""

import time
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from yolox.core.metrics_log import MetricsWriter
from yolox.models.attention_probe import format_usage
from yolox.utils.errors import UserError

TRAIN, EVAL = "train", "eval"
# The official YOLOX's names of the validation scalars on TensorBoard and the trackers.
VAL_BOARD_NAMES = {"ap50": "val/COCOAP50", "ap50_95": "val/COCOAP50_95"}


def board_scalars(kind: str, scalars: Mapping[str, float],
                  attention: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, float]:
    """The TensorBoard/tracker names and values of a record's scalars and of its blocks' attention usage."""
    if kind != TRAIN:
        return {board: scalars[name] for name, board in VAL_BOARD_NAMES.items() if name in scalars}
    board = {f"train/{name}": value for name, value in scalars.items()}
    for block, figures in (attention or {}).items():
        board.update({f"attention/{block}/{figure}": value for figure, value in figures.items()})
    return board


def startup_line(exp: Any, log_file: Path) -> str:
    """The console's one line about a run's exp (the full table is in ``log_file``)."""
    height, width = exp.input_size
    attention = exp.attention or "none"
    if exp.attention:
        attention += f" ({exp.attention_position}, levels {','.join(exp.attention_levels or ('all',))})"
    return (f"exp {exp.exp_name}: {exp.backbone} depth {exp.depth} width {exp.width}, attention {attention}, "
            f"{exp.num_classes} classes, input {height}x{width}, {exp.max_epoch} epochs, data {exp.data_dir}; "
            f"every setting is in {log_file} (--verbose prints them here)")


class RunLog:
    """The writers of one run folder; rank 0 writes, the other ranks' calls do nothing."""

    def __init__(self, run_dir: Path, batch_size: int, writes: bool) -> None:
        """Writers for ``run_dir``; ``batch_size`` (over all processes) gives the images seen of each record."""
        self.run_dir = run_dir
        self.batch_size = batch_size
        self.writes = writes
        self.tensorboard: Any = None
        self.tracker: Any = None  # W&B or MLflow
        self.metrics: MetricsWriter | None = None
        self._start_time = time.perf_counter()

    def open_boards(self, kind: str, args: Namespace, exp: Any) -> None:
        """TensorBoard for ``-l tensorboard``, the W&B or MLflow tracker for ``-l wandb`` / ``-l mlflow``."""
        if not self.writes:
            return
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise UserError(f"-l tensorboard needs the tensorboard package ({err}): pip install "
                                "'yolox-attention[tensorboard]' (or pip install tensorboard), or run with -l none") from None
            self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
        elif kind in ("wandb", "mlflow"):
            from yolox.utils.loggers import build_experiment_logger

            self.tracker = build_experiment_logger(kind, args, exp)

    def start(self) -> None:
        """Open ``metrics.jsonl`` and start the wall clock of the records."""
        if self.writes:
            self.metrics = MetricsWriter(self.run_dir)
        self._start_time = time.perf_counter()

    def log_scalars(self, kind: str, scalars: Mapping[str, float], epoch: int, iteration: int,
                    line: str | None = None, attention: Mapping[str, Mapping[str, float]] | None = None) -> None:
        """Send one ``train`` or ``eval`` record to every writer.

        ``epoch`` is 1-based and ``iteration`` counts the completed ones; ``line`` is the console's text of the
        record, ``attention`` each block's usage figures (``train`` records).
        """
        if not self.writes:
            return
        if line is not None:
            logger.info(line)
        if attention:
            logger.info(f"attention usage: {format_usage(attention)}")
        step = iteration if kind == TRAIN else epoch
        board = board_scalars(kind, scalars, attention)
        if self.tensorboard is not None:
            for name, value in board.items():
                self.tensorboard.add_scalar(name, value, step)
        if self.tracker is not None:
            self.tracker.log_scalars(board, step)
        if self.metrics is not None:
            extra = {} if attention is None else {"attention": attention}
            self.metrics.write(kind, epoch=epoch, iteration=iteration, **scalars,
                               wall_time_s=round(time.perf_counter() - self._start_time, 3),
                               images_seen=iteration * self.batch_size, **extra)

    def log_checkpoint(self, name: str, is_best: bool, epoch: int) -> None:
        """Hand a checkpoint just written to the tracker (which uploads it when asked to)."""
        if self.tracker is not None:
            self.tracker.log_checkpoint(self.run_dir, name, is_best, epoch)

    def close(self) -> None:
        """Close every writer."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.tracker is not None:
            self.tracker.close(self.run_dir)
        if self.metrics is not None:
            self.metrics.close()
