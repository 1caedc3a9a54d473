"""YOLOX-Nano with Coordinate Attention on the built-in shapes dataset, sized to train on a CPU in minutes.

Generate the data first (``make demo`` does it): ``python tools/make_dataset.py --out datasets/shapes``.
"""

from yolox.data.shapes import SHAPE_CLASSES
from yolox.exp.default.yolox_nano import Exp as YOLOXNanoExp


class Exp(YOLOXNanoExp):
    """Five shape classes at 256 x 256; short schedule, mosaic without mixup, CAM on dark3/4/5."""

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
        self.input_size = (256, 256)
        self.test_size = (256, 256)
        self.random_size = (6, 10)
        self.mosaic_prob = 1.0
        self.mosaic_scale = (0.5, 1.5)
        self.enable_mixup = False
        self.data_num_workers = 2
        self.max_epoch = 12
        self.warmup_epochs = 1
        self.no_aug_epochs = 3
        self.basic_lr_per_img = 0.04 / 64
        self.eval_interval = 4
        self.print_interval = 10
        self.save_history_ckpt = False
        self.seed = 0
