"""One member of a training loop: everything that belongs to one model being trained.

The loop (:class:`yolox.core.trainer.Trainer`) owns what members share: the device, AMP, the data stream,
the input size and the epoch/iteration counters. A member owns its exp, run folder, model, optimizer,
schedule, EMA, loss scaler, non-finite guards, meters, run log and evaluation record. A single run is the
one-member case; the members of a lockstep group are told apart by their label in the logs.
"""

from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn

import yolox
from yolox.core.guards import LossSpikeWatch, check_weights
from yolox.core.lockstep import member_label
from yolox.core.resume import ResumePoint
from yolox.core.run_log import EVAL, RunLog
from yolox.core.run_pictures import RunPictures
from yolox.evaluators.base import evaluation_figures
from yolox.models.attention_probe import AttentionProbe
from yolox.utils.checkpoint import save_checkpoint
from yolox.utils.ema import ModelEMA, unwrap_model
from yolox.utils.metric import MeterBuffer
from yolox.utils.protocols import TrainingExpLike
from yolox.utils.run_files import BEST_CKPT, LATEST, LATEST_CKPT

EMA_DECAY = 0.9998


class TrainingMember:
    """The per-model state of a training loop; the model and what depends on it are filled in by the loop."""

    def __init__(self, exp: TrainingExpLike, run_dir: Path, batch_size: int, scaler: torch.amp.GradScaler,
                 rank: int) -> None:
        """A member training ``exp`` into ``run_dir``; ``batch_size`` is the total over all processes."""
        self.exp = exp
        self.run_dir = run_dir
        self.scaler = scaler
        self.rank = rank
        self.use_model_ema = bool(exp.ema)
        self.best_ap = 0.0
        self.curr_ap = 0.0
        self.meter = MeterBuffer(window_size=exp.print_interval)
        self.loss_watch = LossSpikeWatch()
        self.log = RunLog(run_dir, batch_size, writes=rank == 0)
        self.pictures = RunPictures(run_dir, title=f"{exp.exp_name}: losses, learning rate and AP") if rank == 0 else None
        # Losses kept on the device until the next read-back (--loss-readback print).
        self.unread_outputs: list[dict] = []
        self.model: nn.Module | None = None  # DistributedDataParallel-wrapped in a distributed run
        self.optimizer: torch.optim.Optimizer | None = None
        self.lr_scheduler: Any = None
        self.ema_model: ModelEMA | None = None
        self.evaluator: Any = None
        self.attention_probe: AttentionProbe | None = None
        self.resume_point: ResumePoint | None = None
        self.label = member_label(run_dir)
        self.failure: str | None = None  # why the member stopped early (a lockstep group goes on without it)
        self.peak_step_memory_mb = 0.0  # the device memory its steps reached (CUDA), others' weights included

    def logging(self) -> Any:
        """A context in which log records are this member's (its train_log.txt only, in a lockstep group)."""
        return logger.contextualize(member=self.label)

    @property
    def latest_checkpoint(self) -> Path:
        """``latest_ckpt.pth`` of the run folder, the one ``--resume`` continues from."""
        return self.run_dir / LATEST_CKPT

    def restore_records(self, point: ResumePoint) -> None:
        """The best and current AP of a resumed run."""
        self.resume_point = point
        self.best_ap = float(point.ckpt.get("best_ap", 0.0))
        self.curr_ap = float(point.ckpt.get("curr_ap", 0.0))

    def start_ema(self, model: nn.Module, completed_iters: int) -> None:
        """The EMA copy of ``model`` (when the exp keeps one), as if updated at every completed iteration."""
        if self.use_model_ema:
            self.ema_model = ModelEMA(model, EMA_DECAY)
            self.ema_model.updates = completed_iters

    def saved_model(self) -> nn.Module:
        """The weights that checkpoints and evaluations use: the EMA when kept, else the raw model."""
        return self.ema_model.ema if self.use_model_ema else unwrap_model(self.model)

    def check_weights(self, when: str, iteration: int, epoch: int, max_epoch: int) -> None:
        """Raise :class:`~yolox.core.guards.NonFiniteWeightsError` when the raw or EMA weights hold NaN or inf."""
        models = [("raw", unwrap_model(self.model))]
        if self.use_model_ema:
            models.append(("EMA", self.ema_model.ema))
        check_weights(models, when, iteration, epoch, max_epoch, self.latest_checkpoint)

    def evaluate(self, is_distributed: bool, epoch: int, completed_iters: int) -> bool:
        """Evaluate the EMA (or raw) model; return True when best_ckpt.pth should take this epoch.

        That is the first evaluation whatever its AP (so best exists even while the AP stays 0), and every
        later one that reaches the best AP so far (a tie keeps the newer weights).
        """
        if self.evaluator is None:
            return False
        eval_model = self.saved_model()
        was_training = eval_model.training
        eval_model.eval()
        try:
            ap50_95, ap50, summary = self.exp.eval(eval_model, self.evaluator, is_distributed)
            if self.pictures is not None:
                device = next(eval_model.parameters()).device
                self.pictures.write_val_predictions(eval_model, self.exp, self.evaluator, device)
        finally:
            eval_model.train(was_training)
        self.curr_ap = float(ap50_95)
        improved = self.curr_ap >= self.best_ap or not (self.run_dir / BEST_CKPT).is_file()
        self.best_ap = max(self.best_ap, self.curr_ap)
        figures = evaluation_figures(self.evaluator, ap50_95, ap50)
        self.log.log_scalars(EVAL, figures, epoch=epoch, iteration=completed_iters,
                             line=f"epoch {epoch} evaluation: AP50:95 {ap50_95:.4f}, AP50 {ap50:.4f}\n{summary}")
        if self.pictures is not None:
            self.pictures.write_curves()
        return improved

    def checkpoint_state(self, completed_iters: int, max_iter: int, input_size: tuple[int, ...],
                         rng_states: list) -> dict:
        """Everything an exact resume needs, in the official layout plus our additions."""
        return {
            "start_epoch": completed_iters // max_iter,
            "model": self.saved_model().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best_ap": float(self.best_ap),
            "curr_ap": float(self.curr_ap),
            "model_raw": unwrap_model(self.model).state_dict(),
            "ema_updates": int(self.ema_model.updates) if self.use_model_ema else None,
            "scaler": self.scaler.state_dict(),
            "iteration": int(completed_iters),
            "iters_per_epoch": int(max_iter),
            "input_size": [int(side) for side in input_size],
            "rng_states": rng_states,
            "meta": {**self.exp.meta(), "yolox_version": str(yolox.__version__), "torch_version": str(torch.__version__)},
        }

    def write_checkpoint(self, name: str, state: dict, update_best: bool) -> Path:
        """Write ``<name>_ckpt.pth`` (and best_ckpt.pth with ``update_best``) and hand ``latest`` to the tracker."""
        path = save_checkpoint(state, update_best, self.run_dir, name)
        logger.info(f"saved {path}" + (" (and best_ckpt.pth)" if update_best else ""))
        if name == LATEST:
            self.log.log_checkpoint(name, update_best, state["start_epoch"])
        return path

    def close(self) -> None:
        """Close the run log's writers and the attention probe's hooks."""
        self.log.close()
        if self.attention_probe is not None:
            self.attention_probe.close()
