"""The YOLOX training loop: schedule, AMP, multiscale, evaluation cadence, checkpoints, Ctrl-C, DDP.

The loop drives one or more :class:`~yolox.core.member.TrainingMember` (a single run is the one-member
case, a lockstep group several members fed by one data stream, see :mod:`yolox.core.lockstep`); the
non-finite guards live in :mod:`yolox.core.guards`, resuming in :mod:`yolox.core.resume` and the run log in
:mod:`yolox.core.run_log`.
"""

import contextlib
import datetime
import math
import signal
import threading
import time
from argparse import Namespace
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from yolox.core.guards import NonFiniteLossError, NonFiniteWeightsError, format_terms, nonfinite_loss_error
from yolox.core.lockstep import check_lockstep_group, group_does_not_fit
from yolox.core.member import TrainingMember
from yolox.core.memory import check_training_memory
from yolox.core.resume import load_starting_weights, next_input_size, start_data_stream
from yolox.core.run_log import TRAIN, startup_line
from yolox.models.attention_probe import AttentionProbe
from yolox.models.network_blocks import apply_bn_memory_saving
from yolox.utils.allreduce_norm import all_reduce_norm
from yolox.utils.checkpoint import (
    capture_rng_state,
    describe_write_error,
    remove_stale_temporaries,
    restore_rng_state,
)
from yolox.utils.device import resolve_device
from yolox.utils.dist import all_gather_object, any_across_ranks, get_local_rank, get_rank, get_world_size
from yolox.utils.ema import unwrap_model
from yolox.utils.errors import UserError
from yolox.utils.logger import log_to_file, setup_group_logger, setup_logger
from yolox.utils.metric import peak_device_memory_mb, peak_host_memory_mb
from yolox.utils.protocols import TrainingExpLike
from yolox.utils.run_files import LAST_EPOCH, LAST_EPOCH_CKPT, LAST_MOSAIC_EPOCH, LATEST, checkpoint_file
from yolox.utils.setup_env import seed_everything

__all__ = ["NonFiniteLossError", "NonFiniteWeightsError", "Trainer", "autocast_dtype", "set_optimizer_implementation"]

MULTISCALE_EVERY = 10  # iterations between two input-size draws


class _StopRequested(Exception):
    """Ctrl-C was pressed: leave the loop at an iteration boundary so the saved state is consistent."""


class _ForcedStop(KeyboardInterrupt):
    """Ctrl-C was pressed a second time: stop at once, without saving."""


class _EveryMemberFailed(Exception):
    """Every member of a lockstep group has stopped on a non-finite loss or weights: the loop ends."""


class _OfTheMember:
    """A Trainer attribute read from its first member: the official single-run names (``trainer.model``, ...)."""

    def __init__(self, attribute: str) -> None:
        """Read ``attribute`` (a dotted path) of the first member."""
        self.path = attribute.split(".")

    def __get__(self, trainer: Any, owner: type | None = None) -> Any:
        """The member's value (the descriptor itself when read from the class)."""
        if trainer is None:
            return self
        value = trainer.members[0]
        for name in self.path:
            value = getattr(value, name)
        return value


