"""Resume and fine-tune: which checkpoint a run starts from, putting its state back, continuing the data stream
(the sampler position and the multiscale sizes).

``--resume`` restores a member's full training state (raw and EMA weights, optimizer, AMP scaler, best AP)
and the loop's position (epoch, iteration, input size, every process's RNG states), so that an interrupted
run continues exactly as an uninterrupted one would. ``-c`` alone loads the weights non-strictly.
"""

import inspect
import itertools
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn

from yolox.utils.checkpoint import load_checkpoint_file, load_ckpt, restore_rng_state
from yolox.utils.errors import UserError


class SkipSampler(torch.utils.data.Sampler):
    """Drops the first ``skip`` indices of another sampler: the data stream continues where a run stopped."""

    def __init__(self, sampler: Any, skip: int) -> None:
        """Wrap ``sampler``, leaving out its first ``skip`` indices."""
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator:
        """The wrapped sampler's indices after the skipped ones."""
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        """The wrapped sampler's length (the epoch length stays that of an uninterrupted run)."""
        return len(self.sampler)


def start_data_stream(loader: Any, already_seen: int, announce: bool) -> Iterator:
    """Iterator over ``loader``'s batches after the ``already_seen`` samples of this process.

    Call it before the RNG states are restored: creating the iterator draws a torch random number.
    """
    batch_sampler = getattr(loader, "batch_sampler", None)
    if already_seen and batch_sampler is not None and hasattr(batch_sampler, "sampler"):
        batch_sampler.sampler = SkipSampler(batch_sampler.sampler, already_seen)
    elif already_seen and announce:
        logger.warning("the training loader has no batch sampler to fast-forward: after resuming, the data "
                       "order starts again from the beginning")
    return iter(loader)


def next_input_size(exp: Any, loader: Any, epoch: int, rank: int, is_distributed: bool,
                    iteration: int) -> tuple[int, ...]:
    """The multiscale input size drawn after ``iteration`` completed iterations.

    A seeded exp draws it from (seed, iteration), so an interrupted run, a run with other loader workers or
    another variant of the seed gets the same sizes; an exp whose ``random_resize`` keeps the official
    signature (no ``iteration``) draws as it always did.
    """
    if "iteration" in inspect.signature(exp.random_resize).parameters:
        return tuple(exp.random_resize(loader, epoch, rank, is_distributed, iteration=iteration))
    return tuple(exp.random_resize(loader, epoch, rank, is_distributed))


class ResumePoint:
    """The checkpoint a ``--resume`` run continues from, read once and consulted while the run is built."""

    def __init__(self, ckpt: dict, path: Path, start_epoch_flag: int | None) -> None:
        """``start_epoch_flag`` is ``-e`` (1-based) when given."""
        self.ckpt = ckpt
        self.path = path
        self.start_epoch_flag = start_epoch_flag

    def start_epoch(self) -> int:
        """The 0-based epoch to continue with: ``-e`` (1-based) when given, else the checkpoint's."""
        if self.start_epoch_flag is not None:
            return int(self.start_epoch_flag) - 1
        return int(self.ckpt["start_epoch"])

    def completed_iterations(self, max_iter: int, announce: bool) -> int:
        """Iterations already done, mid-epoch ones included (an ``-e`` override starts at its epoch)."""
        ckpt = self.ckpt
        same_epoch_length = ckpt.get("iters_per_epoch") == max_iter
        if self.start_epoch_flag is None and "iteration" in ckpt and same_epoch_length:
            return int(ckpt["iteration"])
        if "iteration" in ckpt and not same_epoch_length and announce:
            logger.warning(f"{self.path} was written with {ckpt.get('iters_per_epoch')} iterations per "
                           f"epoch, this run has {max_iter}: continuing from the start of epoch "
                           f"{self.start_epoch() + 1}")
        return self.start_epoch() * max_iter

    def restore_averages(self, ema_model: Any, scaler: torch.amp.GradScaler) -> None:
        """Put back the EMA weights and update count (when the run keeps an EMA) and the AMP loss scale."""
        ckpt = self.ckpt
        if ema_model is not None and ckpt.get("ema_updates") is not None:
            ema_model.ema.load_state_dict(ckpt["model"])
            ema_model.updates = int(ckpt["ema_updates"])
        if scaler.is_enabled() and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])

    def input_size(self) -> tuple[int, ...] | None:
        """The multiscale input size in use when the checkpoint was written (None in older checkpoints)."""
        size = self.ckpt.get("input_size")
        return tuple(size) if size else None

    def restore_rng(self, rank: int, world_size: int, completed_iters: int, announce: bool) -> None:
        """This process's RNG states, when the checkpoint holds one per process for this very iteration."""
        rng_states = self.ckpt.get("rng_states") or []
        exact = len(rng_states) == world_size and completed_iters == self.ckpt.get("iteration")
        if exact:
            restore_rng_state(rng_states[rank])
        elif announce:
            logger.warning(f"{self.path}: random states not restored (saved by {len(rng_states)} processes "
                           f"for iteration {self.ckpt.get('iteration')}, now {world_size} from {completed_iters}); "
                           "augmentation will differ from an uninterrupted run")


def finished_run_message(ckpt_file: Path, max_epoch: int) -> str:
    """What ``--resume`` of a run that has done all its ``max_epoch`` epochs says, and how to train it longer."""
    return (f"{ckpt_file} is a finished run: all {max_epoch} epochs are done, there is nothing left to train. To "
            f"train it longer, resume with a larger max_epoch: add the override 'max_epoch {max_epoch + 10}' (any "
            f"number above {max_epoch}) to the same command; to train afresh, give a new -expn")


def load_starting_weights(model: nn.Module, optimizer: torch.optim.Optimizer, exp: Any, args: Namespace,
                          latest_checkpoint: Path, device: torch.device, announce: bool) -> ResumePoint | None:
    """``--resume``: load the weights and optimizer of ``-c`` (default ``latest_checkpoint``) and return where
    to continue; ``-c`` alone: non-strict load of the weights for fine-tuning (None returned)."""
    if args.resume:
        ckpt_file = Path(args.ckpt) if args.ckpt else latest_checkpoint
        ckpt = load_checkpoint_file(ckpt_file, map_location=device)
        exp.check_meta(ckpt.get("meta"), str(ckpt_file))
        weights = ckpt["model_raw"] if "model_raw" in ckpt else ckpt["model"]
        try:
            model.load_state_dict(weights)
        except RuntimeError as err:
            first_lines = " ".join(str(err).splitlines()[:3])
            raise UserError(f"checkpoint {ckpt_file} does not fit this exp's model ({first_lines[:300]}...): "
                            "to start a new run from its weights use -c without --resume") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        point = ResumePoint(ckpt, ckpt_file, args.start_epoch)
        if announce and point.start_epoch() >= int(exp.max_epoch):
            logger.warning(finished_run_message(ckpt_file, int(exp.max_epoch)))
        elif announce:
            logger.info(f"resuming from {ckpt_file} (epoch {point.start_epoch() + 1})")
        return point
    if args.ckpt:
        if announce:
            logger.info(f"loading weights from {args.ckpt} for fine-tuning")
        load_ckpt(model, load_checkpoint_file(args.ckpt, map_location=device))
    return None
