"""COCO evaluation on generated sets: conversion, scoring against pycocotools, tables, the full evaluator."""

import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest
import torch
from eval_fixtures import LetterboxedGroundTruth, OracleModel, coco_truth, make_coco_set
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolox.evaluators import COCOEvaluator
from yolox.evaluators.base import EVAL_FIGURES, evaluation_figures
from yolox.evaluators.coco_evaluator import (
    NO_DETECTIONS_LINE,
    EvalReport,
    check_backend,
    coco_array_to_json,
    coco_figures,
    detections_to_coco_array,
    results_to_coco,
    score_coco,
)
from yolox.evaluators.inference import InferenceTiming
from yolox.utils.errors import UserError


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory) -> tuple[COCO, str]:
    """A generated 6-image shapes set and its pycocotools index."""
    json_file = make_coco_set(tmp_path_factory.mktemp("shapes"))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_file)), str(json_file)


def ground_truth_detections(coco: COCO, shift: float = 0.0, seed: int = 0) -> dict[int, np.ndarray]:
    """The annotations as detection rows x1 y1 x2 y2 obj cls_score cls_idx, shifted by ``shift`` x size."""
    class_ids = sorted(coco.getCatIds())
    rng = np.random.default_rng(seed)
    detections = {}
    for image_id in sorted(coco.getImgIds()):
        rows = []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            x, y, w, h = ann["bbox"]
            dx = shift * w * rng.uniform(0.2, 1.6) * rng.choice([-1, 1])
            score = 1.0 if shift == 0 else rng.uniform(0.3, 1.0)
            rows.append([x + dx, y, x + dx + w, y + h, score, 0.9 if shift else 1.0, class_ids.index(ann["category_id"])])
        detections[image_id] = np.array(rows, dtype=np.float32).reshape(-1, 7)
    return detections


