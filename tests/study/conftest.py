"""Fixtures for the study tests: a tiny generated shapes set and the study flags that train on it in seconds."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPES_EXP = str(REPO_ROOT / "exps" / "example" / "shapes" / "yolox_nano_cam_shapes.py")


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen training and four validation images of 64 x 64 pixels."""
    from yolox.data.shapes import generate_shapes_dataset

    return Path(generate_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=16, num_val=4, img_size=64, seed=0))


@pytest.fixture()
def tiny_overrides(tiny_shapes: Path) -> list[str]:
    """Exp overrides: 64 px, 3 epochs of 4 iterations (batch 4), evaluation every epoch, no workers."""
    return ["data_dir", str(tiny_shapes), "input_size", "64,64", "test_size", "64,64", "random_size", "2,2",
            "max_epoch", "3", "warmup_epochs", "1", "no_aug_epochs", "1", "eval_interval", "1",
            "data_num_workers", "0", "print_interval", "2"]


@pytest.fixture(autouse=True)
def _restore_logger_and_threads():
    """The commands route loguru to run folders; give the console back. One thread keeps tiny steps fast."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
    logger.remove()
    logger.add(sys.stderr)


def make_generated_coco(seed: int = 0, images: int = 40) -> tuple[dict, np.ndarray]:
    """A COCO-style set with small, medium and large boxes, crowd boxes, empty images, and noisy detections.

    Some images get more than 100 detections (COCOeval keeps the 100 best), some detections fall outside every
    ground truth, and a few crowd regions swallow detections (ignored, never false positives).
    """
    rng = np.random.default_rng(seed)
    categories = [{"id": cid, "name": f"c{cid}"} for cid in (1, 3, 7)]
    dataset = {"images": [], "annotations": [], "categories": categories}
    rows = []
    for image_id in range(1, images + 1):
        dataset["images"].append({"id": image_id, "width": 640, "height": 480})
        if image_id % 9 == 0:
            continue  # no ground truth at all
        for _ in range(rng.integers(1, 8)):
            side = float(rng.choice([12.0, 24.0, 60.0, 150.0])) * rng.uniform(0.8, 1.3)
            w, h = side * rng.uniform(0.6, 1.4), side * rng.uniform(0.6, 1.4)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            crowd = int(rng.random() < 0.08)
            category = int(rng.choice([1, 3, 7]))
            dataset["annotations"].append({"id": len(dataset["annotations"]) + 1, "image_id": image_id,
                                           "category_id": category, "bbox": [x, y, w, h], "area": w * h * 0.9,
                                           "iscrowd": crowd})
            for _ in range(rng.integers(0, 3) + (3 if crowd else 0)):
                jitter = rng.normal(0, 0.12 * side, 4)
                cat = category if rng.random() < 0.85 else int(rng.choice([1, 3, 7]))
                rows.append([image_id, x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3]),
                             rng.uniform(0.05, 1.0), cat])
        for _ in range(rng.integers(0, 6) if image_id % 7 else 130):
            w, h = rng.uniform(4, 200, 2)
            rows.append([image_id, rng.uniform(0, 600), rng.uniform(0, 440), w, h, rng.uniform(0.0, 0.6),
                         int(rng.choice([1, 3, 7]))])
    return dataset, np.asarray(rows, dtype=np.float64)


@pytest.fixture()
def generated_coco():
    """``make_generated_coco(seed, images)``: a COCO-style dataset dict and an (N, 7) results array."""
    return make_generated_coco
