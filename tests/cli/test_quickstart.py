"""The quick start (make demo) from a folder other than the checkout, on a tiny dataset and one epoch."""

import json
from pathlib import Path

import pytest

from yolox.cli import quickstart
from yolox.data.shapes import generate_shapes_dataset

TINY_RUN = ["max_epoch", "1", "warmup_epochs", "0", "no_aug_epochs", "0", "eval_interval", "1",
            "input_size", "64,64", "test_size", "64,64", "random_size", "2,2", "data_num_workers", "0"]


def test_exp_file_is_found_from_the_package_not_the_current_folder() -> None:
    assert Path(quickstart.DEMO_EXP).is_absolute() and Path(quickstart.DEMO_EXP).is_file()


@pytest.mark.slow
def test_quickstart_runs_from_another_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    generate_shapes_dataset(tmp_path / "datasets" / "shapes", num_train=8, num_val=6, img_size=64, seed=0)
    assert quickstart.main(["-b", "4", *TINY_RUN]) == 0
    printed = capsys.readouterr().out
    assert "quick start done" in printed and "datasets/shapes" in printed
    run_dir = tmp_path / "YOLOX_outputs" / "yolox_nano_cam_shapes"
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["attention"] == "cam" and results["test_size"] == [64, 64]
    assert (run_dir / quickstart.PICTURE_NAME).is_file()


def test_a_bad_override_is_one_line_and_exit_code_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert quickstart.main(["no_such_key", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
