"""Throughput of the training data pipeline (mosaic + mixup) on a COCO-format image set."""

import copy
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from yolox.benchmarks.report import BenchmarkReport, Summary, environment
from yolox.utils.protocols import BenchmarkExpLike

SYNTHETIC_NAME = "train2017"
SYNTHETIC_ANN = "instances_train2017.json"


def synthetic_photo(rng: np.random.Generator, height: int, width: int,
                    max_objects: int = 12) -> tuple[np.ndarray, list[list[float]]]:
    """A photo-like BGR image (smooth shading, filled shapes, sensor noise) and the boxes of its shapes."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    base = rng.uniform(30, 220, size=3)
    slope = rng.uniform(-80, 80, size=(3, 2))
    img = np.stack([base[c] + slope[c, 0] * xs + slope[c, 1] * ys for c in range(3)], axis=-1)
    boxes = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        box_w, box_h = rng.uniform(0.05, 0.5) * width, rng.uniform(0.05, 0.5) * height
        x1, y1 = rng.uniform(0, width - box_w), rng.uniform(0, height - box_h)
        colour = rng.uniform(0, 255, size=3).tolist()
        if rng.random() < 0.5:
            cv2.rectangle(img, (int(x1), int(y1)), (int(x1 + box_w), int(y1 + box_h)), colour, -1)
        else:
            center = (int(x1 + box_w / 2), int(y1 + box_h / 2))
            cv2.ellipse(img, center, (int(box_w / 2), int(box_h / 2)), 0, 0, 360, colour, -1)
        boxes.append([float(int(x1)), float(int(y1)), float(int(box_w)), float(int(box_h))])
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    img += rng.normal(0.0, 6.0, size=img.shape).astype(np.float32)  # texture makes JPEG sizes realistic
    return np.clip(img, 0, 255).astype(np.uint8), boxes


def write_synthetic_coco(root: Path, num_images: int = 64, image_hw: tuple[int, int] = (480, 640),
                         num_classes: int = 80, seed: int = 0) -> Path:
    """Write a COCO-format set of ``num_images`` JPEGs with random boxes under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    image_dir = Path(root) / SYNTHETIC_NAME
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        img, boxes = synthetic_photo(rng, *image_hw)
        file_name = f"{image_id:012d}.jpg"
        cv2.imwrite(str(image_dir / file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        images.append({"id": image_id, "file_name": file_name, "height": image_hw[0], "width": image_hw[1]})
        for x, y, w, h in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0, "category_id": int(rng.integers(1, num_classes + 1))})
    categories = [{"id": index, "name": f"class_{index}"} for index in range(1, num_classes + 1)]
    ann_dir = Path(root) / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / SYNTHETIC_ANN).write_text(json.dumps({"images": images, "annotations": annotations,
                                                     "categories": categories}), encoding="utf-8")
    return Path(root)


def images_per_second(loader: torch.utils.data.DataLoader, batches: int, repeats: int,
                      warmup: int) -> tuple[Summary, Summary]:
    """Images/s of iterating ``loader`` (``warmup`` batches untimed, then ``repeats`` timings of ``batches``).

    Also returns the main process's CPU milliseconds per image: on a shared, busy machine this stays
    close to the idle-machine cost when wall-clock rates do not (with 0 workers it is the whole pipeline).
    """
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    rates, cpu_ms = [], []
    for _ in range(repeats):
        count = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(batches):
            count += next(iterator)[0].shape[0]
        rates.append(count / (time.perf_counter() - start))
        cpu_ms.append(1000.0 * (time.process_time() - cpu_start) / count)
    return Summary.of(rates), Summary.of(cpu_ms)


def benchmark_data_pipeline(exp: BenchmarkExpLike, workers: Sequence[int], batch_size: int = 8, batches: int = 10,
                            repeats: int = 3, warmup: int = 2, settings: dict[str, Any] | None = None,
                            ) -> BenchmarkReport:
    """Measure the exp's training loader (mosaic + mixup as configured) for each worker count; ``exp`` is left as it is."""
    rows = []
    for num_workers in workers:
        # get_data_loader caches its dataset on the exp: a fresh shallow copy per run keeps the caller's exp intact.
        variant = copy.copy(exp)
        variant.data_num_workers = num_workers
        variant.dataset = None
        loader = variant.get_data_loader(batch_size=batch_size, is_distributed=False, no_aug=False)
        summary, cpu = images_per_second(loader, batches, repeats, warmup)
        rows.append({"workers": num_workers, "images/s": summary.median, "min": summary.minimum,
                     "max": summary.maximum, "spread": summary.spread, "ms/image": 1000.0 / summary.median,
                     "main-process CPU ms/image": cpu.median})
        del loader, variant
    all_settings = {
        "input_size": list(exp.input_size), "batch_size": batch_size, "batches_per_repeat": batches,
        "repeats": repeats, "warmup_batches": warmup, "mosaic_prob": exp.mosaic_prob,
        "enable_mixup": exp.enable_mixup, "mixup_prob": exp.mixup_prob, "data_dir": str(exp.data_dir),
    }
    all_settings.update(settings or {})
    return BenchmarkReport("data", rows, all_settings, environment("cpu"))
