"""Detection datasets (COCO, VOC), their common base and the mosaic training wrapper."""

from yolox.data.datasets.coco import COCODataset
from yolox.data.datasets.coco_classes import COCO_CLASSES
from yolox.data.datasets.datasets_wrapper import DetectionDataset, ImageRecord
from yolox.data.datasets.mosaicdetection import MosaicDetection
from yolox.data.datasets.voc import VOCDetection
from yolox.data.datasets.voc_classes import VOC_CLASSES

__all__ = ["COCODataset", "COCO_CLASSES", "DetectionDataset", "ImageRecord", "MosaicDetection", "VOCDetection",
           "VOC_CLASSES"]
