"""Learning-rate schedules indexed by the global iteration (a pure function, so resuming needs no state)."""

import math
from bisect import bisect_right
from collections.abc import Sequence

SCHEDULERS = ("yoloxwarmcos", "warmcos", "cos", "multistep")


class LRScheduler:
    """Learning rate as a function of the iteration for one of the named schedules.

    ``yoloxwarmcos``: quadratic warm-up from ``warmup_lr_start`` over ``warmup_epochs``, cosine decay to
    ``lr * min_lr_ratio``, then flat at that minimum for the last ``no_aug_epochs``.
    ``warmcos``: linear warm-up, then cosine decay to 0 at the last iteration.
    ``cos``: cosine decay from ``lr`` to 0 over the whole run.
    ``multistep``: ``lr`` times ``gamma`` for each of ``milestones`` (epochs) already reached.
    """

    def __init__(
        self,
        name: str,
        lr: float,
        iters_per_epoch: int,
        total_epochs: int,
        warmup_epochs: float = 5,
        warmup_lr_start: float = 0.0,
        no_aug_epochs: int = 15,
        min_lr_ratio: float = 0.05,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
    ) -> None:
        if name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {name!r}: set exp.scheduler to one of {', '.join(SCHEDULERS)}")
        if iters_per_epoch <= 0 or total_epochs <= 0:
            raise ValueError(
                f"the schedule needs iters_per_epoch > 0 and total_epochs > 0, got {iters_per_epoch} and {total_epochs}"
            )
        if name == "multistep" and not milestones:
            raise ValueError("scheduler 'multistep' needs milestones (epochs at which the lr is multiplied by gamma)")
        self.name = name
        self.lr = lr
        self.iters_per_epoch = iters_per_epoch
        self.total_iters = iters_per_epoch * total_epochs
        self.warmup_iters = int(round(iters_per_epoch * warmup_epochs))
        self.warmup_lr_start = warmup_lr_start
        self.no_aug_iters = iters_per_epoch * no_aug_epochs
        self.min_lr = lr * min_lr_ratio
        self.milestone_iters = sorted(int(m * iters_per_epoch) for m in milestones)
        self.gamma = gamma
        # Equality is a valid schedule: warm-up straight into the flat minimum of the no-aug epochs.
        if name == "yoloxwarmcos" and self.warmup_iters + self.no_aug_iters > self.total_iters:
            raise ValueError(
                f"yoloxwarmcos needs warmup_epochs ({warmup_epochs}) + no_aug_epochs ({no_aug_epochs}) "
                f"<= max_epoch ({total_epochs}): lower them in the exp"
            )

    def update_lr(self, iters: int) -> float:
        """Return the learning rate for global iteration ``iters`` (0 = before the first step)."""
        if self.name == "yoloxwarmcos":
            return self._yolox_warm_cos(iters)
        if self.name == "warmcos":
            return self._warm_cos(iters)
        if self.name == "cos":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(iters, self.total_iters) / self.total_iters))
        return self.lr * self.gamma ** bisect_right(self.milestone_iters, iters)

    def _yolox_warm_cos(self, iters: int) -> float:
        """Quadratic warm-up, cosine to the minimum, flat minimum for the no-augmentation tail."""
        if self.warmup_iters > 0 and iters <= self.warmup_iters:
            progress = iters / self.warmup_iters
            return self.warmup_lr_start + (self.lr - self.warmup_lr_start) * progress**2
        if iters >= self.total_iters - self.no_aug_iters:
            return self.min_lr
        cosine_span = self.total_iters - self.warmup_iters - self.no_aug_iters
        phase = (iters - self.warmup_iters) / cosine_span
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * phase))

    def _warm_cos(self, iters: int) -> float:
        """Linear warm-up, then cosine decay to zero at the end of the run."""
        if self.warmup_iters > 0 and iters <= self.warmup_iters:
            return self.warmup_lr_start + (self.lr - self.warmup_lr_start) * iters / self.warmup_iters
        cosine_span = max(self.total_iters - self.warmup_iters, 1)
        phase = min(iters - self.warmup_iters, cosine_span) / cosine_span
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * phase))
