"""What a training prints at start: one console line, the settings once per run in train_log.txt; and what
``--resume`` of a finished run says."""

from pathlib import Path

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer

TABLE_ROW = "│ max_epoch"  # a row of the exp table


def _train(exp_file: Path, *flags: str) -> Trainer:
    args = make_parser().parse_args(["-f", str(exp_file), "-b", "4", "--device", "cpu", *flags])
    trainer = Trainer(build_exp(args), args)
    trainer.train()
    return trainer


def test_the_console_gets_one_line_and_the_log_file_the_table(make_exp_file, capsys) -> None:
    exp_file = make_exp_file(max_epoch=2)
    trainer = _train(exp_file)
    console = capsys.readouterr().err
    log_file = Path(trainer.file_name) / "train_log.txt"
    assert TABLE_ROW not in console and "args: {" not in console
    (summary,) = [line for line in console.splitlines() if "| exp tiny:" in line]
    assert "cspdarknet depth 0.33 width 0.125, attention none, 5 classes, input 64x64, 2 epochs" in summary
    assert f"every setting is in {log_file} (--verbose prints them here)" in summary
    log = log_file.read_text()
    assert log.count(TABLE_ROW) == 1 and log.count("args: {") == 1

    # --resume of the finished run says so and how to extend it; --verbose puts the table on the console too.
    resumed = _train(exp_file, "--resume", "--verbose")
    console = capsys.readouterr().err
    assert console.count(TABLE_ROW) == 1
    assert (f"{Path(trainer.file_name) / 'latest_ckpt.pth'} is a finished run: all 2 epochs are done, there is "
            "nothing left to train. To train it longer, resume with a larger max_epoch: add the override "
            "'max_epoch 12'") in console
    assert resumed.completed_iters == trainer.completed_iters
    assert log_file.read_text().count(TABLE_ROW) == 2  # once per run started

    longer = _train(exp_file, "--resume", "max_epoch", "3")
    console = capsys.readouterr().err
    assert "finished run" not in console and "resuming from" in console
    assert longer.completed_iters == 3 * trainer.completed_iters // 2
