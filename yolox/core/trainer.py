"""The YOLOX training loop: schedule, AMP, EMA, multiscale, evaluation, checkpoints, resume, DDP."""

import datetime
import itertools
import math
import signal
import threading
import time
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import yolox
from yolox.core.metrics_log import MetricsWriter
from yolox.evaluators.base import evaluation_figures
from yolox.models.attention_probe import AttentionProbe, format_usage
from yolox.utils.allreduce_norm import all_reduce_norm
from yolox.utils.checkpoint import (
    capture_rng_state,
    describe_write_error,
    first_nonfinite_tensor,
    load_checkpoint_file,
    load_ckpt,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
)
from yolox.utils.device import resolve_device
from yolox.utils.dist import all_gather_object, any_across_ranks, get_local_rank, get_rank, get_world_size
from yolox.utils.ema import ModelEMA, unwrap_model
from yolox.utils.errors import UserError
from yolox.utils.logger import setup_logger
from yolox.utils.metric import MeterBuffer, peak_device_memory_mb, peak_host_memory_mb
from yolox.utils.protocols import TrainingExpLike
from yolox.utils.setup_env import seed_everything

EMA_DECAY = 0.9998
MULTISCALE_EVERY = 10  # iterations between two input-size draws
# A loss this many times above its running average makes the weights be checked right after the step.
SUSPICIOUS_LOSS_RATIO = 10.0
LOSS_AVERAGE_MOMENTUM = 0.9


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration, the loss terms and the checkpoint kept."""


class NonFiniteWeightsError(NonFiniteLossError):
    """Weights (raw or EMA) became NaN or infinite; nothing non-finite is written over a checkpoint."""


class _StopRequested(Exception):
    """Ctrl-C was pressed: leave the loop at an iteration boundary so the saved state is consistent."""


class _ForcedStop(KeyboardInterrupt):
    """Ctrl-C was pressed a second time: stop at once, without saving."""


class _SkipSampler(torch.utils.data.Sampler):
    """Drops the first ``skip`` indices of another sampler: the data stream continues where a run stopped."""

    def __init__(self, sampler: Any, skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.sampler)


class Trainer:
    """Trains ``exp``'s model with the options of ``tools/train.py`` (an argparse namespace).

    One instance runs in each process; in a distributed run the process group must exist already
    (see :func:`yolox.core.launch.launch`). Only rank 0 writes logs, checkpoints and TensorBoard files.
    """

    def __init__(self, exp: TrainingExpLike, args: Namespace) -> None:
        self.exp = exp
        self.args = args
        self.max_epoch = int(exp.max_epoch)
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
        # fp16 needs loss scaling against underflow; bfloat16 has float32's range and does not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.channels_last = bool(getattr(args, "channels_last", False))
        # Losses stay on the device and are read back (one sync) at the print interval and before a save.
        self.defer_readback = getattr(args, "loss_readback", "iter") == "print"
        self._unread_outputs: list[dict] = []
        self.use_model_ema = bool(exp.ema)
        self.save_history_ckpt = bool(exp.save_history_ckpt)
        self.input_size = tuple(exp.input_size)
        self.best_ap = 0.0
        self.curr_ap = 0.0
        self.meter = MeterBuffer(window_size=exp.print_interval)
        self.file_name = Path(exp.output_dir) / args.experiment_name
        try:
            self.log_file = setup_logger(self.file_name, distributed_rank=self.rank, filename="train_log.txt", mode="a")
        except OSError as err:
            raise UserError(f"cannot write to the run folder {self.file_name}: {describe_write_error(err)}; "
                            "choose a writable output_dir (exp key) or -expn") from None
        self.tblogger: Any = None
        self.experiment_logger: Any = None  # W&B or MLflow tracker (-l wandb / -l mlflow), rank 0 only
        self.evaluator: Any = None
        self.metrics: MetricsWriter | None = None
        self.attention_probe: AttentionProbe | None = None
        self._resume_state: dict | None = None
        self._interrupt_requested = False
        self._interrupt_announced = False
        self._stop_agreed = False
        self._loss_average: float | None = None

    # ------------------------------------------------------------------ public entry
    def train(self) -> None:
        """Run the whole schedule; Ctrl-C saves ``latest_ckpt.pth`` at the next iteration boundary."""
        previous_handler = self._install_interrupt_handler()
        try:
            self.before_train()
            self.train_in_epoch()
        except _StopRequested:
            path = self.save_ckpt("latest")
            if self.rank == 0:
                logger.warning(f"interrupted after iteration {self.completed_iters}: state saved to {path}; "
                               "continue with --resume")
            raise KeyboardInterrupt from None
        except _ForcedStop:
            if self.rank == 0:
                logger.warning(f"second Ctrl-C: stopping at once without saving (iteration {self.completed_iters}); "
                               f"--resume continues from the last checkpoint written")
            raise KeyboardInterrupt from None
        except UserError as err:
            raise _without_worker_traceback(err) from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if self.tblogger is not None:
                self.tblogger.close()
            if self.experiment_logger is not None:
                self.experiment_logger.close(self.file_name)
            if self.attention_probe is not None:
                self.attention_probe.close()
        self.after_train()

    # ------------------------------------------------------------------ loop
    def train_in_epoch(self) -> None:
        """Run the remaining epochs."""
        for epoch in range(self.start_epoch, self.max_epoch):
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
        """One optimisation step: fetch, forward, loss check, backward, EMA, next learning rate."""
        iter_start = time.perf_counter()
        inps, targets = self._next_batch()
        inps = inps.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        inps, targets = self.exp.preprocess(inps, targets, self.input_size)
        if self.channels_last:
            inps = inps.contiguous(memory_format=torch.channels_last)
        data_end = time.perf_counter()
        if self.attention_probe is not None:  # only the logged iteration's attention is looked at
            self.attention_probe.recording = (self.iter + 1) % self.exp.print_interval == 0

        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            outputs = self.model(inps, targets)
        loss = outputs["total_loss"]
        if self.defer_readback:
            nonfinite = suspicious = False
            self._unread_outputs.append({name: value.detach() for name, value in outputs.items()})
            if not self.is_distributed:
                self._stop_agreed = self._interrupt_requested
        else:
            loss_value = float(loss.detach())
            nonfinite, suspicious, self._stop_agreed = any_across_ranks(
                [not math.isfinite(loss_value), self._loss_is_suspicious(loss_value), self._interrupt_requested],
                self.device,
            )
        if nonfinite:
            self._raise_nonfinite(outputs)

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if suspicious:
            self._check_weights_after_step(outputs)
        if self.use_model_ema:
            self.ema_model.update(self.model)
        lr = self.lr_scheduler.update_lr(self.completed_iters + 1)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        iter_end = time.perf_counter()
        losses = None if self.defer_readback else outputs
        self.meter.update(losses, iter_time=iter_end - iter_start, data_time=data_end - iter_start, lr=lr)
        if self._first_iter_seconds is None:
            self._first_iter_seconds = iter_end - iter_start
            if self.compile_backend and self.rank == 0:
                logger.info(f"torch.compile ({self.compile_backend}): the first iteration, compilation included, "
                            f"took {self._first_iter_seconds:.1f}s")

    def _read_back_losses(self) -> None:
        """With deferred read-back: fetch the kept losses in one sync, stop on a non-finite one, fill the meters."""
        if not self._unread_outputs:
            return
        names = list(self._unread_outputs[0])
        table = torch.stack([torch.stack([row[name].float().reshape(()) for name in names])
                             for row in self._unread_outputs]).tolist()
        first_iteration = self.completed_iters + 1 - len(table)
        self._unread_outputs = []
        records = [dict(zip(names, values)) for values in table]
        bad = next((i for i, record in enumerate(records) if not math.isfinite(record["total_loss"])), None)
        suspicious = [self._loss_is_suspicious(record["total_loss"]) for record in records]
        nonfinite, any_suspicious, self._stop_agreed = any_across_ranks(
            [bad is not None, any(suspicious), self._interrupt_requested], self.device)
        if nonfinite:
            self._raise_nonfinite(records[bad or 0], iteration=first_iteration + (bad or 0))
        if any_suspicious:
            self._check_weights_after_step(records[-1])
        for record in records:
            self.meter.update(record)

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
            self.input_size = tuple(self.exp.random_resize(self.train_loader, self.epoch, self.rank, self.is_distributed))
        if self._stop_agreed:
            raise _StopRequested

    # ------------------------------------------------------------------ set-up and tear-down
    def before_train(self) -> None:
        """Build model, optimizer, data, schedule, EMA, evaluator; resume or fine-tune when asked."""
        if self.rank == 0:
            logger.info(f"args: {vars(self.args)}")
            logger.info(f"exp:\n{self.exp}")
        self._build_tensorboard()
        self._build_experiment_logger()
        if self.exp.seed is not None:
            seed_everything(int(self.exp.seed) + self.rank)
        else:
            torch.backends.cudnn.benchmark = True
        if getattr(self.args, "cudnn_benchmark", False):
            # Seeded runs too: kernels are then timed and chosen per input size, which may vary the last bits.
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

        model = self.exp.get_model().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.rank == 0:
            logger.info(self._model_summary(model))
        self.optimizer = self.exp.get_optimizer(self.args.batch_size)
        self.start_epoch, self.completed_iters = 0, 0
        self._load_weights(model)
        # After a resume, which puts back the checkpoint's param-group flags.
        set_optimizer_implementation(self.optimizer, getattr(self.args, "optimizer_impl", "default"))
        if self.rank == 0:
            self._remove_stale_temporaries()

        self.no_aug = self.start_epoch >= self.max_epoch - self.exp.no_aug_epochs
        self.train_loader = self.exp.get_data_loader(
            batch_size=self.args.batch_size, is_distributed=self.is_distributed, no_aug=self.no_aug,
            cache_img=getattr(self.args, "cache", None),
        )
        self.max_iter = len(self.train_loader)
        if self.max_iter == 0:
            raise UserError(f"the training set of exp {self.exp.exp_name} is empty: check data_dir and train_ann")
        self._check_training_boxes()
        self.lr_scheduler = self.exp.get_lr_scheduler(self.exp.basic_lr_per_img * self.args.batch_size, self.max_iter)
        if self._resume_state is not None:
            self.completed_iters = self._resumed_iterations()
            self.start_epoch = self.completed_iters // self.max_iter
        self.data_iter = self._start_data_stream()
        if self.no_aug:
            model.head.use_l1 = True

        # Wrapping broadcasts rank 0's weights, so the EMA made afterwards starts equal on every rank.
        self.model = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None, forward_sync_buffers=False
        ) if self.is_distributed else model
        self.compile_backend = getattr(self.args, "compile", None)
        self._first_iter_seconds: float | None = None
        if self.compile_backend:
            # In place: the state dict keys (checkpoints, EMA) stay those of the plain model.
            self.model.compile(backend=self.compile_backend)
        if self.use_model_ema:
            self.ema_model = ModelEMA(model, EMA_DECAY)
            self.ema_model.updates = self.completed_iters
        self._build_evaluator()
        # After the EMA copy, so that only the trained model carries the hooks.
        self.attention_probe = AttentionProbe(model)
        if self.rank == 0:
            self.metrics = MetricsWriter(self.file_name)
        self._train_start_time = time.perf_counter()
        # Last, so that nothing after it draws from the generators it puts back.
        self._restore_resume_state()
        if self.rank == 0:
            logger.info(f"training starts at epoch {self.start_epoch + 1}, iteration {self.completed_iters}; "
                        f"{self.max_iter} iterations per epoch, batch {self.args.batch_size} "
                        f"({self.per_rank_batch} per process x {self.world_size}), device {self.device}, "
                        f"AMP {self.amp_dtype if self.use_amp else 'off'}, EMA {'on' if self.use_model_ema else 'off'}")

    def after_train(self) -> None:
        """Write the final checkpoint (always) and report the best AP."""
        all_reduce_norm(unwrap_model(self.model))
        path = self.save_ckpt("last_epoch")
        if self.rank == 0:
            logger.info(f"training of {self.args.experiment_name} is done: best AP50:95 {self.best_ap:.4f}, "
                        f"final checkpoint {path}")

    def before_epoch(self) -> None:
        """Switch mosaic/mixup off and the L1 loss on for the last ``no_aug_epochs`` epochs."""
        if not self.no_aug and self.epoch >= self.max_epoch - self.exp.no_aug_epochs:
            if self.rank == 0:
                logger.info(f"epoch {self.epoch + 1}: no mosaic/mixup from now on, L1 loss on, evaluation every epoch")
            self._close_mosaic()
            unwrap_model(self.model).head.use_l1 = True
            self.no_aug = True
            self.save_ckpt("last_mosaic_epoch")

    def after_epoch(self) -> None:
        """Evaluate when due, then write latest (and best / per-epoch) checkpoints."""
        epoch_number = self.epoch + 1
        if self.no_aug or epoch_number % self.exp.eval_interval == 0:
            all_reduce_norm(unwrap_model(self.model))
            # Saved first: an evaluation that fails (a bad validation image) must not lose the epoch.
            self.save_ckpt("latest")
            improved = self.evaluate()
            self.save_ckpt("latest", update_best=improved)
        else:
            self.save_ckpt("latest")
        if self.save_history_ckpt:
            self.save_ckpt(f"epoch_{epoch_number}")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> bool:
        """Evaluate the EMA (or raw) model; return True when best_ckpt.pth should take this epoch.

        That is the first evaluation whatever its AP (so best exists even while the AP stays 0), and every
        later one that reaches the best AP so far (a tie keeps the newer weights).
        """
        if self.evaluator is None:
            return False
        eval_model = self.ema_model.ema if self.use_model_ema else unwrap_model(self.model)
        was_training = eval_model.training
        eval_model.eval()
        try:
            ap50_95, ap50, summary = self.exp.eval(eval_model, self.evaluator, self.is_distributed)
        finally:
            eval_model.train(was_training)
        self.curr_ap = float(ap50_95)
        improved = self.curr_ap >= self.best_ap or not (self.file_name / "best_ckpt.pth").is_file()
        self.best_ap = max(self.best_ap, self.curr_ap)
        if self.rank == 0:
            logger.info(f"epoch {self.epoch + 1} evaluation: AP50:95 {ap50_95:.4f}, AP50 {ap50:.4f}\n{summary}")
            if self.metrics is not None:
                figures = evaluation_figures(self.evaluator, ap50_95, ap50)
                self.metrics.write("eval", epoch=self.epoch + 1, iteration=self.completed_iters, **figures,
                                   wall_time_s=round(time.perf_counter() - self._train_start_time, 3),
                                   images_seen=self.completed_iters * self.args.batch_size)
            if self.tblogger is not None:
                self.tblogger.add_scalar("val/COCOAP50", ap50, self.epoch + 1)
                self.tblogger.add_scalar("val/COCOAP50_95", ap50_95, self.epoch + 1)
            if self.experiment_logger is not None:
                self.experiment_logger.log_scalars({"val/COCOAP50": ap50, "val/COCOAP50_95": ap50_95}, self.epoch + 1)
        return improved

    # ------------------------------------------------------------------ checkpoints
    def save_ckpt(self, name: str, update_best: bool = False) -> Path | None:
        """Write ``<name>_ckpt.pth`` (rank 0) with everything an exact resume needs; return its path.

        Every rank must call it: the RNG states of all ranks are gathered into the file. Weights holding a
        NaN or an infinity are never written: :class:`NonFiniteWeightsError` stops the run instead.
        """
        self._read_back_losses()  # deferred losses are checked before anything is written
        raw_model = unwrap_model(self.model)
        saved_model = self.ema_model.ema if self.use_model_ema else raw_model
        self._raise_on_nonfinite_weights(f"before writing {name}_ckpt.pth")
        rng_states = all_gather_object(capture_rng_state())
        if self.rank != 0:
            return None
        state = {
            "start_epoch": self.completed_iters // self.max_iter,
            "model": saved_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_ap": float(self.best_ap),
            "curr_ap": float(self.curr_ap),
            "model_raw": raw_model.state_dict(),
            "ema_updates": int(self.ema_model.updates) if self.use_model_ema else None,
            "scaler": self.scaler.state_dict(),
            "iteration": int(self.completed_iters),
            "iters_per_epoch": int(self.max_iter),
            "input_size": [int(side) for side in self.input_size],
            "rng_states": rng_states,
            "meta": {**self.exp.meta(), "yolox_version": str(yolox.__version__), "torch_version": str(torch.__version__)},
        }
        path = save_checkpoint(state, update_best, self.file_name, name)
        logger.info(f"saved {path}" + (" (and best_ckpt.pth)" if update_best else ""))
        if self.experiment_logger is not None and name == "latest":
            self.experiment_logger.log_checkpoint(self.file_name, name, update_best, state["start_epoch"])
        return path

    def _load_weights(self, model: nn.Module) -> None:
        """--resume: restore the full training state; -c alone: non-strict load of the weights."""
        if self.args.resume:
            ckpt_file = Path(self.args.ckpt) if self.args.ckpt else self.file_name / "latest_ckpt.pth"
            ckpt = load_checkpoint_file(ckpt_file, map_location=self.device)
            self.exp.check_meta(ckpt.get("meta"), str(ckpt_file))
            weights = ckpt["model_raw"] if "model_raw" in ckpt else ckpt["model"]
            try:
                model.load_state_dict(weights)
            except RuntimeError as err:
                first_lines = " ".join(str(err).splitlines()[:3])
                raise UserError(f"checkpoint {ckpt_file} does not fit this exp's model ({first_lines[:300]}...): "
                                "to start a new run from its weights use -c without --resume") from None
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.best_ap = float(ckpt.get("best_ap", 0.0))
            self.curr_ap = float(ckpt.get("curr_ap", 0.0))
            self._resume_state = ckpt
            self._resume_file = ckpt_file
            self.start_epoch = self._resumed_start_epoch()
            if self.rank == 0:
                logger.info(f"resuming from {ckpt_file} (epoch {self.start_epoch + 1})")
        elif self.args.ckpt:
            if self.rank == 0:
                logger.info(f"loading weights from {self.args.ckpt} for fine-tuning")
            load_ckpt(model, load_checkpoint_file(self.args.ckpt, map_location=self.device))

    def _resumed_start_epoch(self) -> int:
        """The 0-based epoch to continue with: ``-e`` (1-based) when given, else the checkpoint's."""
        if self.args.start_epoch is not None:
            return int(self.args.start_epoch) - 1
        return int(self._resume_state["start_epoch"])

    def _resumed_iterations(self) -> int:
        """Iterations already done, mid-epoch ones included (an ``-e`` override starts at its epoch)."""
        ckpt = self._resume_state
        same_epoch_length = ckpt.get("iters_per_epoch") == self.max_iter
        if self.args.start_epoch is None and "iteration" in ckpt and same_epoch_length:
            return int(ckpt["iteration"])
        if "iteration" in ckpt and not same_epoch_length and self.rank == 0:
            logger.warning(f"{self._resume_file} was written with {ckpt.get('iters_per_epoch')} iterations per "
                           f"epoch, this run has {self.max_iter}: continuing from the start of epoch "
                           f"{self.start_epoch + 1}")
        return self.start_epoch * self.max_iter

    def _restore_resume_state(self) -> None:
        """Put back the EMA, AMP scaler, input size and RNG states of a resumed run."""
        ckpt = self._resume_state
        if ckpt is None:
            return
        if self.use_model_ema and ckpt.get("ema_updates") is not None:
            self.ema_model.ema.load_state_dict(ckpt["model"])
            self.ema_model.updates = int(ckpt["ema_updates"])
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if ckpt.get("input_size"):
            self.input_size = tuple(ckpt["input_size"])
        rng_states = ckpt.get("rng_states") or []
        exact = len(rng_states) == self.world_size and self.completed_iters == ckpt.get("iteration")
        if exact:
            restore_rng_state(rng_states[self.rank])
        elif self.rank == 0:
            logger.warning(f"{self._resume_file}: random states not restored (saved by {len(rng_states)} processes "
                           f"for iteration {ckpt.get('iteration')}, now {self.world_size} from {self.completed_iters}); "
                           "augmentation will differ from an uninterrupted run")
        self._resume_state = None

    # ------------------------------------------------------------------ helpers
    def _start_data_stream(self) -> Iterator:
        """Iterator over the training batches, continuing after the batches already consumed.

        It is created before the RNG states are restored because creating it draws a torch random number.
        """
        already_seen = self.completed_iters * self.per_rank_batch
        batch_sampler = getattr(self.train_loader, "batch_sampler", None)
        if already_seen and batch_sampler is not None and hasattr(batch_sampler, "sampler"):
            batch_sampler.sampler = _SkipSampler(batch_sampler.sampler, already_seen)
        elif already_seen and self.rank == 0:
            logger.warning("the training loader has no batch sampler to fast-forward: after resuming, the data "
                           "order starts again from the beginning")
        return iter(self.train_loader)

    def _close_mosaic(self) -> None:
        """Turn mosaic/mixup off in the running loader (dataset wrapper and batch sampler)."""
        dataset = self.train_loader.dataset
        dataset.close_mosaic()
        batch_sampler = getattr(self.train_loader, "batch_sampler", None)
        if hasattr(batch_sampler, "mosaic"):
            batch_sampler.mosaic = False

    def _loss_is_suspicious(self, loss_value: float) -> bool:
        """True for the first step and for a loss far above its running average: the weights get checked then."""
        average = self._loss_average
        suspicious = average is None or loss_value > SUSPICIOUS_LOSS_RATIO * abs(average)
        if math.isfinite(loss_value) and not suspicious:
            self._loss_average = LOSS_AVERAGE_MOMENTUM * average + (1 - LOSS_AVERAGE_MOMENTUM) * loss_value
        elif average is None and math.isfinite(loss_value):
            self._loss_average = loss_value
        return suspicious

    def _check_weights_after_step(self, outputs: dict) -> None:
        """After a step with a suspicious loss: stop when it left NaN or infinite weights."""
        terms = ", ".join(f"{name}={float(torch.as_tensor(value).detach()):.4g}" for name, value in outputs.items()
                          if name.endswith("loss"))
        self._raise_on_nonfinite_weights(f"after the optimizer step ({terms})", step_done=True)

    def _raise_on_nonfinite_weights(self, when: str, step_done: bool = False) -> None:
        """Raise :class:`NonFiniteWeightsError` naming the first NaN/inf tensor of the raw or EMA weights."""
        models = [("raw", unwrap_model(self.model))]
        if self.use_model_ema:
            models.append(("EMA", self.ema_model.ema))
        bad = next(((kind, tensor) for kind, model in models
                    if (tensor := first_nonfinite_tensor(model.state_dict())) is not None), None)
        if bad is None:
            return
        iteration = self.completed_iters + (1 if step_done else 0)
        latest = self.file_name / "latest_ckpt.pth"
        kept = (f"the last good checkpoint {latest} is kept" if latest.is_file()
                else "no checkpoint had been written yet")
        raise NonFiniteWeightsError(
            f"non-finite weights {when} at iteration {iteration} (epoch {self.epoch + 1}/{self.max_epoch}): "
            f"the {bad[0]} model's tensor {bad[1]} holds NaN or inf; nothing was saved, {kept}. Lower the learning "
            "rate (basic_lr_per_img), check the labels, or train without --fp16, then continue with --resume"
        )

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary checkpoint files that a killed save left in the run folder, and say so."""
        removed = remove_stale_temporaries(self.file_name)
        if removed:
            logger.warning(f"removed {len(removed)} temporary checkpoint file(s) left by an interrupted save in "
                           f"{self.file_name}: {', '.join(path.name for path in removed)}")

    def _check_training_boxes(self) -> None:
        """An error when no training image has a box: the detector would learn nothing."""
        dataset = self.train_loader.dataset
        dataset = getattr(dataset, "dataset", dataset)
        labelled = getattr(dataset, "labelled_indices", None)
        if labelled is not None and len(dataset) and not labelled:
            raise UserError(f"the training set of exp {self.exp.exp_name} has {len(dataset)} images but no boxes "
                            "at all: check train_ann (every annotation may have been dropped; see the warnings above)")

    def _raise_nonfinite(self, outputs: dict, iteration: int | None = None) -> None:
        """Stop with the iteration, every loss term, and the last good checkpoint (left untouched)."""
        terms = ", ".join(f"{name}={float(torch.as_tensor(value).detach()):.4g}" for name, value in outputs.items())
        iteration = iteration or self.completed_iters + 1  # given when read back late (--loss-readback print)
        epochs_done, iter_in_epoch = divmod(iteration - 1, self.max_iter)
        latest = self.file_name / "latest_ckpt.pth"
        kept = (f"the last good checkpoint {latest} (epoch {epochs_done}) is kept"
                if latest.is_file() else "no checkpoint had been written yet")
        raise NonFiniteLossError(
            f"non-finite loss at iteration {iteration} (epoch {epochs_done + 1}/{self.max_epoch}, "
            f"iter {iter_in_epoch + 1}/{self.max_iter}): {terms}; {kept}. Lower the learning rate (basic_lr_per_img), "
            "check the labels, or train without --fp16, then continue with --resume"
        )

    def _log_progress(self) -> None:
        """The per-interval line: epoch/iter, losses, lr, size, times, images/s, memory, ETA."""
        if self.rank == 0:
            iter_time = self.meter["iter_time"].avg
            left_iters = self.max_iter * self.max_epoch - self.completed_iters
            eta = datetime.timedelta(seconds=int(iter_time * left_iters))
            losses = ", ".join(f"{name}: {meter.latest:.3f}" for name, meter in self.meter.items()
                               if name.endswith("_loss"))
            memory = f"mem: {peak_host_memory_mb():.0f}MB"
            if self.device.type == "cuda":
                memory = f"gpu mem: {peak_device_memory_mb(self.device):.0f}MB, " + memory
            logger.info(
                f"epoch: {self.epoch + 1}/{self.max_epoch}, iter: {self.iter + 1}/{self.max_iter}, {losses}, "
                f"num_fg: {self.meter['num_fg'].latest:.1f}, lr: {self.meter['lr'].latest:.3e}, "
                f"size: {self.input_size[0]}x{self.input_size[1]}, iter_time: {iter_time:.3f}s, "
                f"data_time: {self.meter['data_time'].avg:.3f}s, {self.args.batch_size / iter_time:.1f} img/s, "
                f"{memory}, ETA: {eta}"
            )
            if self.tblogger is not None:
                for name, meter in self.meter.items():
                    if name.endswith("_loss") or name == "lr":
                        self.tblogger.add_scalar(f"train/{name}", meter.latest, self.completed_iters)
            if self.experiment_logger is not None:
                self.experiment_logger.log_scalars({f"train/{name}": meter.latest for name, meter in self.meter.items()
                                                    if name.endswith("_loss") or name == "lr"}, self.completed_iters)
            self._log_attention_usage()
        self.meter.clear_meters()

    def _log_attention_usage(self) -> None:
        """Losses, lr and each attention block's gate mean/spread (and identity-init scale) to every logger."""
        usage = self.attention_probe.usage() if self.attention_probe is not None else {}
        if usage:
            logger.info(f"attention usage: {format_usage(usage)}")
        if self.tblogger is not None:
            for block, entry in usage.items():
                for key, value in entry.items():
                    self.tblogger.add_scalar(f"attention/{block}/{key}", value, self.completed_iters)
        if self.metrics is not None:
            losses = {name: meter.latest for name, meter in self.meter.items() if name.endswith("_loss")}
            self.metrics.write("train", epoch=self.epoch + 1, iteration=self.completed_iters, **losses,
                               lr=self.meter["lr"].latest, wall_time_s=round(time.perf_counter() - self._train_start_time, 3),
                               images_seen=self.completed_iters * self.args.batch_size, attention=usage)

    def _model_summary(self, model: nn.Module) -> str:
        """Parameter count and GFLOPs at the test size."""
        from yolox.utils.model_utils import get_model_info

        return f"model summary: {get_model_info(model, tuple(self.exp.test_size))}"

    def _build_evaluator(self) -> None:
        """The exp's evaluator, or a clear note that evaluation is skipped when it cannot be imported."""
        try:
            self.evaluator = self.exp.get_evaluator(batch_size=self.args.batch_size, is_distributed=self.is_distributed)
        except ImportError as err:
            self.evaluator = None
            if self.rank == 0:
                logger.warning(f"evaluation during training is skipped: the evaluator cannot be imported ({err}); "
                               "checkpoints are still written, best_ckpt.pth is not")

    def _build_tensorboard(self) -> None:
        """A SummaryWriter in the run folder when ``-l tensorboard`` (rank 0 only)."""
        if getattr(self.args, "logger", "none") != "tensorboard" or self.rank != 0:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise UserError(f"-l tensorboard needs the tensorboard package ({err}): pip install tensorboard, "
                            "or run with -l none") from None
        self.tblogger = SummaryWriter(str(self.file_name / "tensorboard"))

    def _build_experiment_logger(self) -> None:
        """The W&B or MLflow tracker when ``-l wandb`` / ``-l mlflow`` (rank 0 only)."""
        if getattr(self.args, "logger", "none") in ("wandb", "mlflow") and self.rank == 0:
            from yolox.utils.loggers import build_experiment_logger

            self.experiment_logger = build_experiment_logger(self.args.logger, self.args, self.exp)

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
