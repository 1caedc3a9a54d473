"""Trainer on CPU with a tiny model and a generated COCO set: loss, checkpoints, resume, safety."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolox.cli.train import build_exp, main, make_parser
from yolox.core import NonFiniteLossError, Trainer
from yolox.core.metrics_log import read_metrics
from yolox.evaluators.base import EVAL_FIGURES
from yolox.utils.errors import UserError

CHECKPOINT_KEYS = {"start_epoch", "model", "optimizer", "best_ap", "curr_ap", "model_raw", "ema_updates", "scaler",
                   "iteration", "iters_per_epoch", "input_size", "rng_states", "meta"}


class RecordingTrainer(Trainer):
    """Records the exact total loss of every iteration; can simulate Ctrl-C after a given iteration."""

    interrupt_after: int | None = None

    def after_iter(self) -> None:
        self.losses.append(self.meter["total_loss"].latest)
        if self.interrupt_after is not None and self.completed_iters + 1 == self.interrupt_after:
            self._interrupt_requested = True
            self._stop_agreed = True
        super().after_iter()

    def before_train(self) -> None:
        self.losses: list[float] = []
        super().before_train()


def _trainer(exp_file: Path, *flags: str, cls: type = RecordingTrainer, opts: tuple = (), batch: int = 4) -> Trainer:
    args = make_parser().parse_args(["-f", str(exp_file), "-b", str(batch), "--device", "cpu", *flags, *opts])
    return cls(build_exp(args), args)


def test_training_lowers_the_loss_and_writes_the_checkpoints(make_exp_file) -> None:
    # No augmentation (the whole run is the no-aug tail) and a plain cosine: the same images again and again.
    exp_file = make_exp_file(max_epoch=8)
    trainer = _trainer(exp_file, opts=("scheduler", "cos", "no_aug_epochs", "8", "basic_lr_per_img", "0.02",
                                       "print_interval", "3"))

    def evaluator_missing(**kwargs):
        raise ImportError("No module named 'yolox.evaluators'")

    trainer.exp.get_evaluator = evaluator_missing
    trainer.train()
    losses = trainer.losses
    assert len(losses) == 24
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < 0.9 * first, losses
    run_dir = Path(trainer.file_name)
    for name in ("latest", "last_epoch", "epoch_1", "epoch_8"):
        assert (run_dir / f"{name}_ckpt.pth").is_file(), name
    log = (run_dir / "train_log.txt").read_text()
    assert "epoch: 8/8, iter: 3/3" in log and "img/s" in log and "ETA" in log and "lr:" in log
    assert "evaluation during training is skipped" in log and not (run_dir / "best_ckpt.pth").exists()

    ckpt = torch.load(run_dir / "latest_ckpt.pth", weights_only=True)
    assert CHECKPOINT_KEYS <= set(ckpt)
    assert ckpt["start_epoch"] == 8 and ckpt["iteration"] == 24 and ckpt["ema_updates"] == 24
    assert ckpt["meta"]["num_classes"] == 5 and ckpt["meta"]["torch_version"] == torch.__version__
    assert isinstance(ckpt["rng_states"][0]["numpy"]["pos"], int)
    assert not any(name.startswith(".") for name in os.listdir(run_dir)), "temporary files left behind"
    ema_weight = ckpt["model"]["head.stems.0.conv.weight"]
    raw_weight = ckpt["model_raw"]["head.stems.0.conv.weight"]
    assert not torch.equal(ema_weight, raw_weight)


def test_resume_continues_exactly(make_exp_file, tmp_path: Path) -> None:
    # Batch 2: six iterations per epoch, so a multiscale draw (every 10 iterations) falls before the interruption.
    multiscale = ("multiscale_range", "1")
    reference = _trainer(make_exp_file(max_epoch=3, output_dir=tmp_path / "reference"), opts=multiscale, batch=2)
    reference.train()
    assert len(reference.losses) == 18
    # Every evaluation record has the same keys, its figures being COCOeval's fractions (never parsed text).
    evals = [r for r in read_metrics(Path(reference.file_name) / "metrics.jsonl") if r["kind"] == "eval"]
    assert len(evals) == 3 and len({tuple(r) for r in evals}) == 1 and set(EVAL_FIGURES) <= set(evals[0])
    assert all(r[key] is None or 0.0 <= r[key] <= 1.0 for r in evals for key in EVAL_FIGURES)
    best = max(r["ap50_95"] for r in evals)
    assert f"best AP50:95 {best:.4f}" in (Path(reference.file_name) / "train_log.txt").read_text()

    # Ctrl-C in the middle of epoch 2, then --resume from latest_ckpt.pth.
    exp_file = make_exp_file(max_epoch=3, output_dir=tmp_path / "interrupted")
    first = _trainer(exp_file, opts=multiscale, batch=2)
    first.interrupt_after = 11
    with pytest.raises(KeyboardInterrupt):
        first.train()
    assert torch.load(Path(first.file_name) / "latest_ckpt.pth", weights_only=True)["iteration"] == 11
    second = _trainer(exp_file, "--resume", opts=multiscale, batch=2)
    second.train()
    assert first.losses + second.losses == reference.losses

    # Resuming from an epoch-end checkpoint crosses the switch to the no-augmentation epochs the same way.
    epoch_ckpt = Path(reference.file_name) / "epoch_1_ckpt.pth"
    third = _trainer(make_exp_file(max_epoch=3, output_dir=tmp_path / "from_epoch"), "--resume", "-c", str(epoch_ckpt),
                     opts=multiscale, batch=2)
    third.train()
    assert third.losses == reference.losses[6:]
    final_reference = torch.load(Path(reference.file_name) / "last_epoch_ckpt.pth", weights_only=True)
    final_resumed = torch.load(Path(third.file_name) / "last_epoch_ckpt.pth", weights_only=True)
    for name, value in final_reference["model"].items():
        assert torch.equal(value, final_resumed["model"][name]), name


@pytest.mark.slow  # loader worker processes; about 15 s
def test_resume_with_loader_workers_continues_exactly(make_exp_file, tmp_path: Path) -> None:
    # Every augmentation draw (mosaic, mixup, affine, HSV, flip) is owned by its sample: workers that restart
    # after a resume carry on with the draws of the uninterrupted run, across the switch to no-aug epochs too.
    opts = ("multiscale_range", "1", "data_num_workers", "2", "enable_mixup", "True", "degrees", "10.0")
    reference = _trainer(make_exp_file(max_epoch=3, output_dir=tmp_path / "reference"), opts=opts, batch=2)
    reference.train()
    exp_file = make_exp_file(max_epoch=3, output_dir=tmp_path / "interrupted")
    first = _trainer(exp_file, opts=opts, batch=2)
    first.interrupt_after = 8
    with pytest.raises(KeyboardInterrupt):
        first.train()
    second = _trainer(exp_file, "--resume", opts=opts, batch=2)
    second.train()
    assert len(reference.losses) == 18
    assert first.losses + second.losses == reference.losses


@pytest.mark.slow  # loader worker processes
def test_variants_of_a_seed_see_the_same_first_batches_with_loader_workers(make_exp_file) -> None:
    batches = []
    for attention in ("None", "se"):
        args = make_parser().parse_args(["-f", str(make_exp_file()), "-b", "4", "--device", "cpu",
                                         "attention", attention, "data_num_workers", "2", "enable_mixup", "True"])
        exp = build_exp(args)
        exp.get_model()
        stream = iter(exp.get_data_loader(batch_size=4, is_distributed=False))
        batches.append([next(stream) for _ in range(3)])
    for plain, with_attention in zip(*batches):
        assert torch.equal(plain[0], with_attention[0]) and torch.equal(plain[1], with_attention[1])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(make_exp_file, scaling_the_loss_from) -> None:
    exp_file = make_exp_file(max_epoch=3)
    diverging = scaling_the_loss_from(RecordingTrainer, 4, float("nan"))
    trainer = _trainer(exp_file, cls=diverging, opts=("eval_interval", "100"))
    latest = None
    with pytest.raises(NonFiniteLossError) as caught:
        try:
            trainer.train()
        finally:
            latest = Path(trainer.file_name) / "latest_ckpt.pth"
    message = str(caught.value)
    assert "iteration 5 " in message and "epoch 2/3" in message and "total_loss=nan" in message
    assert "iou_loss=" in message and str(latest) in message
    ckpt = torch.load(latest, weights_only=True)
    assert ckpt["iteration"] == 3 and ckpt["start_epoch"] == 1
    assert not (Path(trainer.file_name) / "last_epoch_ckpt.pth").exists()


def test_fine_tuning_reports_new_and_skipped_tensors(make_exp_file, tmp_path: Path) -> None:
    source_args = make_parser().parse_args(["-f", str(make_exp_file()), "num_classes", "80"])
    source_model = build_exp(source_args).get_model()
    ckpt_file = tmp_path / "coco80.pth"
    torch.save({"model": source_model.state_dict(), "start_epoch": 300}, ckpt_file)

    trainer = _trainer(make_exp_file(), "-c", str(ckpt_file), opts=("attention", "se", "attention_levels", "dark4,dark5"))
    trainer.before_train()
    log = (Path(trainer.file_name) / "train_log.txt").read_text()
    summary = [line for line in log.splitlines() if "checkpoint load:" in line]
    assert len(summary) == 1
    line = summary[0]
    assert "new " in line and "backbone.attn.dark4" in line and "backbone.attn.dark5" in line
    assert "skipped for shape mismatch 6" in line and "head.cls_preds.0.weight (80, 32, 1, 1)->(5, 32, 1, 1)" in line
    assert trainer.start_epoch == 0
    loaded = trainer.model.state_dict()["backbone.backbone.stem.conv.conv.weight"]
    assert torch.equal(loaded, source_model.state_dict()["backbone.backbone.stem.conv.conv.weight"])


def test_command_line_user_errors_exit_2_without_traceback(make_exp_file, tmp_path: Path, capsys, monkeypatch) -> None:
    # The allocator setting is process-wide: keep it out of the test process.
    monkeypatch.setattr("yolox.cli.train.configure_allocator", lambda: False)
    assert main(["-f", str(tmp_path / "missing_exp.py"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "missing_exp.py" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2

    exp_file = make_exp_file()
    assert main(["-f", str(exp_file), "-b", "4", "--device", "cpu", "-c", str(tmp_path / "nowhere.pth")]) == 2
    err = capsys.readouterr().err
    assert "nowhere.pth" in err and "Traceback" not in err

    assert main(["-f", str(exp_file), "-b", "3", "-d", "2", "--device", "cpu", "max_epoch", "2"]) == 2
    assert "multiple of 2" in capsys.readouterr().err


def test_bfloat16_autocast_on_cpu(make_exp_file) -> None:
    trainer = _trainer(make_exp_file(max_epoch=2), "--fp16", opts=("warmup_epochs", "0"))
    trainer.train()
    assert len(trainer.losses) == 6 and all(torch.isfinite(torch.tensor(trainer.losses)))
    assert not trainer.scaler.is_enabled()
    assert "AMP torch.bfloat16" in (Path(trainer.file_name) / "train_log.txt").read_text()


@pytest.mark.slow  # a fresh interpreter (about 3 s); main() gives the same exit code in-process above, and
# test-fast keeps one forwarder run in tests/cli/test_check_data.py
def test_tools_train_script_reports_a_user_error(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "tools" / "train.py"
    done = subprocess.run([sys.executable, str(script), "-n", "yolox-unknown", "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "yolox-unknown" in done.stderr and "Traceback" not in done.stderr


def test_tensorboard_request_without_the_package_is_explained(make_exp_file, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name.startswith("tensorboard"):
            raise ModuleNotFoundError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    trainer = _trainer(make_exp_file(), "-l", "tensorboard")
    with pytest.raises(UserError, match="pip install tensorboard"):
        trainer.train()
