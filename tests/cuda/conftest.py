"""Fixtures of the CUDA tests: a generated shapes set, an exp file for it, and one short fp16 training run."""

from pathlib import Path

import pytest
import torch

CUDA_EXP = '''
from yolox.exp import Exp as BaseExp


class Exp(BaseExp):
    def __init__(self):
        super().__init__()
        self.num_classes = 5
        self.depth = 0.33  # yolox-s
        self.width = 0.50
        self.input_size = (256, 256)
        self.test_size = (256, 256)
        self.multiscale_range = 0
        self.data_dir = {data_dir!r}
        self.train_ann = "instances_train.json"
        self.val_ann = "instances_val.json"
        self.train_name = "train"
        self.val_name = "val"
        self.data_num_workers = 4
        self.max_epoch = {max_epoch}
        self.warmup_epochs = 0
        self.no_aug_epochs = 0
        self.basic_lr_per_img = 0.08 / 64
        self.print_interval = 5
        self.eval_interval = 100
        self.seed = 0
        self.output_dir = {output_dir!r}
        self.exp_name = "cuda_check"
'''
TRAIN_IMAGES = 400  # 50 iterations per epoch at batch 8


@pytest.fixture(scope="session")
def cuda_shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 training and 40 validation shapes images of 256 x 256."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    from yolox.data.shapes import generate_shapes_dataset

    return Path(generate_shapes_dataset(tmp_path_factory.mktemp("cuda_shapes"), num_train=TRAIN_IMAGES, num_val=40,
                                        img_size=256, seed=0))


@pytest.fixture(scope="session")
def write_cuda_exp(cuda_shapes_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``write_cuda_exp(max_epoch, name)``: an exp file (yolox-s, 5 classes, 256 px) and its output folder."""

    def write(max_epoch: int, name: str) -> Path:
        folder = tmp_path_factory.mktemp(name)
        path = folder / "cuda_exp.py"
        path.write_text(CUDA_EXP.format(data_dir=str(cuda_shapes_dir), max_epoch=max_epoch,
                                        output_dir=str(folder / "runs")))
        return path

    return write
