"""COCO AP under image weights, and the two-level (seeds x validation images) paired bootstrap of a study.

COCOeval matches each run's detections to the ground truth once (``evaluate``); :class:`RunMatches` keeps those
per-image matches, and :meth:`RunMatches.average_precision` re-accumulates them with a weight per image, the
way ``COCOeval.accumulate`` does with every weight 1: detections of all images sorted by score, weighted
cumulative true and false positives, recall over the weighted count of non-ignored ground truth, the precision
envelope read at the 101 recall thresholds, the mean over IoU thresholds and categories with ground truth. An
integer weight k counts an image k times; weight 0 leaves it out.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Replicates processed at once: bounds the [replicates, IoU thresholds, detections] work arrays.
CHUNK = 64


@dataclass
class CategoryMatches:
    """One category's detections of one run in COCOeval's global score order, with their per-IoU outcomes."""

    image_index: np.ndarray  # [D] index into the image list of each detection
    true_positive: np.ndarray  # [T, D] matched and not ignored
    counted: np.ndarray  # [T, D] not ignored (a true or a false positive)
    ground_truth: np.ndarray  # [I] non-ignored ground-truth boxes per image


@dataclass
class RunMatches:
    """A run's per-image matches for one area range at 100 detections per image, ready for re-accumulation."""

    image_ids: np.ndarray
    categories: list[CategoryMatches]
    recall_thresholds: np.ndarray
    iou_thresholds: np.ndarray

    def average_precision(self, weights: np.ndarray, iou_index: int | None = None) -> np.ndarray:
        """AP (averaged over IoU thresholds, or at ``iou_index`` only) for each row of ``weights`` [R, I]."""
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        rows = len(weights)
        total = np.zeros(rows)
        valid = np.zeros(rows)
        selected = slice(None) if iou_index is None else slice(iou_index, iou_index + 1)
        for category in self.categories:
            positives = weights @ category.ground_truth  # [R]
            has_truth = positives > 0
            if not has_truth.any():
                continue
            precision = np.zeros((rows,))
            for start in range(0, rows, CHUNK):
                stop = min(rows, start + CHUNK)
                precision[start:stop] = _mean_interpolated_precision(
                    weights[start:stop], positives[start:stop], category, selected, self.recall_thresholds)
            total += np.where(has_truth, precision, 0.0)
            valid += has_truth
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(valid > 0, total / np.maximum(valid, 1), -1.0)


def _mean_interpolated_precision(weights: np.ndarray, positives: np.ndarray, category: CategoryMatches,
                                 selected: slice, recall_thresholds: np.ndarray) -> np.ndarray:
    """Mean over the selected IoU thresholds and the recall thresholds of the interpolated precision, per row."""
    true_positive = category.true_positive[selected]
    counted = category.counted[selected]
    rows, thresholds, detections = len(weights), len(true_positive), true_positive.shape[1]
    if detections == 0:
        return np.zeros(rows)
    detection_weights = weights[:, category.image_index]  # [R, D]
    tp = np.cumsum(detection_weights[:, None, :] * true_positive[None], axis=2)  # [R, T, D]
    seen = np.cumsum(detection_weights[:, None, :] * counted[None], axis=2)
    recall = tp / np.where(positives > 0, positives, 1.0)[:, None, None]
    precision = tp / (seen + np.spacing(1))
    envelope = np.maximum.accumulate(precision[..., ::-1], axis=2)[..., ::-1]
    # The first detection whose recall reaches each threshold: count the detections below each threshold.
    below = np.searchsorted(recall_thresholds, recall.reshape(-1), side="right").reshape(rows * thresholds, detections)
    offsets = (np.arange(rows * thresholds) * (len(recall_thresholds) + 1))[:, None]
    histogram = np.bincount((below + offsets).reshape(-1), minlength=rows * thresholds * (len(recall_thresholds) + 1))
    first_reaching = np.cumsum(histogram.reshape(rows * thresholds, -1), axis=1)[:, : len(recall_thresholds)]
    padded = np.concatenate([envelope.reshape(rows * thresholds, detections), np.zeros((rows * thresholds, 1))], axis=1)
    interpolated = np.take_along_axis(padded, first_reaching, axis=1)  # index D (none reaches): precision 0
    return interpolated.reshape(rows, thresholds * len(recall_thresholds)).mean(axis=1)


