"""Data pipeline: COCO/VOC/YOLO-format datasets, augmentation, samplers, loaders and the device prefetcher."""

from yolox.data.data_augment import TrainTransform, ValTransform, augment_hsv, preproc, random_affine
from yolox.data.data_prefetcher import DataPrefetcher
from yolox.data.dataloading import DataLoader, get_yolox_datadir, resolve_data_dir, worker_init_reset_seed
from yolox.data.datasets import (
    COCO_CLASSES,
    VOC_CLASSES,
    CacheDataset,
    COCODataset,
    ConcatDataset,
    Dataset,
    DetectionDataset,
    ImageRecord,
    MixConcatDataset,
    MosaicDetection,
    VOCDetection,
    YOLODataset,
)
from yolox.data.samplers import InfiniteSampler, YoloBatchSampler

__all__ = [
    "COCO_CLASSES", "COCODataset", "CacheDataset", "ConcatDataset", "DataLoader", "DataPrefetcher", "Dataset",
    "DetectionDataset", "ImageRecord", "InfiniteSampler", "MixConcatDataset", "MosaicDetection", "TrainTransform",
    "VOC_CLASSES", "VOCDetection", "ValTransform", "YOLODataset", "YoloBatchSampler", "augment_hsv", "get_yolox_datadir", "preproc",
    "random_affine", "resolve_data_dir", "worker_init_reset_seed",
]
