"""Fixtures for the study tests: a tiny generated shapes set and the study flags that train on it in seconds."""

import sys
from pathlib import Path

import pytest
import torch
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen training and four validation images of 64 x 64 pixels."""
    from yolox.data.shapes import generate_shapes_dataset

    return Path(generate_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=16, num_val=4, img_size=64, seed=0))


@pytest.fixture()
def tiny_overrides(tiny_shapes: Path) -> list[str]:
    """Exp overrides: 64 px, 3 epochs of 4 iterations (batch 4), evaluation every epoch, no workers."""
    return ["data_dir", str(tiny_shapes), "input_size", "64,64", "test_size", "64,64", "random_size", "2,2",
            "max_epoch", "3", "warmup_epochs", "1", "no_aug_epochs", "1", "eval_interval", "1",
            "data_num_workers", "0", "print_interval", "2"]


@pytest.fixture(autouse=True)
def _restore_logger_and_threads():
    """The commands route loguru to run folders; give the console back. One thread keeps tiny steps fast."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
    logger.remove()
    logger.add(sys.stderr)