class Trainer:
    """Trains ``exp``'s model with the options of ``tools/train.py`` (an argparse namespace).

    One instance runs in each process; in a distributed run the process group must exist already
    (see :func:`yolox.core.launch.launch`). Only rank 0 writes logs, checkpoints and TensorBoard files.
    ``lockstep_with`` makes it a lockstep group: those exps train alongside ``exp`` from the same batches,
    each into its own run folder (``exp.run_dir``) with the files a run of its own writes; a member whose loss
    or weights go non-finite stops alone (its error in its own train_log.txt) while the others go on.
    """

    model = _OfTheMember("model")
    optimizer = _OfTheMember("optimizer")
    lr_scheduler = _OfTheMember("lr_scheduler")
    ema_model = _OfTheMember("ema_model")
    use_model_ema = _OfTheMember("use_model_ema")
    scaler = _OfTheMember("scaler")
    meter = _OfTheMember("meter")
    evaluator = _OfTheMember("evaluator")
    attention_probe = _OfTheMember("attention_probe")
    best_ap = _OfTheMember("best_ap")
    curr_ap = _OfTheMember("curr_ap")
    file_name = _OfTheMember("run_dir")
    tblogger = _OfTheMember("log.tensorboard")

    def __init__(self, exp: TrainingExpLike, args: Namespace, lockstep_with: Sequence[TrainingExpLike] = ()) -> None:
        self.exp = exp
        self.args = args
        self.max_epoch = int(exp.max_epoch)
        # --stop-after-epoch: train part of the schedule (same learning-rate curve), evaluate, keep latest_ckpt.pth.
        stop_after = getattr(args, "stop_after_epoch", None)
        if stop_after is not None and stop_after < 1:
            raise UserError(f"--stop-after-epoch {stop_after}: give an epoch of the schedule, 1 to {self.max_epoch}")
        self.stop_epoch = self.max_epoch if stop_after is None else min(int(stop_after), self.max_epoch)
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.local_rank = get_local_rank()
        self.is_distributed = self.world_size > 1
        device = resolve_device(getattr(args, "device", "auto"))
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank if self.is_distributed else torch.cuda.current_device())
        self.device = device
        if args.batch_size < self.world_size or args.batch_size % self.world_size:
            raise UserError(
                f"-b/--batch-size {args.batch_size} is the total over {self.world_size} processes: "
                f"use a multiple of {self.world_size}"
            )
        self.per_rank_batch = args.batch_size // self.world_size
        amp_dtype = autocast_dtype(args, device)
        self.use_amp = amp_dtype is not None
        self.amp_dtype = amp_dtype or (torch.float16 if device.type == "cuda" else torch.bfloat16)
        self.channels_last = bool(getattr(args, "channels_last", False))
        # Losses stay on the device and are read back (one sync) at the print interval and before a save.
        self.defer_readback = getattr(args, "loss_readback", "iter") == "print"
        self.save_history_ckpt = bool(exp.save_history_ckpt)
        self.input_size = tuple(exp.input_size)
        exps = [exp, *lockstep_with]
        if getattr(args, "experiment_name", None):  # an official-style launcher names the run on args only
            for member_exp in exps:
                member_exp.exp_name = args.experiment_name
        run_dirs = [member_exp.run_dir for member_exp in exps]
        if lockstep_with:
            check_lockstep_group(exps, run_dirs)
        # fp16 needs loss scaling against underflow; bfloat16 has float32's range and does not.
        self.members = [TrainingMember(member_exp, run_dir, args.batch_size,
                                       torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), self.rank)
                        for member_exp, run_dir in zip(exps, run_dirs)]
        self.active_members = list(self.members)  # those still training (a failed lockstep member leaves)
        self.lockstep = len(self.members) > 1
        verbose = bool(getattr(args, "verbose", False))
        try:
            if self.lockstep:
                labels = [member.label for member in self.members]
                self.log_file = setup_group_logger(run_dirs, labels, self.rank, filename="train_log.txt",
                                                   verbose=verbose)[0]
            else:
                self.log_file = setup_logger(run_dirs[0], distributed_rank=self.rank, filename="train_log.txt",
                                             mode="a", verbose=verbose)
        except OSError as err:
            raise UserError(f"cannot write to the run folder {run_dirs[0]}: {describe_write_error(err)}; "
                            "choose a writable output_dir (exp key) or -expn") from None
        self._interrupt_requested = False
        self._interrupt_announced = False
        self._stop_agreed = False

    # ------------------------------------------------------------------ public entry
    def train(self) -> None:
        """Run the whole schedule; Ctrl-C saves ``latest_ckpt.pth`` at the next iteration boundary."""
        previous_handler = self._install_interrupt_handler()
        try:
            self.before_train()
            self.train_in_epoch()
            if self.stop_epoch < self.max_epoch:
                if self.rank == 0:
                    logger.info(f"stopped after epoch {max(self.stop_epoch, self.start_epoch)} of {self.max_epoch} as "
                                "asked (--stop-after-epoch): latest_ckpt.pth holds it, --resume continues")
                return
        except _StopRequested:
            path = self.save_ckpt(LATEST)
            if self.rank == 0:
                logger.warning(f"interrupted after iteration {self.completed_iters}: state saved to {path}; "
                               "continue with --resume")
            raise KeyboardInterrupt from None
        except _ForcedStop:
            if self.rank == 0:
                logger.warning(f"second Ctrl-C: stopping at once without saving (iteration {self.completed_iters}); "
                               f"--resume continues from the last checkpoint written")
            raise KeyboardInterrupt from None
        except _EveryMemberFailed:
            self._report_every_member_failed()
            return
        except UserError as err:
            raise _without_worker_traceback(err) from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            for member in self.members:
                member.close()
        try:
            self.after_train()
        except _EveryMemberFailed:  # the final checkpoints' weight check
            self._report_every_member_failed()

    def _report_every_member_failed(self) -> None:
        """The lockstep group's end when none of its members is left (each failure is in its own log)."""
        if self.rank == 0:
            logger.warning(f"every member of the lockstep group stopped early: {self._failures()}")

    # ------------------------------------------------------------------ loop
    def train_in_epoch(self) -> None:
        """Run the remaining epochs."""
        for epoch in range(self.start_epoch, self.stop_epoch):
            self.epoch = epoch
            self.before_epoch()
            self.train_in_iter()
            self.after_epoch()

    def train_in_iter(self) -> None:
        """Run the remaining iterations of the current epoch."""
        for iteration in range(self.completed_iters - self.epoch * self.max_iter, self.max_iter):
            self.iter = iteration
            self.train_one_iter()
            self.after_iter()

    def train_one_iter(self) -> None:
        """One optimisation step of every member on the same batch: forward, loss check, backward, EMA, next lr."""
        iter_start = time.perf_counter()
        inps, targets = self._next_batch()
        inps = inps.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        inps, targets = self.exp.preprocess(inps, targets, self.input_size)
        if self.channels_last:
            inps = inps.contiguous(memory_format=torch.channels_last)
        data_end = time.perf_counter()
        stepped = []
        for member in list(self.active_members):
            step_start = time.perf_counter()
            with self._member_scope(member):
                losses, lr = self._measured_step(member, inps, targets)
                stepped.append((member, losses, lr, time.perf_counter() - step_start))
        iter_end = time.perf_counter()
        # Each member's iteration takes as long as the group's: that is what its ETA waits for.
        for member, losses, lr, step_time in stepped:
            member.meter.update(losses, iter_time=iter_end - iter_start, data_time=data_end - iter_start, lr=lr,
                                step_time=step_time)
        if self._first_iter_seconds is None:
            self._first_iter_seconds = iter_end - iter_start
            if self.compile_backend and self.rank == 0:
                logger.info(f"torch.compile ({self.compile_backend}): the first iteration, compilation included, "
                            f"took {self._first_iter_seconds:.1f}s")

    def _measured_step(self, member: TrainingMember, inps: torch.Tensor,
                       targets: torch.Tensor) -> tuple[dict | None, float]:
        """:meth:`_step`; in a lockstep group on CUDA also the member's peak memory, and a clear error when the
        group does not fit."""
        if not (self.lockstep and self.device.type == "cuda"):
            return self._step(member, inps, targets)
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            result = self._step(member, inps, targets)
        except torch.cuda.OutOfMemoryError:
            position = self.members.index(member)
            raise group_does_not_fit([m.label for m in self.members], position,
                                     [m.peak_step_memory_mb for m in self.members], self.device) from None
        member.peak_step_memory_mb = max(member.peak_step_memory_mb, peak_device_memory_mb(self.device))
        return result

    def _step(self, member: TrainingMember, inps: torch.Tensor, targets: torch.Tensor) -> tuple[dict | None, float]:
        """Forward, loss check, backward, optimizer and EMA step of one member; its losses (None when deferred)
        and the learning rate of the next iteration."""
        if member.attention_probe is not None:  # only the logged iteration's attention is looked at
            member.attention_probe.recording = (self.iter + 1) % member.exp.print_interval == 0
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            outputs = member.model(inps, targets)
        loss = outputs["total_loss"]
        if self.defer_readback:
            nonfinite = suspicious = False
            member.unread_outputs.append({name: value.detach() for name, value in outputs.items()})
            if not self.is_distributed:
                self._stop_agreed = self._interrupt_requested
        else:
            loss_value = float(loss.detach())
            nonfinite, suspicious, self._stop_agreed = any_across_ranks(
                [not math.isfinite(loss_value), member.loss_watch.is_suspicious(loss_value),
                 self._interrupt_requested],
                self.device,
            )
        if nonfinite:
            self._raise_nonfinite(member, outputs)

        member.optimizer.zero_grad(set_to_none=True)
        member.scaler.scale(loss).backward()
        member.scaler.step(member.optimizer)
        member.scaler.update()
        if suspicious:
            self._check_weights_after_step(member, outputs)
        if member.use_model_ema:
            member.ema_model.update(member.model)
        lr = member.lr_scheduler.update_lr(self.completed_iters + 1)
        for group in member.optimizer.param_groups:
            group["lr"] = lr
        return (None if self.defer_readback else outputs), lr

    def _read_back_losses(self) -> None:
        """With deferred read-back: fetch the kept losses in one sync, stop on a non-finite one, fill the meters."""
        for member in list(self.active_members):
            with self._member_scope(member):
                self._read_back_member_losses(member)

    @contextlib.contextmanager
    def _member_scope(self, member: TrainingMember) -> Iterator[None]:
        """A member's work, logged as its own; in a lockstep group a non-finite loss or weights stop it alone."""
        with member.logging():
            try:
                yield
            except NonFiniteLossError as err:
                if not self.lockstep:
                    raise
                self._retire(member, err)

    def _retire(self, member: TrainingMember, err: NonFiniteLossError) -> None:
        """Take a failed member out of the group (its error goes to its own log); the loop ends with the last."""
        member.failure = str(err)
        self.active_members.remove(member)
        if self.rank == 0:
            logger.error(str(err))
        if not self.active_members:
            raise _EveryMemberFailed
        if self.rank == 0:
            logger.warning(f"lockstep member {member.label} stopped; "
                           f"{len(self.active_members)} of {len(self.members)} members go on")

    def _read_back_member_losses(self, member: TrainingMember) -> None:
        """One member's deferred losses: checked, then added to its meters."""
        if not member.unread_outputs:
            return
        names = list(member.unread_outputs[0])
        table = torch.stack([torch.stack([row[name].float().reshape(()) for name in names])
                             for row in member.unread_outputs]).tolist()
        first_iteration = self.completed_iters + 1 - len(table)
        member.unread_outputs = []
        records = [dict(zip(names, values)) for values in table]
        bad = next((i for i, record in enumerate(records) if not math.isfinite(record["total_loss"])), None)
        suspicious = [member.loss_watch.is_suspicious(record["total_loss"]) for record in records]
        nonfinite, any_suspicious, self._stop_agreed = any_across_ranks(
            [bad is not None, any(suspicious), self._interrupt_requested], self.device)
        if nonfinite:
            self._raise_nonfinite(member, records[bad or 0], iteration=first_iteration + (bad or 0))
        if any_suspicious:
            self._check_weights_after_step(member, records[-1])
        for record in records:
            member.meter.update(record)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(images, targets)`` of the infinite loader."""
        try:
            batch = next(self.data_iter)
        except Exception:
            # Ctrl-C also stops the loader's worker processes; a fetch failing then is the interruption.
            if self._interrupt_requested and not self.is_distributed:
                raise _StopRequested from None
            raise
        return batch[0], batch[1]

    def after_iter(self) -> None:
        """Log, draw the next multiscale size, and stop here when Ctrl-C was pressed."""
        self.completed_iters += 1
        if self._interrupt_requested and not self._interrupt_announced:
            self._interrupt_announced = True
            if self.rank == 0:
                logger.warning("Ctrl-C: saving latest_ckpt.pth after this iteration (press again to stop at once "
                               "without saving)")
        if (self.iter + 1) % self.exp.print_interval == 0:
            self._read_back_losses()
            self._log_progress()
        if self.completed_iters % MULTISCALE_EVERY == 0:
            self.input_size = next_input_size(self.exp, self.train_loader, self.epoch, self.rank, self.is_distributed,
                                              self.completed_iters)
        if self._stop_agreed:
            raise _StopRequested

    # ------------------------------------------------------------------ set-up and tear-down
    def before_train(self) -> None:
        """Build model, optimizer, data, schedule, EMA, evaluator; resume or fine-tune when asked."""
        if self.rank == 0:
            # The full settings go to train_log.txt once per run; the console gets one line (all with --verbose).
            log_to_file(f"args: {vars(self.args)}")
            for member in self.members:
                with member.logging():
                    log_to_file(f"exp:\n{member.exp}")
                    logger.info(startup_line(member.exp, member.run_dir / self.log_file.name))
        for member in self.members:
            member.log.open_boards(getattr(self.args, "logger", "none"), self.args, member.exp)
        if self.exp.seed is not None:
            seed_everything(int(self.exp.seed) + self.rank)
        else:
            torch.backends.cudnn.benchmark = True
        if getattr(self.args, "cudnn_benchmark", False):
            # Seeded runs too: kernels are then timed and chosen per input size, which may vary the last bits.
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

        self.start_epoch, self.completed_iters = 0, 0
        models = []
        for position, member in enumerate(self.members):
            if position and self.exp.seed is not None:
                # Each member starts from the weights its seed gives a run of its own.
                seed_everything(int(self.exp.seed) + self.rank)
            with member.logging():
                models.append(self._build_model(member))
        if self.rank == 0:
            check_training_memory(models, self.exp, self.per_rank_batch, self.device,
                                  self.amp_dtype if self.use_amp else None)
        resume_point = self._common_resume_point()

        self.no_aug = self.start_epoch >= self.max_epoch - self.exp.no_aug_epochs
        self.train_loader = self.exp.get_data_loader(
            batch_size=self.args.batch_size, is_distributed=self.is_distributed, no_aug=self.no_aug,
            cache_img=getattr(self.args, "cache", None),
        )
        self.max_iter = len(self.train_loader)
        if self.max_iter == 0:
            raise UserError(f"the training set of exp {self.exp.exp_name} is empty: check data_dir and train_ann")
        self._check_training_boxes()
        for member in self.members:
            member.lr_scheduler = member.exp.get_lr_scheduler(member.exp.basic_lr_per_img * self.args.batch_size,
                                                              self.max_iter)
        if resume_point is not None:
            self.completed_iters = resume_point.completed_iterations(self.max_iter, announce=self.rank == 0)
            self.start_epoch = self.completed_iters // self.max_iter
        self.data_iter = start_data_stream(self.train_loader, self.completed_iters * self.per_rank_batch,
                                           announce=self.rank == 0)
        self.compile_backend = getattr(self.args, "compile", None)
        self._first_iter_seconds: float | None = None
        for member, model in zip(self.members, models):
            with member.logging():
                self._wrap_model(member, model)
        # Last, so that nothing after it draws from the generators it puts back.
        self._restore_resume_state(resume_point)
        self.epoch = self.start_epoch  # what a checkpoint written before the first epoch starts reports
        if self.rank == 0:
            logger.info(f"training starts at epoch {self.start_epoch + 1}, iteration {self.completed_iters}; "
                        f"{self.max_iter} iterations per epoch, batch {self.args.batch_size} "
                        f"({self.per_rank_batch} per process x {self.world_size}), device {self.device}, "
                        f"AMP {self.amp_dtype if self.use_amp else 'off'}, EMA {'on' if self.use_model_ema else 'off'}")

    def _build_model(self, member: TrainingMember) -> nn.Module:
        """A member's model on the device and its optimizer, with the weights it starts from."""
        model = member.exp.get_model().to(self.device)
        apply_bn_memory_saving(model, member.exp)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.rank == 0:
            logger.info(self._model_summary(model))
        member.optimizer = member.exp.get_optimizer(self.args.batch_size)
        if self.rank == 0:  # before loading: a resume that then fails leaves no temporaries either
            self._remove_stale_temporaries(member.run_dir)
        point = load_starting_weights(model, member.optimizer, member.exp, self.args, member.latest_checkpoint,
                                      self.device, announce=self.rank == 0)
        if point is not None:
            member.restore_records(point)
            self.start_epoch = point.start_epoch()
        # After a resume, which puts back the checkpoint's param-group flags.
        set_optimizer_implementation(member.optimizer, getattr(self.args, "optimizer_impl", "default"))
        return model

    def _wrap_model(self, member: TrainingMember, model: nn.Module) -> None:
        """The member's training model (DDP, compiled), its EMA, evaluator, attention probe and metrics file."""
        if self.no_aug:
            model.head.use_l1 = True
        # Wrapping broadcasts rank 0's weights, so the EMA made afterwards starts equal on every rank.
        member.model = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None, forward_sync_buffers=False
        ) if self.is_distributed else model
        if self.compile_backend:
            # In place: the state dict keys (checkpoints, EMA) stay those of the plain model.
            member.model.compile(backend=self.compile_backend)
        member.start_ema(model, self.completed_iters)
        self._build_evaluator(member)
        # After the EMA copy, so that only the trained model carries the hooks.
        member.attention_probe = AttentionProbe(model)
        member.log.start()

    def _common_resume_point(self) -> Any:
        """The checkpoint the run continues from; the members of a lockstep group must all continue from the
        same iteration."""
        points = [member.resume_point for member in self.members]
        iterations = {None if point is None else point.ckpt.get("iteration") for point in points}
        if len(iterations) > 1:
            found = ", ".join(f"{member.label}: " + ("none" if point is None else str(point.ckpt.get("iteration")))
                              for member, point in zip(self.members, points))
            raise UserError(f"the members of a lockstep group resume from checkpoints of different iterations "
                            f"({found}): resume them in separate groups of equal iterations")
        return points[0]

    def _restore_resume_state(self, point: Any) -> None:
        """Put back the EMA, AMP scaler, input size and RNG states of a resumed run."""
        if point is None:
            return
        for member in self.members:
            member.resume_point.restore_averages(member.ema_model, member.scaler)
            member.resume_point = None
        self.input_size = point.input_size() or self.input_size
        point.restore_rng(self.rank, self.world_size, self.completed_iters, announce=self.rank == 0)

    def after_train(self) -> None:
        """Write the final checkpoint (always) and report the best AP."""
        for member in self.active_members:
            all_reduce_norm(unwrap_model(member.model))
        path = self.save_ckpt(LAST_EPOCH)
        for member in self.active_members:
            if member.pictures is not None:
                member.pictures.write_curves()
        if self.rank != 0:
            return
        if not self.lockstep:
            logger.info(f"training of {self.exp.exp_name} is done: best AP50:95 {self.best_ap:.4f}, "
                        f"final checkpoint {path}")
            return
        for member in self.active_members:
            with member.logging():
                logger.info(f"training of {member.label} is done: best AP50:95 {member.best_ap:.4f}, final "
                            f"checkpoint {member.run_dir / LAST_EPOCH_CKPT}")
        if len(self.active_members) < len(self.members):
            logger.warning(f"lockstep group done: {len(self.active_members)} of {len(self.members)} members "
                           f"trained to the end; stopped early: {self._failures()}")

    def _failures(self) -> str:
        """``label (reason)`` of each member that stopped early."""
        return "; ".join(f"{member.label} ({member.failure})" for member in self.members if member.failure)

    def before_epoch(self) -> None:
        """Switch mosaic/mixup off and the L1 loss on for the last ``no_aug_epochs`` epochs."""
        if not self.no_aug and self.epoch >= self.max_epoch - self.exp.no_aug_epochs:
            if self.rank == 0:
                logger.info(f"epoch {self.epoch + 1}: no mosaic/mixup from now on, L1 loss on, evaluation every epoch")
            self._close_mosaic()
            for member in self.active_members:
                unwrap_model(member.model).head.use_l1 = True
            self.no_aug = True
            self.save_ckpt(LAST_MOSAIC_EPOCH)

    def after_epoch(self) -> None:
        """Evaluate when due, then write latest (and best / per-epoch) checkpoints."""
        epoch_number = self.epoch + 1
        stopping_here = epoch_number == self.stop_epoch < self.max_epoch
        if self.no_aug or epoch_number % self.exp.eval_interval == 0 or stopping_here:
            for member in self.active_members:
                all_reduce_norm(unwrap_model(member.model))
            # Saved first: an evaluation that fails (a bad validation image) must not lose the epoch.
            self.save_ckpt(LATEST)
            # Every member evaluates from the same random state (a loader draws from it), as a run of its own.
            before_evaluation = capture_rng_state() if self.lockstep else None
            for member in list(self.active_members):
                if before_evaluation is not None:
                    restore_rng_state(before_evaluation)
                improved = self.evaluate(member)
                self.save_ckpt(LATEST, update_best=improved, members=[member])
        else:
            self.save_ckpt(LATEST)
        if self.save_history_ckpt:
            self.save_ckpt(f"epoch_{epoch_number}")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, member: TrainingMember | None = None) -> bool:
        """Evaluate a member (the only one of a single run by default); True when best_ckpt.pth should take
        this epoch (see :meth:`TrainingMember.evaluate`)."""
        member = member or self.members[0]
        with member.logging():
            return member.evaluate(self.is_distributed, self.epoch + 1, self.completed_iters)

    # ------------------------------------------------------------------ checkpoints
    def save_ckpt(self, name: str, update_best: bool = False,
                  members: list[TrainingMember] | None = None) -> Path | None:
        """Write ``<name>_ckpt.pth`` of every member (or of ``members``) on rank 0; return the first path.

        Every rank must call it: the RNG states of all ranks are gathered into the file. Weights holding a
        NaN or an infinity are never written: :class:`NonFiniteWeightsError` stops the run instead.
        """
        members = self.active_members if members is None else members
        self._read_back_losses()  # deferred losses are checked before anything is written
        for member in list(members):
            with self._member_scope(member):
                member.check_weights(f"before writing {checkpoint_file(name)}", self.completed_iters,
                                     self.epoch + 1, self.max_epoch)
        members = [member for member in members if member.failure is None]
        rng_states = all_gather_object(capture_rng_state())
        if self.rank != 0 or not members:
            return None
        paths = []
        for member in members:
            with member.logging():
                state = member.checkpoint_state(self.completed_iters, self.max_iter, self.input_size, rng_states)
                paths.append(member.write_checkpoint(name, state, update_best))
        return paths[0]

    # ------------------------------------------------------------------ helpers
    def _close_mosaic(self) -> None:
        """Turn mosaic/mixup off in the running loader (dataset wrapper and batch sampler)."""
        dataset = self.train_loader.dataset
        dataset.close_mosaic()
        batch_sampler = getattr(self.train_loader, "batch_sampler", None)
        if hasattr(batch_sampler, "mosaic"):
            batch_sampler.mosaic = False

    def _check_weights_after_step(self, member: TrainingMember, outputs: dict) -> None:
        """After a step with a suspicious loss: stop when it left NaN or infinite weights."""
        member.check_weights(f"after the optimizer step ({format_terms(outputs, losses_only=True)})",
                             self.completed_iters + 1, self.epoch + 1, self.max_epoch)

    def _raise_nonfinite(self, member: TrainingMember, outputs: dict, iteration: int | None = None) -> None:
        """Stop with the iteration, every loss term, and the last good checkpoint (left untouched)."""
        iteration = iteration or self.completed_iters + 1  # given when read back late (--loss-readback print)
        raise nonfinite_loss_error(outputs, iteration, self.max_iter, self.max_epoch, member.latest_checkpoint)

    def _remove_stale_temporaries(self, run_dir: Path) -> None:
        """Delete temporary checkpoint files that a killed save left in the run folder, and say so."""
        removed = remove_stale_temporaries(run_dir)
        if removed:
            logger.warning(f"removed {len(removed)} temporary checkpoint file(s) left by an interrupted save in "
                           f"{run_dir}: {', '.join(path.name for path in removed)}")

    def _check_training_boxes(self) -> None:
        """An error when no training image has a box: the detector would learn nothing."""
        dataset = self.train_loader.dataset
        dataset = getattr(dataset, "dataset", dataset)
        labelled = getattr(dataset, "labelled_indices", None)
        if labelled is not None and len(dataset) and not labelled:
            raise UserError(f"the training set of exp {self.exp.exp_name} has {len(dataset)} images but no boxes "
                            "at all: check train_ann (every annotation may have been dropped; see the warnings above)")

    def _log_progress(self) -> None:
        """The per-interval record of every member: epoch/iter, losses, lr, size, times, images/s, memory, ETA."""
        if self.rank == 0:
            for member in self.active_members:
                with member.logging():
                    self._log_member_progress(member)
        for member in self.members:
            member.meter.clear_meters()

    def _log_member_progress(self, member: TrainingMember) -> None:
        """One member's progress line and scalars (losses, lr, attention usage) to every writer of its log."""
        meter = member.meter
        iter_time = meter["iter_time"].avg
        left_iters = self.max_iter * self.max_epoch - self.completed_iters
        eta = datetime.timedelta(seconds=int(iter_time * left_iters))
        losses = {name: item.latest for name, item in meter.items() if name.endswith("_loss")}
        memory = f"mem: {peak_host_memory_mb():.0f}MB"
        if self.lockstep:
            # The process's memory holds every member; on CUDA the peak of this member's own step is measured.
            memory = f"step_time: {meter['step_time'].avg:.3f}s, " + (
                f"gpu mem (its step): {member.peak_step_memory_mb:.0f}MB, " if self.device.type == "cuda" else ""
            ) + f"process {memory}"
        elif self.device.type == "cuda":
            memory = f"gpu mem: {peak_device_memory_mb(self.device):.0f}MB, " + memory
        line = (
            f"epoch: {self.epoch + 1}/{self.max_epoch}, iter: {self.iter + 1}/{self.max_iter}, "
            f"{', '.join(f'{name}: {value:.3f}' for name, value in losses.items())}, "
            f"num_fg: {meter['num_fg'].latest:.1f}, lr: {meter['lr'].latest:.3e}, "
            f"size: {self.input_size[0]}x{self.input_size[1]}, iter_time: {iter_time:.3f}s, "
            f"data_time: {meter['data_time'].avg:.3f}s, {self.args.batch_size / iter_time:.1f} img/s, "
            f"{memory}, ETA: {eta}"
        )
        usage = member.attention_probe.usage() if member.attention_probe is not None else {}
        member.log.log_scalars(TRAIN, {**losses, "lr": meter["lr"].latest}, epoch=self.epoch + 1,
                               iteration=self.completed_iters, line=line, attention=usage)

    def _model_summary(self, model: nn.Module) -> str:
        """Parameter count and GFLOPs at the test size."""
        from yolox.utils.model_utils import get_model_info

        return f"model summary: {get_model_info(model, tuple(self.exp.test_size))}"

    def _build_evaluator(self, member: TrainingMember) -> None:
        """A member's evaluator, or a clear note that evaluation is skipped when it cannot be imported."""
        try:
            member.evaluator = member.exp.get_evaluator(batch_size=self.args.batch_size,
                                                        is_distributed=self.is_distributed)
        except ImportError as err:
            member.evaluator = None
            if self.rank == 0:
                logger.warning(f"evaluation during training is skipped: the evaluator cannot be imported ({err}); "
                               "checkpoints are still written, best_ckpt.pth is not")

    def _install_interrupt_handler(self) -> Any:
        """Make the first Ctrl-C a request to save and stop; the second one stops at once without saving."""
        if threading.current_thread() is not threading.main_thread():
            return None

        # Only flags here: logging from a signal handler can re-enter loguru's lock. The loop reports it.
        def request_stop(signum: int, frame: Any) -> None:
            if self._interrupt_requested:
                raise _ForcedStop
            self._interrupt_requested = True

        return signal.signal(signal.SIGINT, request_stop)


def autocast_dtype(args: Namespace, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp fp16|bf16`` (or ``--fp16``: fp16 on CUDA, bf16 elsewhere); None when off."""
    amp = getattr(args, "amp", None)
    if amp is None:
        if not getattr(args, "fp16", False):
            return None
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if amp == "fp16" and device.type != "cuda":
        raise UserError(f"--amp fp16 needs a CUDA device (this run uses {device}): use --amp bf16")
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]


def set_optimizer_implementation(optimizer: torch.optim.Optimizer, implementation: str) -> None:
    """``foreach`` or ``fused`` (one kernel for all tensors of a group) on every param group; ``default``: unchanged."""
    if implementation == "default":
        return
    for group in optimizer.param_groups:
        group["foreach"] = implementation == "foreach"
        group["fused"] = implementation == "fused"


def _without_worker_traceback(err: UserError) -> UserError:
    """The user's error alone when a DataLoader worker wrapped it in its traceback text."""
    text = str(err)
    marker = f"{type(err).__name__}: "
    if "DataLoader worker" not in text or marker not in text:
        return err
    return type(err)(text.rsplit(marker, 1)[1].strip())
