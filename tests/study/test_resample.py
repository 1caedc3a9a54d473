"""AP re-accumulated under image weights against COCOeval; the two-level bootstrap's pairing and coverage."""

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolox.evaluators.coco_evaluator import results_to_coco
from yolox.study.resample import match_run, percentile_interval, two_level_bootstrap


def _coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _cocoeval_stats(coco_gt: COCO, results: np.ndarray) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco_gt, results_to_coco(coco_gt, results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_unit_weights_reproduce_cocoeval_on_a_generated_set_with_crowds_and_area_ranges(seed, generated_coco):
    dataset, results = generated_coco(seed)
    coco_gt = _coco(dataset)
    expected = _cocoeval_stats(coco_gt, results)
    matches = match_run(coco_gt, results)
    ones = np.ones((1, len(dataset["images"])))
    assert matches.average_precision(ones)[0] == pytest.approx(expected[0], abs=1e-6)  # AP50:95
    assert matches.average_precision(ones, iou_index=0)[0] == pytest.approx(expected[1], abs=1e-6)  # AP50
    assert matches.average_precision(ones, iou_index=5)[0] == pytest.approx(expected[2], abs=1e-6)  # AP75
    for area, stat_index in (("small", 3), ("medium", 4), ("large", 5)):
        assert match_run(coco_gt, results, area=area).average_precision(ones)[0] == pytest.approx(expected[stat_index],
                                                                                                  abs=1e-6), area


def test_integer_weights_equal_cocoeval_on_the_set_with_images_repeated(generated_coco):
    dataset, results = generated_coco(2)
    coco_gt = _coco(dataset)
    matches = match_run(coco_gt, results)
    rng = np.random.default_rng(5)
    for _ in range(3):
        counts = rng.multinomial(len(dataset["images"]), np.full(len(dataset["images"]), 1 / len(dataset["images"])))
        repeated = {"images": [], "annotations": [], "categories": dataset["categories"]}
        repeated_rows = []
        for image, count in zip(dataset["images"], counts):
            for copy_index in range(count):
                new_id = 1000 * (copy_index + 1) + image["id"]
                repeated["images"].append({**image, "id": new_id})
                for annotation in dataset["annotations"]:
                    if annotation["image_id"] == image["id"]:
                        repeated["annotations"].append({**annotation, "id": len(repeated["annotations"]) + 1,
                                                        "image_id": new_id})
                for row in results[results[:, 0] == image["id"]]:
                    repeated_rows.append([new_id, *row[1:]])
        expected = _cocoeval_stats(_coco(repeated), np.asarray(repeated_rows))[0]
        # Weights follow COCOeval's image order (sorted ids), here the order of dataset["images"].
        assert matches.average_precision(counts[None].astype(float))[0] == pytest.approx(expected, abs=1e-9)


def test_unit_weights_reproduce_cocoeval_on_the_shapes_set(tmp_path: Path):
    from yolox.data.shapes import generate_shapes_dataset

    root = Path(generate_shapes_dataset(tmp_path / "shapes", num_train=1, num_val=30, img_size=128, seed=3))
    dataset = json.loads((root / "annotations" / "instances_val.json").read_text())
    coco_gt = _coco(dataset)
    rng = np.random.default_rng(0)
    rows = []
    for annotation in dataset["annotations"]:
        for _ in range(rng.integers(0, 3)):
            x, y, w, h = np.asarray(annotation["bbox"]) + rng.normal(0, 2.0, 4)
            rows.append([annotation["image_id"], x, y, max(1.0, w), max(1.0, h), rng.uniform(0.01, 1.0),
                         annotation["category_id"] if rng.random() < 0.8 else rng.choice(coco_gt.getCatIds())])
    for image in dataset["images"]:
        for _ in range(rng.integers(0, 4)):
            rows.append([image["id"], *rng.uniform(0, 100, 2), *rng.uniform(5, 40, 2), rng.uniform(0, 0.5),
                         rng.choice(coco_gt.getCatIds())])
    results = np.asarray(rows, dtype=np.float64)
    expected = _cocoeval_stats(coco_gt, results)[0]
    assert match_run(coco_gt, results).average_precision(np.ones((1, len(dataset["images"]))))[0] == pytest.approx(
        expected, abs=1e-6)
    # An image weight of 0 for every image that has ground truth leaves no category to average: -1, as COCOeval.
    assert match_run(coco_gt, results).average_precision(np.zeros((1, len(dataset["images"]))))[0] == -1.0


def test_the_bootstrap_shares_each_image_draw_between_the_variants_and_seeds():
    """A variant equal to the baseline plus a per-seed constant: every replicate difference is a mean of those."""
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 1, (3, 50))  # per seed, per image
    shift = {"a": {0: 0.1, 1: 0.2, 2: 0.6}}

    def metric(name, seed, weights):
        value = weights @ scores[seed] / weights.sum(axis=1)
        return value + (shift[name][seed] if name in shift else 0.0)

    replicates = two_level_bootstrap(metric, ["base", "a"], "base", [0, 1, 2], 50, replicates=400)["a"]
    possible = {round(sum(combo) / 3, 9) for combo in np.array(np.meshgrid(*[[0.1, 0.2, 0.6]] * 3)).T.reshape(-1, 3)}
    assert {round(value, 9) for value in replicates} <= possible
    assert len({round(value, 9) for value in replicates}) > 3


def _simulated_study(rng, delta: float, seeds: int, images: int):
    """Per-image scores of a baseline and a variant: image effects, variant-by-image effects, seed effects, noise."""
    image_effect = rng.normal(0, 1.0, images)
    benefit = rng.normal(0, 0.5, images)  # how much the variant helps on each image; mean 0 over all images
    seed_effect = rng.normal(0, 0.15, (2, seeds))
    noise = rng.normal(0, 0.5, (2, seeds, images))
    base = image_effect + seed_effect[0][:, None] + noise[0]
    variant = image_effect + delta + benefit + seed_effect[1][:, None] + noise[1]
    return {"base": base, "v": variant}


def test_bootstrap_covers_a_known_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    delta, covered, studies = 0.2, 0, 200
    for study in range(studies):
        values = _simulated_study(rng, delta, seeds=10, images=100)

        def metric(name, seed, weights, values=values):
            return weights @ values[name][seed] / weights.sum(axis=1)

        replicates = two_level_bootstrap(metric, ["base", "v"], "base", list(range(10)), 100, replicates=400, seed=study)
        low, high = percentile_interval(replicates["v"])
        covered += low <= delta <= high
    assert 0.90 <= covered / studies <= 0.99, covered / studies
