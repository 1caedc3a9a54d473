"""Fixtures for the training tests: a small generated COCO set and a tiny exp file that trains on it."""

from pathlib import Path

import pytest
import torch

TINY_EXP = '''
from yolox.exp import Exp as BaseExp


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 5
        self.depth = 0.33
        self.width = 0.125
        self.input_size = (64, 64)
        self.test_size = (64, 64)
        self.multiscale_range = 0
        self.data_dir = {data_dir!r}
        self.train_ann = "instances_train.json"
        self.val_ann = "instances_val.json"
        self.train_name = "train"
        self.val_name = "val"
        self.data_num_workers = 0
        self.enable_mixup = False
        self.degrees = 0.0
        self.shear = 0.0
        self.max_epoch = {max_epoch}
        self.warmup_epochs = 1
        self.no_aug_epochs = 1
        self.basic_lr_per_img = 0.01 / 8
        self.print_interval = 1
        self.eval_interval = 1
        self.seed = 0
        self.output_dir = {output_dir!r}
        self.exp_name = "tiny"
'''


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve training and four validation images of 64 x 64 pixels."""
    from yolox.data.shapes import generate_shapes_dataset

    return Path(generate_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=12, num_val=4, img_size=64, seed=0))


@pytest.fixture()
def make_exp_file(shapes_dir: Path, tmp_path: Path):
    """Write a tiny exp file (yolox-s layout at depth 0.33, width 0.125, 64 px) and return its path."""

    def write(max_epoch: int = 3, output_dir: Path | None = None) -> Path:
        path = tmp_path / "tiny_exp.py"
        path.write_text(TINY_EXP.format(data_dir=str(shapes_dir), max_epoch=max_epoch,
                                        output_dir=str(output_dir or tmp_path / "out")))
        return path

    return write


def _scaling_the_loss_from(trainer_class: type, iteration: int, factor: float) -> type:
    """A subclass of ``trainer_class`` whose total loss is multiplied by ``factor`` from ``iteration`` on."""

    class LossScalingTrainer(trainer_class):
        def train_one_iter(self) -> None:
            if self.completed_iters == iteration:
                forward = self.model.forward

                def scaled_forward(*inputs):
                    outputs = forward(*inputs)
                    outputs["total_loss"] = outputs["total_loss"] * factor
                    return outputs

                self.model.forward = scaled_forward
            super().train_one_iter()

    return LossScalingTrainer


@pytest.fixture(scope="session")
def scaling_the_loss_from():
    """``scaling_the_loss_from(TrainerClass, iteration, factor)``: a trainer whose loss goes NaN or huge there."""
    return _scaling_the_loss_from


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared two-core machine two threads make these small steps several times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
