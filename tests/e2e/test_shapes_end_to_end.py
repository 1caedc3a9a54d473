"""End to end on CPU: generate shapes, train the CAM shapes exp briefly, evaluate, and require real learning.

A regression anywhere in the model, the loss and assignment, the data pipeline, the trainer or the evaluator
shows up here as an AP50 far below what this short run reaches.
"""

import json
from pathlib import Path

import pytest
from loguru import logger

from yolox.cli.eval import main as eval_main
from yolox.cli.train import main as train_main
from yolox.data.shapes import generate_shapes_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")
# This run measured AP50 0.054 on a 2-core CPU (3 minutes); a shorter schedule (200 iterations at 128 px)
# that had not yet learnt to localise scored 0.002. About half the measured figure leaves room for
# thread-count noise while still failing any change that stops the detector from learning.
MIN_AP50 = 0.025


def short_run_overrides(data_dir: Path, output_dir: Path) -> list:
    """The shapes exp at 160 px on a small generated set: 400 iterations."""
    return ["data_dir", str(data_dir), "output_dir", str(output_dir), "input_size", "160,160",
            "test_size", "160,160", "random_size", "4,6", "max_epoch", "20", "warmup_epochs", "1",
            "no_aug_epochs", "2", "eval_interval", "20", "data_num_workers", "0", "print_interval", "10"]


@pytest.fixture(autouse=True)
def _restore_logger():
    """The tools route loguru to their log files; give the console back afterwards."""
    yield
    logger.remove()
    logger.add(__import__("sys").stderr)


@pytest.mark.slow
def test_short_training_learns_the_shapes(tmp_path: Path) -> None:
    data_dir = generate_shapes_dataset(tmp_path / "shapes", num_train=320, num_val=40, img_size=160, seed=0)
    overrides = short_run_overrides(data_dir, tmp_path / "runs")
    assert train_main(["-f", SHAPES_EXP, "-b", "16", "--device", "cpu", *overrides]) == 0
    run_dir = tmp_path / "runs" / "yolox_nano_cam_shapes"
    for name in ("best_ckpt.pth", "latest_ckpt.pth", "last_mosaic_epoch_ckpt.pth", "train_log.txt"):
        assert (run_dir / name).is_file(), name
    code = eval_main(["-f", SHAPES_EXP, "-c", str(run_dir / "best_ckpt.pth"), "-b", "8", "--device", "cpu", *overrides])
    assert code == 0
    results = json.loads((run_dir / "eval_results.json").read_text())
    assert results["ap50"] > MIN_AP50, f"AP50 {results['ap50']:.3f} after the short run (expected > {MIN_AP50})"
