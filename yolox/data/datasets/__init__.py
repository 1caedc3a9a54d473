"""Detection datasets (COCO, VOC, YOLO), their common base, the official dataset wrappers and the mosaic wrapper."""

from yolox.data.datasets.coco import COCODataset
from yolox.data.datasets.coco_classes import COCO_CLASSES
from yolox.data.datasets.datasets_wrapper import (
                                                  CacheDataset,
                                                  ConcatDataset,
                                                  Dataset,
                                                  DetectionDataset,
                                                  ImageRecord,
                                                  MixConcatDataset,
)
from yolox.data.datasets.mosaicdetection import MosaicDetection
from yolox.data.datasets.voc import VOCDetection
from yolox.data.datasets.voc_classes import VOC_CLASSES
from yolox.data.datasets.yolo import YOLODataset

__all__ = ["COCODataset", "COCO_CLASSES", "CacheDataset", "ConcatDataset", "Dataset", "DetectionDataset", "ImageRecord",
           "MixConcatDataset", "MosaicDetection", "VOCDetection", "VOC_CLASSES", "YOLODataset"]
