"""The numbers behind the evaluation pictures: PR curves against COCOeval, a confusion matrix worked by hand."""

import contextlib
import io

import numpy as np
import pytest
from eval_fixtures import make_coco_set
from pycocotools.coco import COCO
from test_coco_evaluator import ground_truth_detections, pycocotools_reference

from yolox.evaluators.coco_evaluator import detections_to_coco_array, score_coco
from yolox.evaluators.plots import confusion_matrix, pr_curves, write_eval_plots


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A generated set, jittered detections, our score and pycocotools' own COCOeval of the same detections."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(make_coco_set(tmp_path_factory.mktemp("shapes"))))
    detections = ground_truth_detections(coco, shift=0.15, seed=4)
    score = score_coco(coco, detections_to_coco_array(detections, sorted(coco.getCatIds())))
    return coco, detections, score, pycocotools_reference(coco, detections)


def test_pr_curves_are_cocoeval_precision_and_average_to_its_ap(scored) -> None:
    coco, _, score, reference = scored
    class_ids = sorted(coco.getCatIds())
    names = [coco.cats[c]["name"] for c in class_ids]
    curves = pr_curves(score.precision, names)
    assert len(curves["recall"]) == 101 and curves["recall"][:2] == [0.0, 0.01]
    for k, name in enumerate(names):
        expected = reference.eval["precision"][0, :, k, 0, -1]
        entry = curves["iou"]["0.50"]["per_class"][name]
        if (expected > -1).all():
            np.testing.assert_allclose(entry["precision"], expected, atol=1e-12)
            assert entry["ap"] == pytest.approx(expected.mean())
        else:
            assert entry == {"precision": None, "ap": None}
    # The overall curves average to COCOeval's summary figures AP50, AP75 and AP50:95.
    for label, stat in (("0.50", 1), ("0.75", 2), ("0.50:0.95", 0)):
        assert curves["iou"][label]["all"]["ap"] == pytest.approx(reference.stats[stat], abs=1e-12)


def test_confusion_matrix_worked_by_hand() -> None:
    """Two classes; image A: a hit, a class confusion, a duplicate, a false positive, one below the threshold;
    image B: a missed object."""
    truths = {
        "A": (np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1])),
        "B": (np.array([[0, 0, 10, 10]]), np.array([1])),
    }
    predictions = {
        "A": (np.array([[0, 0, 10, 10],      # class 0 on the class-0 object: a hit
                        [20, 20, 30, 31],    # class 0 on the class-1 object (IoU 100/110): confused
                        [50, 50, 60, 60],    # class 1 on nothing: a false positive
                        [0, 0, 10, 10],      # class 1, score 0.1 below 0.25: left out
                        [0, 1, 10, 10]]),    # class 0 again on the first object, already taken: a false positive
              np.array([0.9, 0.8, 0.9, 0.1, 0.7]), np.array([0, 0, 1, 1, 0])),
    }
    expected = np.array([
        # true: class 0, class 1, background
        [1, 1, 1],   # predicted class 0
        [0, 0, 1],   # predicted class 1
        [0, 1, 0],   # background (missed objects)
    ])
    np.testing.assert_array_equal(confusion_matrix(predictions, truths, num_classes=2, conf=0.25, iou=0.5), expected)
    # At IoU 0.95 the confusion pair (IoU 0.909) no longer matches: a false positive and a miss instead.
    strict = confusion_matrix(predictions, truths, num_classes=2, conf=0.25, iou=0.95)
    np.testing.assert_array_equal(strict, [[1, 0, 2], [0, 0, 1], [0, 2, 0]])


def test_write_eval_plots_without_matplotlib_writes_the_numbers_and_says_so(scored, tmp_path, monkeypatch) -> None:
    from loguru import logger

    import yolox.evaluators.plots as plots

    coco, detections, score, _ = scored
    class_ids = sorted(coco.getCatIds())
    monkeypatch.setattr(plots, "load_pyplot", lambda: None)
    messages: list[str] = []
    sink = logger.add(messages.append, level="INFO")
    try:
        written = write_eval_plots(tmp_path, score.precision, detections, coco, class_ids,
                                   [coco.cats[c]["name"] for c in class_ids])
    finally:
        logger.remove(sink)
    assert [path.name for path in written] == ["eval_plots.json"]
    assert any('pip install -e ".[plot]"' in message for message in messages)
