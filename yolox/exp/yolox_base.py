"""The YOLOX experiment: official defaults plus the attention settings of this project."""

import copy
import math
import random
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from loguru import logger

from yolox.exp.base_exp import BaseExp
from yolox.utils.errors import UserError

SCHEDULERS = ("yoloxwarmcos", "warmcos", "cos", "multistep")
DATASET_FORMATS = ("coco", "voc", "yolo")


def default_backbone_options() -> dict[str, Any]:
    """Fresh copies of the backbone keys' defaults, from the backbone table."""
    from yolox.models.backbones import BACKBONE_OPTION_DEFAULTS

    return copy.deepcopy(BACKBONE_OPTION_DEFAULTS)


def _comparable(key: str, value: Any) -> Any:
    """A meta value as the checkpoint check compares it: level lists as sets (their order builds the same model)."""
    return set(value or ()) if key == "attention_levels" else value


class Exp(BaseExp):
    """YOLOX defaults (as the official 0.3.0) with a PAFPN that may apply an attention block."""

    def __init__(self) -> None:
        super().__init__()
        # ---------------- model ---------------- #
        self.num_classes = 80
        self.depth = 1.00
        self.width = 1.00
        self.act = "silu"
        self.depthwise = False
        # ---------------- attention ---------------- #
        self.attention: str | None = None
        self.attention_position = "backbone"  # backbone (before fusion) | neck (PAN outputs) | both
        self.attention_levels: tuple[str, ...] | None = None  # None: every level of the position
        self.attention_kwargs: dict[str, Any] = {}
        self.attention_init = "paper"
        # ---------------- backbone ---------------- #
        # A name of the backbone table (yolox.models.backbones.BACKBONES): cspdarknet, resnet18 ... resnet152,
        # mobilenet_v3_large.
        self.backbone = "cspdarknet"
        # The keys some backbones read, at their defaults (yolox.models.resnet.RESNET_OPTIONS, for the ResNets):
        # backbone_weights, freeze_backbone_stages, block_attention, block_attention_position,
        # block_attention_stages, block_attention_kwargs, block_attention_init.
        self.__dict__.update(default_backbone_options())
        # ---------------- data ---------------- #
        self.data_num_workers = 4
        self.input_size = (640, 640)
        self.multiscale_range = 5
        self.random_size: tuple[int, int] | None = None
        self.data_dir: str | None = None
        self.dataset_format = "coco"  # coco | voc | yolo (an ultralytics data.yaml with images/ and labels/)
        self.data_yaml: str | None = None  # yolo: the data.yaml (default: <data_dir>/data.yaml)
        self.train_ann = "instances_train2017.json"
        self.val_ann = "instances_val2017.json"
        self.test_ann = "instances_test2017.json"
        self.train_name = "train2017"
        self.val_name = "val2017"
        self.test_name = "test2017"
        self.class_names: tuple[str, ...] | None = None
        self.voc_train_sets = (("2007", "trainval"), ("2012", "trainval"))
        self.voc_test_sets = (("2007", "test"),)
        # ---------------- augmentation ---------------- #
        self.mosaic_prob = 1.0
        self.mixup_prob = 1.0
        self.hsv_prob = 1.0
        self.flip_prob = 0.5
        self.degrees = 10.0
        self.translate = 0.1
        self.mosaic_scale = (0.1, 2)
        self.enable_mixup = True
        self.mixup_scale = (0.5, 1.5)
        self.shear = 2.0
        # ---------------- training ---------------- #
        self.warmup_epochs = 5
        self.max_epoch = 300
        self.warmup_lr = 0
        self.min_lr_ratio = 0.05
        self.basic_lr_per_img = 0.01 / 64.0
        self.scheduler = "yoloxwarmcos"
        self.milestones: tuple[int, ...] = ()
        self.no_aug_epochs = 15
        self.ema = True
        self.weight_decay = 5e-4
        self.momentum = 0.9
        self.print_interval = 10
        self.eval_interval = 10
        self.save_history_ckpt = True
        # True: train-mode BN + SiLU recompute their output in backward instead of keeping it (less training
        # memory, a slower backward: yolox.models.network_blocks.set_bn_memory_saving).
        self.bn_memory_saving = False
        self.skip_bad_images = False  # True: a training image that fails to decode is logged and replaced
        # ---------------- testing ---------------- #
        self.test_size = (640, 640)
        self.test_conf = 0.01
        self.nmsthre = 0.65

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Reject settings that cannot build a model or a run, naming the key and the accepted values."""
        super().validate()
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise UserError(f"exp key num_classes={self.num_classes!r}: must be a whole number >= 1")
        for key in ("input_size", "test_size"):
            size = tuple(getattr(self, key))
            if len(size) != 2 or any(not isinstance(side, int) or side <= 0 or side % 32 for side in size):
                raise UserError(f"exp key {key}={size!r}: both sides must be positive multiples of 32, e.g. 640,640")
        self.validate_backbone()
        self.validate_attention()
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"exp key scheduler={self.scheduler!r}: use one of {', '.join(SCHEDULERS)}")
        self.validate_schedule()
        self.validate_training_values()
        if self.dataset_format not in DATASET_FORMATS:
            raise UserError(f"exp key dataset_format={self.dataset_format!r}: use one of {', '.join(DATASET_FORMATS)}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise UserError(f"exp key class_names has {len(self.class_names)} names but num_classes is "
                            f"{self.num_classes}: make them agree")

    def validate_schedule(self) -> None:
        """Refuse epoch counts that cannot run; warm-up plus no-aug epochs may fill the whole run, not exceed it."""
        if isinstance(self.max_epoch, bool) or not isinstance(self.max_epoch, int) or self.max_epoch < 1:
            raise UserError(f"exp key max_epoch={self.max_epoch!r}: must be a whole number >= 1")
        for key in ("warmup_epochs", "no_aug_epochs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"exp key {key}={value!r}: must be a number >= 0")
        warmup, no_aug, total = self.warmup_epochs, self.no_aug_epochs, self.max_epoch
        if self.scheduler == "yoloxwarmcos" and warmup + no_aug > total:
            fitting_warmup = math.floor(total * warmup / (warmup + no_aug))
            raise UserError(
                f"exp keys warmup_epochs={warmup} + no_aug_epochs={no_aug} exceed max_epoch={total}: the schedule "
                f"cannot run; use max_epoch {math.ceil(warmup + no_aug)}, or keep max_epoch {total} with "
                f"warmup_epochs {fitting_warmup} and no_aug_epochs {min(no_aug, total - fitting_warmup)} (any pair summing "
                f"to at most {total})")
        if self.scheduler == "warmcos" and warmup > total:
            raise UserError(f"exp key warmup_epochs={warmup} exceeds max_epoch={total}: use warmup_epochs "
                            f"{total} or less, or max_epoch {math.ceil(warmup)}")

    def validate_training_values(self) -> None:
        """Refuse optimiser, augmentation and loader values that cannot train, with the key, value and valid range."""
        ranges = [(key, "a finite number >= 0") for key in ("basic_lr_per_img", "warmup_lr", "min_lr_ratio",
                                                           "weight_decay")]
        ranges += [("momentum", "a number from 0 up to (not including) 1")]
        ranges += [(key, "a probability from 0 to 1") for key in ("mosaic_prob", "mixup_prob", "hsv_prob",
                                                                 "flip_prob")]
        for key, valid in ranges:
            value = getattr(self, key)
            number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            high = 1.0 if key == "momentum" or valid.startswith("a probability") else math.inf
            inside = number and 0 <= value <= high and not (key == "momentum" and value == high)
            if not inside:
                raise UserError(f"exp key {key}={value!r}: must be {valid}")
        for key, allow_none in (("seed", True), ("data_num_workers", False)):
            value = getattr(self, key)
            if value is None and allow_none:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                none = " or None (unseeded)" if allow_none else ""
                raise UserError(f"exp key {key}={value!r}: must be a whole number >= 0{none}")

    def backbone_options(self) -> dict[str, Any]:
        """The exp's backbone keys (those of the backbone table's BACKBONE_OPTION_DEFAULTS) and their values."""
        from yolox.models.backbones import BACKBONE_OPTION_DEFAULTS

        return {key: getattr(self, key) for key in BACKBONE_OPTION_DEFAULTS}

    def validate_backbone(self) -> None:
        """Check the backbone keys through the backbone table: a known backbone, only keys it reads, valid values."""
        from yolox.models.backbones import check_backbone_options

        for key, value in check_backbone_options(self.backbone, self.backbone_options()).items():
            setattr(self, key, value)

    def validate_attention(self) -> None:
        """Check the attention keys against what yolox.models accepts and store them in canonical (lower) case."""
        from yolox.models import (
            ATTENTION_INIT_MODES,
            available_attentions,
            normalize_attention_name,
            normalize_attention_position,
            resolve_attention_levels,
        )

        attention = normalize_attention_name(self.attention)
        if attention is not None and attention not in available_attentions():
            raise UserError(f"exp key attention={self.attention!r} is unknown: use one of "
                            f"{', '.join(available_attentions())} or None")
        init = normalize_attention_name(self.attention_init)
        if init not in ATTENTION_INIT_MODES:
            raise UserError(f"exp key attention_init={self.attention_init!r}: use one of {', '.join(ATTENTION_INIT_MODES)}")
        try:
            position = normalize_attention_position(self.attention_position)
            levels = self.attention_levels
            if levels is not None:
                levels = resolve_attention_levels(position, levels, self.backbone_levels())
        except UserError as err:
            raise UserError(f"exp key attention_position={self.attention_position!r} / "
                            f"attention_levels={self.attention_levels!r}: {err}") from None
        if not isinstance(self.attention_kwargs, dict):
            raise UserError(f"exp key attention_kwargs={self.attention_kwargs!r}: must be a dict such as "
                            "{'reduction': 8}")
        self.attention, self.attention_init, self.attention_position = attention, init, position
        self.attention_levels = levels

    def resolved_attention_levels(self) -> tuple[str, ...]:
        """The levels that carry attention blocks: ``attention_levels``, or every level of the position."""
        from yolox.models import resolve_attention_levels

        return resolve_attention_levels(self.attention_position, self.attention_levels, self.backbone_levels())

    def backbone_levels(self) -> tuple[str, ...]:
        """Names of the backbone outputs the neck fuses (the table's levels): dark3..dark5 for CSPDarknet, c3..c5
        for the torchvision trunks."""
        from yolox.models.backbones import backbone_entry

        return backbone_entry(self.backbone).levels

    def meta(self) -> dict[str, Any]:
        """Plain-Python description of the model stored in checkpoints and checked when loading them."""
        return {
            "exp_name": self.exp_name,
            "num_classes": int(self.num_classes),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "depth": float(self.depth),
            "width": float(self.width),
            "depthwise": bool(self.depthwise),
            "act": self.act,
            "attention": self.attention,
            "attention_position": self.attention_position,
            "attention_levels": list(self.resolved_attention_levels()),
            "attention_kwargs": dict(self.attention_kwargs),
            "attention_init": self.attention_init,
            "backbone": self.backbone,
            "block_attention": self.block_attention,
            "block_attention_position": self.block_attention_position,
            "block_attention_stages": list(self.block_attention_stages),
            "block_attention_kwargs": dict(self.block_attention_kwargs),
            "block_attention_init": self.block_attention_init,
        }

    def check_meta(self, meta: dict[str, Any] | None, ckpt_path: str) -> None:
        """Raise a UserError when a checkpoint's meta describes another model than this exp builds."""
        if not meta:
            return
        mine = self.meta()
        keys = ["backbone", "attention", "block_attention", "num_classes", "depth", "width"]
        if meta.get("block_attention") is not None or mine["block_attention"] is not None:
            keys += ["block_attention_position", "block_attention_stages", "block_attention_init",
                     "block_attention_kwargs"]
        if meta.get("attention") is not None or mine["attention"] is not None:
            # Settings of the attention blocks matter only where there are blocks; levels are a set.
            keys += ["attention_position", "attention_levels", "attention_init", "attention_kwargs"]
        # Checkpoints written before attention positions existed had their blocks on the backbone.
        theirs = {"attention_position": "backbone", "backbone": "cspdarknet", **meta}
        differing = [key for key in keys if key in theirs and _comparable(key, theirs[key]) != _comparable(key, mine[key])]
        if differing:
            hint = f" (it was trained with the exp '{meta['exp_name']}')" if meta.get("exp_name") else ""
            found = ", ".join(f"{key}={theirs[key]!r}" for key in differing)
            built = ", ".join(f"{key}={mine[key]!r}" for key in differing)
            raise UserError(f"checkpoint {ckpt_path} has {found} but the exp builds {built}{hint}: "
                            f"pass the matching -f exp file or override {', '.join(differing)}")

    # ------------------------------------------------------------------ model
    def get_model(self) -> nn.Module:
        """Build YOLOX (PAFPN with the chosen attention + decoupled head), BN eps 1e-3, momentum 0.03."""
        from yolox.models import YOLOPAFPN, YOLOX, YOLOXHead
        from yolox.models.backbones import build_backbone, finish_backbone

        self.validate()
        if getattr(self, "model", None) is None:
            in_channels = [256, 512, 1024]
            trunk = build_backbone(self.backbone, self.backbone_options())  # None: the neck's own CSPDarknet
            backbone = YOLOPAFPN(
                self.depth, self.width, in_channels=in_channels, act=self.act, depthwise=self.depthwise,
                attention=self.attention, attention_levels=self.attention_levels,
                attention_kwargs=dict(self.attention_kwargs), attention_init=self.attention_init,
                attention_position=self.attention_position, backbone=trunk,
            )
            head = YOLOXHead(self.num_classes, self.width, in_channels=in_channels, act=self.act,
                             depthwise=self.depthwise)
            self.model = YOLOX(backbone, head)
            self.finish_model(self.model)
            finish_backbone(self.backbone, trunk, self.backbone_options())
            if self.attention is not None:
                self.warn_about_attention_cost(self.model)
        return self.model

    def warn_about_attention_cost(self, model: nn.Module) -> None:
        """Log a warning when the attention blocks add more than 10% to the model's FLOPs at ``test_size``."""
        from loguru import logger

        from yolox.utils.model_utils import attention_cost_warning

        warning = attention_cost_warning(model, tuple(self.test_size))
        if warning is not None:
            logger.warning(f"exp {self.exp_name}: {warning}")

    @staticmethod
    def finish_model(model: nn.Module) -> None:
        """Apply the YOLOX BatchNorm settings and the head's prior-probability bias initialisation."""
        from yolox.models import init_bn

        init_bn(model, eps=1e-3, momentum=0.03)
        model.head.initialize_biases(1e-2)
        model.train()

    # ------------------------------------------------------------------ data
    def resolved_class_names(self) -> tuple[str, ...] | None:
        """Class names from the exp when set (the datasets otherwise supply their own)."""
        return tuple(self.class_names) if self.class_names is not None else None

    def resolved_data_yaml(self) -> str:
        """The data.yaml of YOLO-format data: ``data_yaml``, else ``<data_dir>/data.yaml``."""
        if self.data_yaml:
            return str(self.data_yaml)
        if self.data_dir:
            return str(Path(self.data_dir) / "data.yaml")
        raise UserError("dataset_format yolo needs the exp key data_yaml (the ultralytics data.yaml) or data_dir "
                        "(the folder holding data.yaml)")

    def get_dataset(self, cache: bool = False, cache_type: str = "ram") -> Any:
        """The training dataset (COCO, VOC or YOLO layout) yielding un-augmented images and labels."""
        from yolox.data import COCODataset, TrainTransform, VOCDetection, YOLODataset

        preproc = TrainTransform(max_labels=50, flip_prob=self.flip_prob, hsv_prob=self.hsv_prob)
        if self.dataset_format == "yolo":
            return YOLODataset(self.resolved_data_yaml(), "train", img_size=self.input_size, preproc=preproc,
                               cache=cache, cache_type=cache_type, num_classes=self.num_classes)
        if self.dataset_format == "voc":
            return VOCDetection(data_dir=self.data_dir, image_sets=[tuple(s) for s in self.voc_train_sets],
                                img_size=self.input_size, preproc=preproc, class_names=self.resolved_class_names(),
                                num_classes=self.num_classes, cache=cache, cache_type=cache_type)
        return COCODataset(data_dir=self.data_dir, json_file=self.train_ann, name=self.train_name,
                           img_size=self.input_size, preproc=preproc, cache=cache, cache_type=cache_type,
                           num_classes=self.num_classes)

    def get_data_loader(self, batch_size: int, is_distributed: bool, no_aug: bool = False,
                        cache_img: str | None = None) -> Any:
        """The infinite training loader: mosaic/mixup dataset, seeded rank-aware sampler, worker seeding.

        ``batch_size`` is the total over all processes, as the trainer passes it; each rank loads its share.
        Every sample carries its own augmentation seed, from (seed, epoch, index), so the batches do not
        depend on the number of workers or processes nor on a resume (an unseeded run draws a fresh seed).
        """
        from yolox.data import (
            DataLoader,
            InfiniteSampler,
            MosaicDetection,
            TrainTransform,
            YoloBatchSampler,
            worker_init_reset_seed,
        )
        from yolox.data.augment_stream import fresh_augment_seed

        if getattr(self, "dataset", None) is None:
            self.dataset = self.get_dataset(cache=cache_img is not None, cache_type=cache_img or "ram")
        base_dataset = self.dataset.dataset if isinstance(self.dataset, MosaicDetection) else self.dataset
        base_dataset.skip_bad_images = bool(self.skip_bad_images)
        self.dataset = MosaicDetection(
            dataset=base_dataset, mosaic=not no_aug, img_size=self.input_size,
            preproc=TrainTransform(max_labels=120, flip_prob=self.flip_prob, hsv_prob=self.hsv_prob),
            degrees=self.degrees, translate=self.translate, mosaic_scale=self.mosaic_scale,
            mixup_scale=self.mixup_scale, shear=self.shear, enable_mixup=self.enable_mixup,
            mosaic_prob=self.mosaic_prob, mixup_prob=self.mixup_prob,
        )
        world_size = dist.get_world_size() if is_distributed else 1
        batch_size //= world_size
        sampler = InfiniteSampler(len(self.dataset), seed=self.seed if self.seed is not None else 0, keyed=True)
        batch_sampler = YoloBatchSampler(
            sampler=sampler, batch_size=batch_size, drop_last=False, mosaic=not no_aug,
            augment_seed=int(self.seed) if self.seed is not None else fresh_augment_seed(),
            mosaic_until=self.mosaic_stream_end(len(sampler), batch_size, world_size))
        loader_kwargs: dict[str, Any] = {"num_workers": self.data_num_workers, "pin_memory": torch.cuda.is_available(),
                                         "batch_sampler": batch_sampler, "worker_init_fn": worker_init_reset_seed,
                                         "persistent_workers": self.data_num_workers > 0}
        return DataLoader(self.dataset, **loader_kwargs)

    def apply_override(self, key: str, value: Any) -> None:
        """``random_size None`` on the command line means a fixed input size: it also sets multiscale_range 0.

        (In an exp file ``random_size = None`` keeps the official meaning: sizes from ``multiscale_range``.)
        """
        super().apply_override(key, value)
        if key == "random_size" and value is None:
            self.multiscale_range = 0

    def mosaic_stream_end(self, samples_per_rank: int, per_rank_batch: int, world_size: int) -> int:
        """The all-ranks stream position where the no-augmentation epochs (``no_aug_epochs``) begin."""
        iters_per_epoch = math.ceil(samples_per_rank / per_rank_batch)
        first_no_aug_epoch = max(math.ceil(self.max_epoch - self.no_aug_epochs), 0)
        return first_no_aug_epoch * iters_per_epoch * per_rank_batch * world_size

    def multiscale_bounds(self) -> tuple[int, int]:
        """Smallest and largest multiscale side in units of 32 (``random_size`` wins when set)."""
        if self.random_size is not None:
            return int(self.random_size[0]), int(self.random_size[1])
        base = int(self.input_size[0] / 32)
        return base - self.multiscale_range, base + self.multiscale_range

    def random_resize(self, data_loader: Any, epoch: int, rank: int, is_distributed: bool,
                      iteration: int | None = None) -> tuple[int, int]:
        """Draw the next multiscale input size (on rank 0, shared with all ranks), keeping the aspect ratio.

        In a seeded run given the ``iteration`` the draw comes from (seed, iteration), so a resumed run draws
        the sizes of an uninterrupted one; otherwise from the global ``random`` module, as the official YOLOX.
        """
        from yolox.data.augment_stream import iteration_rng

        size_tensor = torch.zeros(2, dtype=torch.long)
        if rank == 0:
            low, high = self.multiscale_bounds()
            if low < 1 and not getattr(self, "_warned_multiscale_clip", False):
                self._warned_multiscale_clip = True
                logger.warning(f"multiscale sides range from {low * 32} to {high * 32} px (input_size "
                               f"{tuple(self.input_size)}, multiscale_range {self.multiscale_range}); those below "
                               "32 px are drawn as 32 px: lower multiscale_range, set random_size, or give "
                               "random_size None for a fixed size")
            seeded = self.seed is not None and iteration is not None
            draw = iteration_rng(int(self.seed), int(iteration)) if seeded else random
            side = draw.randint(max(low, 1), max(high, 1))
            aspect = self.input_size[1] / self.input_size[0]
            size_tensor[0] = side * 32
            size_tensor[1] = 32 * int(side * aspect)
        if is_distributed:
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            size_tensor = size_tensor.to(device)
            dist.broadcast(size_tensor, 0)
        return int(size_tensor[0]), int(size_tensor[1])

    def preprocess(self, inputs: torch.Tensor, targets: torch.Tensor,
                   tsize: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Resize a batch to ``tsize`` (bilinear) and scale its box coordinates to match."""
        scale_y = tsize[0] / self.input_size[0]
        scale_x = tsize[1] / self.input_size[1]
        if scale_x != 1 or scale_y != 1:
            inputs = nn.functional.interpolate(inputs, size=tuple(tsize), mode="bilinear", align_corners=False)
            targets = targets.clone()
            targets[..., 1::2] = targets[..., 1::2] * scale_x
            targets[..., 2::2] = targets[..., 2::2] * scale_y
        return inputs, targets

    # ------------------------------------------------------------------ optimisation
    def get_optimizer(self, batch_size: int) -> torch.optim.Optimizer:
        """SGD (Nesterov) with three groups: norm weights and other 0/1-D tensors, decayed weights, biases."""
        if getattr(self, "optimizer", None) is not None:
            return self.optimizer
        lr = self.warmup_lr if self.warmup_epochs > 0 else self.basic_lr_per_img * batch_size
        no_decay: list[nn.Parameter] = []
        decay: list[nn.Parameter] = []
        biases: list[nn.Parameter] = []
        for module in self.model.modules():
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad:
                    continue
                if name == "bias":
                    biases.append(param)
                elif isinstance(module, nn.modules.batchnorm._NormBase) or param.ndim <= 1:
                    no_decay.append(param)
                else:
                    decay.append(param)
        optimizer = torch.optim.SGD(no_decay, lr=lr, momentum=self.momentum, nesterov=True)
        optimizer.add_param_group({"params": decay, "weight_decay": self.weight_decay})
        optimizer.add_param_group({"params": biases})
        self.optimizer = optimizer
        return optimizer

    def get_lr_scheduler(self, lr: float, iters_per_epoch: int, **kwargs: Any) -> Any:
        """The learning-rate schedule named by ``scheduler``."""
        from yolox.utils.lr_scheduler import LRScheduler

        return LRScheduler(
            self.scheduler, lr, iters_per_epoch, self.max_epoch, warmup_epochs=self.warmup_epochs,
            warmup_lr_start=self.warmup_lr, no_aug_epochs=self.no_aug_epochs, min_lr_ratio=self.min_lr_ratio,
            milestones=list(self.milestones), **kwargs,
        )

    # ------------------------------------------------------------------ evaluation
    def get_eval_dataset(self, **kwargs: Any) -> Any:
        """The validation (or test-dev) dataset with the evaluation letterbox."""
        from yolox.data import COCODataset, ValTransform, VOCDetection, YOLODataset

        testdev = kwargs.get("testdev", False)
        legacy = kwargs.get("legacy", False)
        if self.dataset_format == "yolo":
            return YOLODataset(self.resolved_data_yaml(), "test" if testdev else "val", img_size=self.test_size,
                               preproc=ValTransform(legacy=legacy), num_classes=self.num_classes)
        if self.dataset_format == "voc":
            return VOCDetection(data_dir=self.data_dir, image_sets=[tuple(s) for s in self.voc_test_sets],
                                img_size=self.test_size, preproc=ValTransform(legacy=legacy),
                                class_names=self.resolved_class_names(), num_classes=self.num_classes)
        return COCODataset(data_dir=self.data_dir, json_file=self.test_ann if testdev else self.val_ann,
                           name=self.test_name if testdev else self.val_name, img_size=self.test_size,
                           preproc=ValTransform(legacy=legacy), num_classes=self.num_classes)

    def get_eval_loader(self, batch_size: int, is_distributed: bool, **kwargs: Any) -> Any:
        """Sequential (or per-rank) loader over the evaluation dataset."""
        dataset = self.get_eval_dataset(**kwargs)
        if is_distributed:
            batch_size //= dist.get_world_size()
            sampler = torch.utils.data.distributed.DistributedSampler(dataset, shuffle=False)
        else:
            sampler = torch.utils.data.SequentialSampler(dataset)
        return torch.utils.data.DataLoader(dataset, batch_size=max(batch_size, 1), sampler=sampler,
                                           num_workers=self.data_num_workers, pin_memory=torch.cuda.is_available())

    def get_evaluator(self, batch_size: int, is_distributed: bool, testdev: bool = False,
                      legacy: bool = False) -> Any:
        """COCOEvaluator (or VOCEvaluator for VOC data) over the evaluation loader."""
        from yolox.evaluators import COCOEvaluator, VOCEvaluator

        loader = self.get_eval_loader(batch_size, is_distributed, testdev=testdev, legacy=legacy)
        if self.dataset_format == "voc":
            return VOCEvaluator(dataloader=loader, img_size=self.test_size, confthre=self.test_conf,
                                nmsthre=self.nmsthre, num_classes=self.num_classes)
        return COCOEvaluator(dataloader=loader, img_size=self.test_size, confthre=self.test_conf,
                             nmsthre=self.nmsthre, num_classes=self.num_classes, testdev=testdev)

    def get_trainer(self, args: Any) -> Any:
        """The training loop for this exp and the parsed command-line arguments."""
        from yolox.core import Trainer

        return Trainer(self, args)

    def eval(self, model: nn.Module, evaluator: Any, is_distributed: bool, half: bool = False,
             return_outputs: bool = False) -> Any:
        """Evaluate ``model``: returns (AP50:95, AP50, summary) and the outputs when asked."""
        return evaluator.evaluate(model, is_distributed, half, return_outputs=return_outputs)



def check_exp_value(exp: Exp) -> None:
    """Raise a UserError when ``input_size`` or ``test_size`` is not a pair of positive multiples of 32."""
    for key in ("input_size", "test_size"):
        size = tuple(getattr(exp, key))
        if len(size) != 2 or any(int(side) != side or side <= 0 or side % 32 for side in size):
            raise UserError(f"exp key {key}={size!r}: both sides must be positive multiples of 32, e.g. 640,640")
