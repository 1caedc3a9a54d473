"""The trainer's speed switches on CPU: deferred loss read-back, channels-last, SGD kernels, compile, --amp."""

from pathlib import Path

import pytest
import torch

from yolox.cli.train import build_exp, make_parser
from yolox.core import NonFiniteLossError, Trainer
from yolox.core.trainer import autocast_dtype, set_optimizer_implementation
from yolox.utils.errors import UserError


class IntervalRecordingTrainer(Trainer):
    """Records every total loss the meters received, read at each printed line (so also deferred ones)."""

    def before_train(self) -> None:
        self.losses: list[float] = []
        super().before_train()

    def _log_progress(self) -> None:
        self.losses.extend(self.meter["total_loss"].window)
        super()._log_progress()


def _trainer(exp_file: Path, *flags: str, opts: tuple = (), cls: type = IntervalRecordingTrainer) -> Trainer:
    args = make_parser().parse_args(["-f", str(exp_file), "-b", "4", "--device", "cpu", *flags, *opts])
    trainer = cls(build_exp(args), args)
    trainer.exp.get_evaluator = lambda **kwargs: None
    return trainer


def test_deferred_readback_records_the_same_losses(make_exp_file, tmp_path: Path) -> None:
    opts = ("print_interval", "3", "eval_interval", "100")
    every_iter = _trainer(make_exp_file(max_epoch=2, output_dir=tmp_path / "iter"), opts=opts)
    every_iter.train()
    deferred = _trainer(make_exp_file(max_epoch=2, output_dir=tmp_path / "print"), "--loss-readback", "print", opts=opts)
    deferred.train()
    assert len(every_iter.losses) == 6
    assert deferred.losses == every_iter.losses


def test_deferred_readback_still_stops_on_a_non_finite_loss(make_exp_file, scaling_the_loss_from) -> None:
    diverging = scaling_the_loss_from(IntervalRecordingTrainer, 4, float("nan"))
    # No line is printed before the save at the end of epoch 2: the check before writing must catch it.
    trainer = _trainer(make_exp_file(max_epoch=3), "--loss-readback", "print",
                       opts=("print_interval", "100", "eval_interval", "100"), cls=diverging)
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "iteration 5 (epoch 2/3, iter 2/3)" in message and "total_loss=nan" in message
    ckpt = torch.load(Path(trainer.file_name) / "latest_ckpt.pth", weights_only=True)
    assert ckpt["iteration"] == 3, "the weights after the NaN step must not be written"


@pytest.mark.slow  # two epochs under torch.compile: about 15 s on a CPU, most of it tracing
def test_speed_switches_train_and_compile_time_is_logged(make_exp_file) -> None:
    trainer = _trainer(make_exp_file(max_epoch=2), "--channels-last", "--optimizer-impl", "foreach",
                       "--cudnn-benchmark", "--compile", "eager", opts=("print_interval", "3", "eval_interval", "100"))
    trainer.train()
    assert len(trainer.losses) == 6 and all(torch.isfinite(torch.tensor(trainer.losses)))
    assert all(group["foreach"] for group in trainer.optimizer.param_groups)
    weight = next(p for p in trainer.model.parameters() if p.dim() == 4 and p.shape[-1] == 3 and p.shape[1] > 1)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    log = (Path(trainer.file_name) / "train_log.txt").read_text()
    assert "torch.compile (eager): the first iteration, compilation included, took" in log
    ckpt = torch.load(Path(trainer.file_name) / "latest_ckpt.pth", weights_only=True)
    assert not any("_orig_mod" in key for key in ckpt["model"]), "compiling must not rename the checkpoint keys"


def test_amp_choice() -> None:
    parse = make_parser().parse_args
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(parse([]), cpu) is None
    assert autocast_dtype(parse(["--fp16"]), cpu) == torch.bfloat16
    assert autocast_dtype(parse(["--fp16"]), cuda) == torch.float16
    assert autocast_dtype(parse(["--amp", "bf16"]), cuda) == torch.bfloat16
    assert autocast_dtype(parse(["--fp16", "--amp", "bf16"]), cuda) == torch.bfloat16
    with pytest.raises(UserError, match="--amp fp16 needs a CUDA device"):
        autocast_dtype(parse(["--amp", "fp16"]), cpu)


@pytest.mark.parametrize("implementation", ["foreach", "fused"])
def test_optimizer_implementation_takes_the_same_step(implementation: str) -> None:
    torch.manual_seed(0)
    weights = [torch.randn(8, 4, requires_grad=True), torch.randn(4, requires_grad=True)]
    copies = [w.detach().clone().requires_grad_(True) for w in weights]
    plain = torch.optim.SGD(weights, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=False)
    switched = torch.optim.SGD(copies, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=False)
    set_optimizer_implementation(switched, implementation)
    for _ in range(3):
        for params, optimizer in ((weights, plain), (copies, switched)):
            optimizer.zero_grad()
            (params[0].sum(dim=0) * params[1]).square().sum().backward()
            optimizer.step()
    for expected, got in zip(weights, copies):
        torch.testing.assert_close(got, expected)