def match_run(coco_gt, results: np.ndarray, area: str = "all", max_detections: int = 100) -> RunMatches:
    """Match an (N, 7) COCO results array to ``coco_gt`` with COCOeval once; keep what re-accumulation needs."""
    from pycocotools.cocoeval import COCOeval

    from yolox.evaluators.coco_evaluator import results_to_coco

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = results_to_coco(coco_gt, results)
        evaluation = COCOeval(coco_gt, coco_dt, "bbox")
        evaluation.evaluate()
    params = evaluation.params
    area_index = params.areaRngLbl.index(area)
    image_count, area_count = len(params.imgIds), len(params.areaRng)
    categories = []
    for category_index in range(len(params.catIds)):
        offset = category_index * area_count * image_count + area_index * image_count
        per_image = [evaluation.evalImgs[offset + image] for image in range(image_count)]
        scores, matched, ignored, image_index = [], [], [], []
        ground_truth = np.zeros(image_count)
        for image, entry in enumerate(per_image):
            if entry is None:
                continue
            kept = slice(0, max_detections)
            scores.append(np.asarray(entry["dtScores"][kept], dtype=np.float64))
            matched.append(np.asarray(entry["dtMatches"])[:, kept])
            ignored.append(np.asarray(entry["dtIgnore"])[:, kept])
            image_index.append(np.full(len(scores[-1]), image))
            ground_truth[image] = np.count_nonzero(np.asarray(entry["gtIgnore"]) == 0)
        thresholds = len(params.iouThrs)
        if scores:
            order = np.argsort(-np.concatenate(scores), kind="mergesort")  # COCOeval's order, ties included
            matches = np.concatenate(matched, axis=1)[:, order] != 0
            skip = np.concatenate(ignored, axis=1)[:, order].astype(bool)
            indices = np.concatenate(image_index)[order]
        else:
            matches = skip = np.zeros((thresholds, 0), dtype=bool)
            indices = np.zeros(0, dtype=np.int64)
        categories.append(CategoryMatches(indices, matches & ~skip, ~skip, ground_truth))
    return RunMatches(np.asarray(params.imgIds), categories, np.asarray(params.recThrs), np.asarray(params.iouThrs))


