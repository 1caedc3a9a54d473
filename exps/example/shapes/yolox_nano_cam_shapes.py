"""YOLOX-Nano with Coordinate Attention on the built-in shapes dataset, sized to train on a CPU in minutes.

Generate the data first (``make demo`` does it): ``python tools/make_dataset.py --out datasets/shapes``.

The file also registers ``quarter``, a control block for studies: it multiplies its input by the constant
0.25 that CAM's two sigmoid gates give at the start, so ``--variants none,cam,quarter`` tells whether a
deficit of CAM comes from that damping alone (``attention quarter`` works with this exp file only).
"""

import torch
from torch import nn

from yolox.data.shapes import SHAPE_CLASSES
from yolox.exp.default.yolox_nano import Exp as YOLOXNanoExp
from yolox.models.attention import register_attention

QUARTER = 0.25


@register_attention("quarter")
class QuarterGate(nn.Module):
    """Multiplies the features by 0.25 everywhere; no parameters (a control, not an attention block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``0.25 * x``."""
        return x * QUARTER


class Exp(YOLOXNanoExp):
    """Five shape classes at 224 x 224; short schedule, mosaic without mixup, CAM on dark3/4/5."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = "cam"
        self.num_classes = len(SHAPE_CLASSES)
        self.class_names = SHAPE_CLASSES
        self.data_dir = "datasets/shapes"
        self.train_ann = "instances_train.json"
        self.val_ann = "instances_val.json"
        self.train_name = "train"
        self.val_name = "val"
        # The images are 256 x 256; training at 224 (multiscale 160..288) keeps a CPU epoch under a minute.
        self.input_size = (224, 224)
        self.test_size = (224, 224)
        self.random_size = (5, 9)
        self.mosaic_prob = 1.0
        self.mosaic_scale = (0.5, 1.5)
        self.enable_mixup = False
        self.data_num_workers = 2
        self.max_epoch = 10
        self.warmup_epochs = 1
        self.no_aug_epochs = 2
        self.basic_lr_per_img = 0.08 / 64  # 8x the YOLOX default: the short schedule needs it (AP50 0.34 -> 0.50)
        self.eval_interval = 5
        self.print_interval = 10
        self.save_history_ckpt = False
        self.seed = 0
