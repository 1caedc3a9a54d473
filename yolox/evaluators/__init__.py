"""Evaluators: COCO (pycocotools COCOeval) and Pascal VOC metrics over an evaluation loader."""

from yolox.evaluators.coco_evaluator import COCOEvaluator
from yolox.evaluators.voc_evaluator import VOCEvaluator

__all__ = ["COCOEvaluator", "VOCEvaluator"]