def pycocotools_reference(coco: COCO, detections: dict[int, np.ndarray]) -> COCOeval:
    """Score ``detections`` the plain way: one dict per box, a JSON round trip, COCOeval."""
    class_ids = sorted(coco.getCatIds())
    results = []
    for image_id, rows in detections.items():
        for row in rows:
            x1, y1, x2, y2 = (float(v) for v in row[:4])
            results.append(
                {
                    "image_id": image_id,
                    "category_id": class_ids[int(row[6])],
                    "bbox": [x1, y1, float(np.float32(row[2] - row[0])), float(np.float32(row[3] - row[1]))],
                    "score": float(np.float32(row[4] * row[5])),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(coco, coco.loadRes(json.loads(json.dumps(results))), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def test_conversion_maps_ids_and_sizes() -> None:
    """Rows become image id, x, y, w, h, obj x cls score, category id, in image order."""
    detections = {
        7: np.array([[10, 20, 30, 60, 0.5, 0.8, 1]], dtype=np.float32),
        3: np.zeros((0, 7), dtype=np.float32),
        9: np.array([[0, 0, 5, 5, 1.0, 0.25, 0], [1, 2, 4, 8, 0.5, 0.5, 2]], dtype=np.float32),
    }
    array = detections_to_coco_array(detections, class_ids=[4, 8, 15])
    expected = [[7, 10, 20, 20, 40, 0.4, 8], [9, 0, 0, 5, 5, 0.25, 4], [9, 1, 2, 3, 6, 0.25, 15]]
    np.testing.assert_allclose(array, expected, rtol=1e-6)
    assert coco_array_to_json(array)[0] == {"image_id": 7, "category_id": 8, "bbox": array[0, 1:5].tolist(), "score": array[0, 5]}


def test_conversion_rejects_unknown_class_index() -> None:
    """A class index beyond the annotation's categories names the mismatch."""
    with pytest.raises(UserError, match="num_classes"):
        detections_to_coco_array({1: np.array([[0, 0, 1, 1, 1, 1, 5]], dtype=np.float32)}, class_ids=[1, 2])


def test_perfect_detections_give_ap_one(coco_set) -> None:
    """The ground truth fed as predictions scores AP 1.0 overall and for every class."""
    coco, _ = coco_set
    score = score_coco(coco, detections_to_coco_array(ground_truth_detections(coco), sorted(coco.getCatIds())))
    assert score.ap50_95 == pytest.approx(1.0)
    assert score.ap50 == pytest.approx(1.0)
    present = {coco.cats[c]["name"] for c in coco.getCatIds() if coco.getAnnIds(catIds=[c])}
    assert all(score.per_class_ap[name] == pytest.approx(1.0) for name in present)


def test_shifted_boxes_match_pycocotools(coco_set) -> None:
    """Shifted, randomly scored boxes give exactly the figures pycocotools computes from a JSON file."""
    coco, _ = coco_set
    detections = ground_truth_detections(coco, shift=0.15, seed=4)
    score = score_coco(coco, detections_to_coco_array(detections, sorted(coco.getCatIds())))
    reference = pycocotools_reference(coco, detections)
    assert 0.05 < score.ap50_95 < 0.95
    assert score.stats == [float(v) for v in reference.stats]


def test_per_class_table_matches_pycocotools_precision(coco_set) -> None:
    """Per-class AP equals the mean of pycocotools' precision for that class and appears in the table."""
    coco, _ = coco_set
    detections = ground_truth_detections(coco, shift=0.2, seed=5)
    score = score_coco(coco, detections_to_coco_array(detections, sorted(coco.getCatIds())))
    precision = pycocotools_reference(coco, detections).eval["precision"][:, :, :, 0, -1]
    for k, cat_id in enumerate(sorted(coco.getCatIds())):
        values = precision[:, :, k]
        values = values[values > -1]
        name = coco.cats[cat_id]["name"]
        assert score.per_class_ap[name] == pytest.approx(values.mean(), abs=1e-12)  # a fraction, like COCOeval
        assert f"{name:<8}" in score.summary and f"{values.mean() * 100:.3f}" in score.summary  # printed in %
    assert score.summary.count("Average Precision") == 6 and score.summary.count("Average Recall") == 6
    assert "per class AR" in score.summary and "| AP %" in score.summary and "| AR %" in score.summary


def test_figures_and_results_come_from_cocoeval_stats(coco_set) -> None:
    """The stored figures are COCOeval's stats (fractions), -1 becomes None, per-class AP/AR are fractions."""
    coco, _ = coco_set
    detections = ground_truth_detections(coco, shift=0.15, seed=4)
    array = detections_to_coco_array(detections, sorted(coco.getCatIds()))
    reference = pycocotools_reference(coco, detections)
    report = EvalReport(score_coco(coco, array), InferenceTiming(), "")
    stored = report.to_dict()
    for index, key in enumerate(EVAL_FIGURES):
        expected = None if reference.stats[index] < 0 else float(reference.stats[index])
        assert stored[key] == (pytest.approx(expected) if expected is not None else None)
    assert all(value is None or 0.0 <= value <= 1.0 for value in stored["per_class_AP"].values())
    assert all(value is None or 0.0 <= value <= 1.0 for value in stored["per_class_AR"].values())
    assert coco_figures([0.5, 0.7, 0.4, -1.0, 0.3, 0.6] + [0.0] * 6)["aps"] is None


def test_evaluators_keep_every_figure_of_their_last_evaluation(coco_set) -> None:
    """After evaluate(), last_figures holds every EVAL_FIGURES key; evaluation_figures fills the same keys
    for an official-style evaluator that only returns the headline pair."""
    _, json_file = coco_set
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = LetterboxedGroundTruth(json_file, (128, 160))
    evaluator = COCOEvaluator(torch.utils.data.DataLoader(dataset, batch_size=4), (128, 160), 0.01, 0.65,
                              num_classes=len(dataset.class_ids))
    ap50_95, ap50, _ = evaluator.evaluate(OracleModel(*coco_truth(dataset), (128, 160), len(dataset.class_ids)))
    figures = evaluation_figures(evaluator, ap50_95, ap50)
    assert tuple(figures) == EVAL_FIGURES and figures["ap75"] == pytest.approx(1.0)
    plain = evaluation_figures(object(), 0.25, 0.5)
    assert tuple(plain) == EVAL_FIGURES and plain == {**dict.fromkeys(EVAL_FIGURES), "ap50_95": 0.25, "ap50": 0.5}


def test_no_detections_give_zero_ap_with_a_clear_line(coco_set) -> None:
    """An empty result scores 0 and says so instead of failing inside pycocotools."""
    coco, _ = coco_set
    score = score_coco(coco, detections_to_coco_array({1: np.zeros((0, 7), np.float32)}, sorted(coco.getCatIds())))
    assert (score.ap50_95, score.ap50) == (0.0, 0.0)
    assert NO_DETECTIONS_LINE in score.summary


def test_faster_backend_gives_identical_numbers(coco_set) -> None:
    """The optional faster-coco-eval backend reproduces pycocotools' figures and per-class AP."""
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval is an optional extra")
    coco, _ = coco_set
    array = detections_to_coco_array(ground_truth_detections(coco, shift=0.15, seed=4), sorted(coco.getCatIds()))
    reference, fast = score_coco(coco, array), score_coco(coco, array, backend="faster-coco-eval")
    np.testing.assert_allclose(fast.stats, reference.stats, atol=1e-12)
    assert fast.per_class_ap == pytest.approx(reference.per_class_ap)
    assert fast.summary == reference.summary


def test_evaluator_end_to_end_with_letterbox(coco_set) -> None:
    """The oracle's letterboxed predictions come back to original coordinates: AP 1.0, timings reported."""
    _, json_file = coco_set
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = LetterboxedGroundTruth(json_file, (128, 160))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    evaluator = COCOEvaluator(loader, (128, 160), confthre=0.01, nmsthre=0.65, num_classes=len(dataset.class_ids))
    oracle = OracleModel(*coco_truth(dataset), (128, 160), len(dataset.class_ids))
    (ap50_95, ap50, summary), outputs = evaluator.evaluate(oracle, return_outputs=True)
    assert ap50_95 == pytest.approx(1.0) and ap50 == pytest.approx(1.0)
    assert "Average forward time" in summary and "per class AP" in summary
    first = dataset.coco.loadAnns(dataset.coco.getAnnIds(imgIds=[dataset.ids[0]]))
    x, y, w, h = first[0]["bbox"]
    assert np.abs(outputs[dataset.ids[0]]["bboxes"] - [x, y, x + w, y + h]).sum(axis=1).min() < 1e-3


def test_evaluator_rejects_class_mismatch_and_empty_sets(coco_set, tmp_path) -> None:
    """Annotation categories the exp does not know, and an empty eval set, are user errors."""
    _, json_file = coco_set
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = LetterboxedGroundTruth(json_file, (128, 160))
    with pytest.raises(UserError, match="num_classes=3"):
        COCOEvaluator(torch.utils.data.DataLoader(dataset), (128, 160), 0.01, 0.65, num_classes=3)
    empty = json.loads(open(json_file).read())
    empty["images"], empty["annotations"] = [], []
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    with contextlib.redirect_stdout(io.StringIO()):
        empty_set = LetterboxedGroundTruth(tmp_path / "empty.json", (128, 160))
    with pytest.raises(UserError, match="no images"):
        COCOEvaluator(torch.utils.data.DataLoader(empty_set), (128, 160), 0.01, 0.65, num_classes=5)


def test_testdev_writes_results_without_scoring(coco_set, tmp_path) -> None:
    """Test-dev mode writes the COCO results file and reports no AP."""
    _, json_file = coco_set
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = LetterboxedGroundTruth(json_file, (128, 160))
    out = tmp_path / "dets.json"
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)
    evaluator = COCOEvaluator(loader, (128, 160), 0.01, 0.65, 5, testdev=True, testdev_json=out)
    ap50_95, ap50, summary = evaluator.evaluate(OracleModel(*coco_truth(dataset), (128, 160), len(dataset.class_ids)))
    assert (ap50_95, ap50) == (0.0, 0.0) and "not scored" in summary
    written = json.loads(out.read_text())
    assert len(written) == len(dataset.coco.getAnnIds()) and set(written[0]) == {"image_id", "category_id", "bbox", "score"}


def test_results_index_equals_load_res(coco_set) -> None:
    """The column-built results index holds the same annotations as pycocotools' loadRes."""
    coco, _ = coco_set
    array = detections_to_coco_array(ground_truth_detections(coco, shift=0.1, seed=2), sorted(coco.getCatIds()))
    with contextlib.redirect_stdout(io.StringIO()):
        reference = coco.loadRes(array)
    ours = results_to_coco(coco, array)
    keys = ("id", "image_id", "category_id", "bbox", "score", "area", "iscrowd")
    assert [[a[k] for k in keys] for a in ours.loadAnns(ours.getAnnIds())] == [
        [a[k] for k in keys] for a in reference.loadAnns(reference.getAnnIds())
    ]
    with pytest.raises(UserError, match="image ids"):
        results_to_coco(coco, np.array([[999, 0, 0, 1, 1, 0.5, 1]], dtype=np.float64))


def test_backend_choice_is_checked(monkeypatch) -> None:
    """An unknown backend, or faster-coco-eval when it is not installed, is a clear user error."""
    with pytest.raises(UserError, match="unknown COCO scoring backend"):
        check_backend("fastest")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faster_coco_eval" else real_find_spec(name, *a))
    with pytest.raises(UserError, match="pip install faster-coco-eval"):
        check_backend("faster-coco-eval")
