"""Training on CUDA: fp16 with loss scaling, bf16 autocast, the speed switches, torchrun with NCCL and resume."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")]
REPO_ROOT = Path(__file__).resolve().parents[2]


class RecordingTrainer(Trainer):
    """Records every iteration's total loss, also when the losses are read back at the print interval."""

    def before_train(self) -> None:
        self.losses: list[float] = []
        super().before_train()

    def after_iter(self) -> None:
        if not self.defer_readback:
            self.losses.append(self.meter["total_loss"].latest)
        super().after_iter()

    def _log_progress(self) -> None:
        if self.defer_readback:  # the losses reach the meters only at the printed lines
            self.losses.extend(self.meter["total_loss"].window)
        super()._log_progress()


def train(exp_file: Path, *flags: str) -> RecordingTrainer:
    args = make_parser().parse_args(["-f", str(exp_file), "-b", "8", "--device", "cuda", *flags])
    trainer = RecordingTrainer(build_exp(args), args)
    trainer.train()
    return trainer


def assert_finite_and_falling(losses: list[float]) -> None:
    assert len(losses) == 50 and all(torch.isfinite(torch.tensor(losses))), losses
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.9 * first, f"losses did not fall: first 10 mean {first:.3f}, last 10 mean {last:.3f}"


def test_fp16_training_scales_the_loss_and_learns(write_cuda_exp) -> None:
    trainer = train(write_cuda_exp(1, "fp16"), "--amp", "fp16")
    assert trainer.amp_dtype == torch.float16 and trainer.scaler.is_enabled()
    assert_finite_and_falling(trainer.losses)
    state = trainer.scaler.state_dict()
    # The scaler moved: it backed off after an overflow, or counted steps towards its next growth.
    assert state["scale"] != 2.0**16 or state["_growth_tracker"] > 0, state


def test_bf16_training_needs_no_scaler(write_cuda_exp) -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    trainer = train(write_cuda_exp(1, "bf16"), "--amp", "bf16")
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    assert_finite_and_falling(trainer.losses)


def test_speed_switches_train_on_cuda(write_cuda_exp) -> None:
    trainer = train(write_cuda_exp(1, "switches"), "--amp", "fp16", "--channels-last", "--optimizer-impl", "fused",
                    "--loss-readback", "print", "--cudnn-benchmark")
    assert all(group["fused"] for group in trainer.optimizer.param_groups)
    assert_finite_and_falling(trainer.losses)


def test_torchrun_with_nccl_trains_and_resumes(write_cuda_exp) -> None:
    exp_file = write_cuda_exp(1, "torchrun")
    run_dir = exp_file.parent / "runs" / "cuda_check"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               str(REPO_ROOT / "tools" / "train.py"), "-f", str(exp_file), "-b", "8", "--device", "cuda",
               "--dist-backend", "nccl"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    assert torch.load(run_dir / "latest_ckpt.pth", weights_only=True)["iteration"] == 50
    resumed = subprocess.run([*command, "--resume", "max_epoch", "2"], capture_output=True, text=True, timeout=600,
                             cwd=REPO_ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (run_dir / "train_log.txt").read_text()
    assert "resuming from" in log
    assert torch.load(run_dir / "latest_ckpt.pth", weights_only=True)["iteration"] == 100
