"""VOC metrics: hand-computed AP cases (area and 11-point), difficult objects, and the VOC evaluator."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from eval_fixtures import OracleModel

from yolox.evaluators import VOCEvaluator
from yolox.evaluators.voc_eval import VOCObjects, voc_ap, voc_class_ap, voc_evaluate
from yolox.evaluators.voc_evaluator import summarize_voc

A, B, HARD = [10, 10, 50, 50], [60, 20, 90, 70], [5, 60, 40, 95]


def known_case() -> tuple[list, np.ndarray, np.ndarray, dict]:
    """Two images, two positives and one difficult object; five detections in score order.

    Ranks: A (TP), a miss (FP), B (TP), the difficult one (ignored), A again (FP): precision 1, 1/2,
    2/3, -, 1/2 at recall 1/2, 1/2, 1, -, 1. Area AP = 1/2 x 1 + 1/2 x 2/3; 11-point AP = (6 + 5 x 2/3) / 11.
    """
    keys = ["img0", "img0", "img1", "img1", "img0"]
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    boxes = np.array([A, [200, 200, 220, 220], B, HARD, [12, 10, 50, 52]], dtype=np.float64)
    truth = {
        "img0": (np.array([A], dtype=np.float64), np.array([False])),
        "img1": (np.array([B, HARD], dtype=np.float64), np.array([False, True])),
    }
    return keys, scores, boxes, truth


def test_voc_ap_on_simple_curves() -> None:
    """A perfect curve scores 1; half recall at full precision scores 1/2 (area) and 6/11 (11-point)."""
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    assert voc_ap(np.array([0.5]), np.array([1.0])) == pytest.approx(0.5)
    assert voc_ap(np.array([0.5]), np.array([1.0]), use_07_metric=True) == pytest.approx(6 / 11)


def test_known_case_with_difficult_object() -> None:
    """The hand-computed AP, with the difficult match neither a TP nor an FP."""
    keys, scores, boxes, truth = known_case()
    recall, precision, ap = voc_class_ap(keys, scores, boxes, truth, 0.5)
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3, 2 / 3, 0.5])
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert voc_class_ap(keys, scores, boxes, truth, 0.5, use_07_metric=True)[2] == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_strict_iou_threshold_and_empty_class() -> None:
    """The moved box (IoU 0.909) matches at 0.9, not at 0.95; a class without objects has AP NaN."""
    keys, scores, boxes, truth = known_case()
    keys, scores, boxes = keys[:1] + keys[4:], scores[[0, 4]], boxes[[1, 4]]  # a miss, then the moved box
    assert voc_class_ap(keys, scores, boxes, truth, 0.95)[2] == pytest.approx(0.0)
    assert voc_class_ap(keys, scores, boxes, truth, 0.9)[2] == pytest.approx(0.5 * 0.5)
    assert np.isnan(voc_class_ap(["img0"], np.array([0.5]), np.array([A], dtype=float), {}, 0.5)[2])


def test_voc_evaluate_over_thresholds_and_summary() -> None:
    """Perfect detections give AP 1 at every IoU; the mean skips classes without objects."""
    truth = {0: VOCObjects(np.array([A, B], dtype=float), np.array([0, 1]), np.array([False, False]))}
    detections = {0: np.array([A + [1.0, 1.0, 0], B + [0.9, 1.0, 1]], dtype=np.float32)}
    per_class = voc_evaluate(detections, truth, ["cat", "dog", "cow"])
    np.testing.assert_allclose(per_class["cat"], 1.0)
    np.testing.assert_allclose(per_class["dog"], 1.0)
    assert np.isnan(per_class["cow"]).all()
    map50, map50_95, text = summarize_voc(per_class, use_07_metric=False)
    assert (map50, map50_95) == (pytest.approx(1.0), pytest.approx(1.0))
    assert "cow" in text and "VOC2010+" in text


def write_voc_set(root: Path, objects: list[list[tuple]], size: tuple[int, int]) -> Path:
    """A VOC2007 'test' set of flat images whose grey level is 10 x index; returns the VOCdevkit folder."""
    base = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    names = []
    for index, image_objects in enumerate(objects):
        name = f"{index:06d}"
        names.append(name)
        cv2.imwrite(str(base / "JPEGImages" / f"{name}.jpg"), np.full((size[0], size[1], 3), 10 * index, np.uint8))
        xml_objects = "".join(
            f"<object><name>{cls}</name><difficult>{int(hard)}</difficult><bndbox><xmin>{x1 + 1}</xmin>"
            f"<ymin>{y1 + 1}</ymin><xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>"
            for x1, y1, x2, y2, cls, hard in image_objects
        )
        (base / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>{xml_objects}</annotation>"
        )
    (base / "ImageSets" / "Main" / "test.txt").write_text("\n".join(names) + "\n")
    return root / "VOCdevkit"


def test_voc_evaluator_on_a_generated_set(tmp_path) -> None:
    """Predicting every non-difficult object exactly gives mAP 1 (difficult ones need no detection)."""
    from yolox.data import ValTransform, VOCDetection

    classes = ("cat", "dog")
    objects = [
        [(10, 10, 50, 50, "cat", False), (60, 20, 90, 70, "dog", False)],
        [(5, 5, 40, 30, "cat", True), (50, 40, 100, 90, "cat", False)],
        [(20, 30, 70, 80, "dog", False)],
    ]
    data_dir = write_voc_set(tmp_path, objects, size=(100, 120))
    dataset = VOCDetection(str(data_dir), [("2007", "test")], img_size=(96, 96), preproc=ValTransform(), class_names=classes)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    evaluator = VOCEvaluator(loader, (96, 96), confthre=0.01, nmsthre=0.65, num_classes=2)
    assert evaluator.use_07_metric  # VOC2007 image sets use the 11-point metric by default
    truth = [[(x1, y1, x2, y2, classes.index(c)) for x1, y1, x2, y2, c, hard in image if not hard] for image in objects]
    model = OracleModel(truth, [(100, 120)] * 3, (96, 96), num_classes=2, index_scale=10.0)
    map50_95, map50, summary = evaluator.evaluate(model)
    assert map50 == pytest.approx(1.0)
    assert map50_95 == pytest.approx(1.0)
    assert "VOC2007 11-point" in summary and "Average forward time" in summary
    # the same keys as a COCO evaluation; VOC has no size split
    assert evaluator.last_figures == {"ap50_95": pytest.approx(1.0), "ap50": pytest.approx(1.0),
                                      "ap75": pytest.approx(1.0), "aps": None, "apm": None, "apl": None}
