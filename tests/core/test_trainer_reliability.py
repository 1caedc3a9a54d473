"""Trainer failure handling: non-finite weights, bad validation images, best checkpoint, temporaries, Ctrl-C."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from loguru import logger

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer
from yolox.core.trainer import NonFiniteWeightsError
from yolox.utils.ema import unwrap_model
from yolox.utils.errors import UserError


def _trainer(exp_file: Path, *opts: str, cls: type = Trainer, batch: int = 4) -> Trainer:
    args = make_parser().parse_args(["-f", str(exp_file), "-b", str(batch), "--device", "cpu", *opts])
    return cls(build_exp(args), args)


def _private_copy(exp_file: Path, shapes_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The exp file pointed at a copy of the generated set, which the test may damage."""
    data_dir = tmp_path / "data"
    shutil.copytree(shapes_dir, data_dir)
    exp_file.write_text(exp_file.read_text().replace(repr(str(shapes_dir)), repr(str(data_dir))))
    return exp_file, data_dir


def _checkpoint(run_dir: Path, name: str = "latest") -> dict:
    return torch.load(run_dir / f"{name}_ckpt.pth", weights_only=True)


def test_nonfinite_weights_never_replace_the_last_good_checkpoint(make_exp_file) -> None:
    class PoisoningTrainer(Trainer):
        def after_iter(self) -> None:
            super().after_iter()
            if self.completed_iters == 6:  # the last iteration of epoch 2, just before its checkpoint
                with torch.no_grad():
                    unwrap_model(self.model).head.stems[0].conv.weight[0, 0, 0, 0] = float("inf")

    trainer = _trainer(make_exp_file(max_epoch=3), "eval_interval", "100", cls=PoisoningTrainer)
    with pytest.raises(NonFiniteWeightsError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "before writing latest_ckpt.pth at iteration 6 (epoch 2/3)" in message
    assert "the raw model's tensor head.stems.0.conv.weight holds NaN or inf" in message
    assert f"the last good checkpoint {trainer.file_name / 'latest_ckpt.pth'} is kept" in message
    kept = _checkpoint(trainer.file_name)
    assert kept["iteration"] == 3
    assert all(torch.isfinite(value).all() for value in kept["model_raw"].values() if value.is_floating_point())


def test_a_huge_finite_loss_that_breaks_the_weights_stops_at_its_iteration(make_exp_file,
                                                                            scaling_the_loss_from) -> None:
    overflowing = scaling_the_loss_from(Trainer, 4, 1e37)  # finite, but the gradients overflow
    trainer = _trainer(make_exp_file(max_epoch=3), "eval_interval", "100", cls=overflowing)
    with pytest.raises(NonFiniteWeightsError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "non-finite weights after the optimizer step (total_loss=" in message
    assert "at iteration 5 (epoch 2/3): the raw model's tensor " in message
    assert _checkpoint(trainer.file_name)["iteration"] == 3


# With a worker process the run costs about 10 s more: the loaders it leaves behind are collected later, and
# torch then waits its 5 s timeout for each worker to stop.
@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_a_bad_validation_image_names_the_file_and_keeps_the_epoch(make_exp_file, shapes_dir: Path, tmp_path: Path,
                                                                   workers: int) -> None:
    exp_file, data_dir = _private_copy(make_exp_file(max_epoch=2), shapes_dir, tmp_path)
    bad = data_dir / "val" / "000001.jpg"
    bad.write_bytes(bad.read_bytes()[:4] + b"\x00garbage after a valid JPEG signature" * 20)
    trainer = _trainer(exp_file, "data_num_workers", str(workers))
    with pytest.raises(UserError) as caught:
        trainer.train()
    message = str(caught.value)
    assert message.startswith(f"image {bad} could not be read") and "\n" not in message
    assert _checkpoint(trainer.file_name)["iteration"] == 3


def test_best_checkpoint_exists_after_the_first_evaluation_even_at_zero_ap(make_exp_file) -> None:
    trainer = _trainer(make_exp_file(max_epoch=3))
    trainer.exp.eval = lambda model, evaluator, distributed: (0.0, 0.0, "no detections")
    trainer.train()
    best = _checkpoint(trainer.file_name, "best")
    assert best["iteration"] == 9 and best["curr_ap"] == 0.0  # a tie keeps the newer weights


def test_stale_temporary_checkpoints_are_removed_at_start_up(make_exp_file) -> None:
    trainer = _trainer(make_exp_file())
    stale = trainer.file_name / ".latest_ckpt.pth.q1w2e3.tmp"
    stale.write_bytes(b"half a checkpoint")
    trainer.before_train()
    assert not stale.exists()
    log = (trainer.file_name / "train_log.txt").read_text()
    assert "removed 1 temporary checkpoint file(s) left by an interrupted save" in log
    assert ".latest_ckpt.pth.q1w2e3.tmp" in log


def test_a_training_set_without_boxes_is_an_error(make_exp_file, shapes_dir: Path, tmp_path: Path) -> None:
    exp_file, data_dir = _private_copy(make_exp_file(), shapes_dir, tmp_path)
    ann_file = data_dir / "annotations" / "instances_train.json"
    annotations = json.loads(ann_file.read_text())
    annotations["annotations"] = []
    ann_file.write_text(json.dumps(annotations))
    with pytest.raises(UserError, match=r"training set of exp tiny has 12 images but no boxes at all"):
        _trainer(exp_file).before_train()


def _interrupt_on(progress_lines: tuple[str, ...]) -> int:
    """A loguru sink that sends this process SIGINT while it writes each of ``progress_lines``.

    The signal then arrives inside loguru's handler, where a handler that logs would re-enter its lock.
    """
    def sink(message) -> None:
        if any(line in str(message) for line in progress_lines):
            os.kill(os.getpid(), signal.SIGINT)

    return logger.add(sink, level="INFO", format="{message}")


def test_ctrl_c_is_reported_outside_the_signal_handler(make_exp_file, capfd) -> None:
    trainer = _trainer(make_exp_file(max_epoch=3))
    sink = _interrupt_on(("epoch: 1/3, iter: 1/3,",))
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    finally:
        logger.remove(sink)
    err = capfd.readouterr().err
    assert "Logging error in Loguru Handler" not in err
    assert "Ctrl-C: saving latest_ckpt.pth after this iteration" in err
    assert _checkpoint(trainer.file_name)["iteration"] == 2


def test_a_second_ctrl_c_says_it_stops_without_saving(make_exp_file, capfd) -> None:
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs as a background job
    trainer = _trainer(make_exp_file(max_epoch=3))
    sink = _interrupt_on(("epoch: 1/3, iter: 1/3,", "Ctrl-C: saving latest_ckpt.pth"))
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    finally:
        logger.remove(sink)
    err = capfd.readouterr().err
    assert "second Ctrl-C: stopping at once without saving (iteration 2)" in err
    assert not (trainer.file_name / "latest_ckpt.pth").exists()
    assert signal.getsignal(signal.SIGINT) is handler_before  # the trainer puts back what it found


def test_unreadable_training_image_is_skipped_when_asked(make_exp_file, shapes_dir: Path, tmp_path: Path) -> None:
    exp_file, data_dir = _private_copy(make_exp_file(max_epoch=1), shapes_dir, tmp_path)
    bad = data_dir / "train" / "000004.jpg"
    bad.write_bytes(bad.read_bytes()[:100])  # a valid signature passes the start-up check; the data is cut off
    with pytest.raises(UserError, match=f"image {bad} could not be read.*skip_bad_images True"):
        _trainer(exp_file, "warmup_epochs", "0").train()
    trainer = _trainer(exp_file, "warmup_epochs", "0", "skip_bad_images", "True")
    trainer.train()
    log = (trainer.file_name / "train_log.txt").read_text()
    assert f"skipped unreadable image {bad}" in log


def test_a_read_only_output_folder_is_one_clear_error(make_exp_file, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(UserError, match=r"cannot write to the run folder .*ro.tiny: the folder is on a read-only "
                                            r"file system; choose a writable output_dir"):
            _trainer(make_exp_file(output_dir=folder))
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("saving", ["True", "False"])
def test_the_exp_key_bn_memory_saving_reaches_every_conv_unit(make_exp_file, saving: str) -> None:
    from yolox.models.network_blocks import BaseConv

    trainer = _trainer(make_exp_file(), "bn_memory_saving", saving)
    trainer.before_train()
    units = [module for module in unwrap_model(trainer.model).modules() if isinstance(module, BaseConv)]
    assert units and all(unit.bn_memory_saving is (saving == "True") for unit in units)