def two_level_bootstrap(metric: Callable[[str, int, np.ndarray], np.ndarray], variants: Sequence[str], baseline: str,
                        seeds: Sequence[int], image_count: int, replicates: int = 1000,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each variant's mean paired difference to the baseline, over seeds and images.

    A replicate draws the validation images with replacement once (every run of the study was scored on the
    same images, so one draw serves every seed and every variant: the pairing holds and the images' shared
    effect is not averaged away), then n seeds with replacement, and averages the drawn seeds' differences.
    ``metric(variant, seed, weights[R, I])`` returns the metric of that run under each row of image counts.
    Returns ``{variant: [replicates]}`` for the variants other than the baseline.
    """
    rng = np.random.default_rng(seed)
    seeds = list(seeds)
    count = len(seeds)
    drawn_images = rng.integers(0, image_count, size=(replicates, image_count))
    offsets = (np.arange(replicates) * image_count)[:, None]
    weights = np.bincount((drawn_images + offsets).reshape(-1), minlength=replicates * image_count)
    weights = weights.reshape(replicates, image_count).astype(np.float64)  # [B, I] image counts
    drawn_seeds = rng.integers(0, count, size=(replicates, count))
    multiplicity = np.stack([(drawn_seeds == index).sum(axis=1) for index in range(count)], axis=1)  # [B, n]
    sums = {name: np.zeros(replicates) for name in variants if name != baseline}
    for seed_index, run_seed in enumerate(seeds):
        chosen = np.flatnonzero(multiplicity[:, seed_index] > 0)
        if chosen.size == 0:
            continue
        times = multiplicity[chosen, seed_index]
        base = metric(baseline, run_seed, weights[chosen])
        for name in sums:
            sums[name][chosen] += times * (metric(name, run_seed, weights[chosen]) - base)
    return {name: total / count for name, total in sums.items()}


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of ``replicates`` at ``confidence``."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)


def synthetic_study_detections(images: int, classes: int, objects_per_image: float, detections_per_image: float,
                               runs: int, seed: int = 0) -> tuple[dict, list[np.ndarray]]:
    """A COCO-style ground truth and ``runs`` detection sets (noisy boxes around the objects plus false positives)."""
    rng = np.random.default_rng(seed)
    dataset: dict = {"images": [{"id": index + 1, "width": 640, "height": 480} for index in range(images)],
                     "categories": [{"id": index + 1, "name": f"class{index + 1}"} for index in range(classes)],
                     "annotations": []}
    for image in dataset["images"]:
        for _ in range(rng.poisson(objects_per_image)):
            w, h = rng.uniform(8, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            dataset["annotations"].append({"id": len(dataset["annotations"]) + 1, "image_id": image["id"], "area": w * h,
                                           "category_id": int(rng.integers(1, classes + 1)), "bbox": [x, y, w, h],
                                           "iscrowd": 0})
    boxes = np.array([[a["image_id"], *a["bbox"], a["category_id"]] for a in dataset["annotations"]], dtype=np.float64)
    detection_sets = []
    for _ in range(runs):
        true_rows = boxes[rng.random(len(boxes)) < 0.8]
        jitter = rng.normal(0, 0.1, (len(true_rows), 4)) * true_rows[:, [3, 4, 3, 4]]
        found = np.column_stack([true_rows[:, 0], true_rows[:, 1:5] + jitter, rng.uniform(0.3, 1.0, len(true_rows)),
                                 true_rows[:, 5]])
        false_count = max(0, int(images * detections_per_image) - len(found))
        sizes = rng.uniform(8, 200, (false_count, 2))
        false = np.column_stack([rng.integers(1, images + 1, false_count), rng.uniform(0, 440, (false_count, 2)), sizes,
                                 rng.uniform(0.0, 0.6, false_count), rng.integers(1, classes + 1, false_count)])
        detection_sets.append(np.concatenate([found, false]).astype(np.float64))
    return dataset, detection_sets


def benchmark_bootstrap(images: int = 200, classes: int = 5, objects_per_image: float = 3.0,
                        detections_per_image: float = 38.0, variants: int = 3, seeds: int = 3,
                        replicates: int = 1000) -> dict[str, float]:
    """Seconds to match every run once and to bootstrap ``replicates`` replicates, on a synthetic study."""
    import time

    from yolox.data.datasets.coco import build_coco

    dataset, detection_sets = synthetic_study_detections(images, classes, objects_per_image, detections_per_image,
                                                         variants * seeds)
    coco_gt = build_coco(dataset)
    start = time.perf_counter()
    names = [f"v{index}" for index in range(variants)]
    matches = {(name, seed): match_run(coco_gt, detection_sets[index * seeds + seed])
               for index, name in enumerate(names) for seed in range(seeds)}
    matched = time.perf_counter()
    two_level_bootstrap(lambda name, seed, weights: matches[name, seed].average_precision(weights), names, names[0],
                        list(range(seeds)), images, replicates)
    done = time.perf_counter()
    return {"images": images, "classes": classes, "detections_per_run": float(np.mean([len(d) for d in detection_sets])),
            "runs": variants * seeds, "replicates": replicates, "match_seconds": matched - start,
            "bootstrap_seconds": done - matched}
