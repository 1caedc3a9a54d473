"""Non-finite guards of a training member: a NaN or infinite loss, and weights broken by a step, stop the run.

The loss is checked every step (or at read-back, with deferred losses); the weights are checked only after a
step whose loss looks suspicious, and always before a checkpoint is written, so nothing non-finite ever
replaces the last good checkpoint.
"""

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolox.utils.checkpoint import first_nonfinite_tensor

# A loss this many times above its running average makes the weights be checked right after the step.
SUSPICIOUS_LOSS_RATIO = 10.0
LOSS_AVERAGE_MOMENTUM = 0.9
RECOVERY_ADVICE = ("Lower the learning rate (basic_lr_per_img), check the labels, or train without --fp16, "
                   "then continue with --resume")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration, the loss terms and the checkpoint kept."""


class NonFiniteWeightsError(NonFiniteLossError):
    """Weights (raw or EMA) became NaN or infinite; nothing non-finite is written over a checkpoint."""


class LossSpikeWatch:
    """A running average of the finite losses; a loss far above it (or the first one) is suspicious."""

    def __init__(self) -> None:
        """No loss seen yet."""
        self.average: float | None = None

    def is_suspicious(self, loss_value: float) -> bool:
        """True for the first step and for a loss far above the running average: the weights get checked then."""
        average = self.average
        suspicious = average is None or loss_value > SUSPICIOUS_LOSS_RATIO * abs(average)
        if math.isfinite(loss_value) and not suspicious:
            self.average = LOSS_AVERAGE_MOMENTUM * average + (1 - LOSS_AVERAGE_MOMENTUM) * loss_value
        elif average is None and math.isfinite(loss_value):
            self.average = loss_value
        return suspicious


def format_terms(outputs: Mapping[str, Any], losses_only: bool = False) -> str:
    """``name=value`` for each output (each ``*loss`` one with ``losses_only``), comma separated."""
    return ", ".join(f"{name}={float(torch.as_tensor(value).detach()):.4g}" for name, value in outputs.items()
                     if not losses_only or name.endswith("loss"))


def nonfinite_loss_error(outputs: Mapping[str, Any], iteration: int, max_iter: int, max_epoch: int,
                         latest_checkpoint: Path) -> NonFiniteLossError:
    """The error for a non-finite loss at the 1-based ``iteration``: every term and the last good checkpoint."""
    epochs_done, iter_in_epoch = divmod(iteration - 1, max_iter)
    kept = (f"the last good checkpoint {latest_checkpoint} (epoch {epochs_done}) is kept"
            if latest_checkpoint.is_file() else "no checkpoint had been written yet")
    return NonFiniteLossError(
        f"non-finite loss at iteration {iteration} (epoch {epochs_done + 1}/{max_epoch}, "
        f"iter {iter_in_epoch + 1}/{max_iter}): {format_terms(outputs)}; {kept}. {RECOVERY_ADVICE}"
    )


def check_weights(models: list[tuple[str, nn.Module]], when: str, iteration: int, epoch: int, max_epoch: int,
                  latest_checkpoint: Path) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the first NaN/inf tensor among ``(kind, model)`` pairs."""
    bad = next(((kind, tensor) for kind, model in models
                if (tensor := first_nonfinite_tensor(model.state_dict())) is not None), None)
    if bad is None:
        return
    kept = (f"the last good checkpoint {latest_checkpoint} is kept" if latest_checkpoint.is_file()
            else "no checkpoint had been written yet")
    raise NonFiniteWeightsError(
        f"non-finite weights {when} at iteration {iteration} (epoch {epoch}/{max_epoch}): the {bad[0]} model's "
        f"tensor {bad[1]} holds NaN or inf; nothing was saved, {kept}. {RECOVERY_ADVICE}"
    )
