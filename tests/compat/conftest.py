"""Tiny generated COCO- and VOC-format folders and helpers to run the tools as a user would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_HW = (64, 80)
# (x, y, w, h, class) per image: one or two filled rectangles, class 0 red, class 1 green.
BOXES = ([(4, 6, 30, 24, 0)], [(40, 20, 30, 36, 1)], [(10, 30, 24, 28, 1), (44, 4, 28, 20, 0)], [(20, 10, 40, 40, 0)])
COLOURS = ((0, 0, 255), (0, 255, 0))


def _draw(boxes) -> np.ndarray:
    img = np.full((*IMAGE_HW, 3), 90, dtype=np.uint8)
    for x, y, w, h, cls in boxes:
        img[y:y + h, x:x + w] = COLOURS[cls]
    return img


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """``coco/{train2017,val2017,annotations}``: 4 training and 2 validation images of 2 categories (ids 1, 3)."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split, specs in (("train2017", BOXES), ("val2017", BOXES[:2])):
        (root / split).mkdir()
        images, annotations = [], []
        for image_id, boxes in enumerate(specs, start=1):
            cv2.imwrite(str(root / split / f"{image_id:04d}.png"), _draw(boxes))
            images.append({"id": image_id, "file_name": f"{image_id:04d}.png", "height": IMAGE_HW[0],
                           "width": IMAGE_HW[1]})
            for x, y, w, h, cls in boxes:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": [x, y, w, h],
                                    "area": w * h, "iscrowd": 0, "category_id": (1, 3)[cls]})
        data = {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "red"}, {"id": 3, "name": "green"}]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """``VOCdevkit/VOC2007`` with a 4-image ``trainval`` and a 2-image ``test`` set (classes dog and cat)."""
    base = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True)
    names = []
    for index, boxes in enumerate(BOXES):
        name = f"{index:06d}"
        names.append(name)
        cv2.imwrite(str(base / "JPEGImages" / f"{name}.jpg"), _draw(boxes))
        objects = "".join(
            f"<object><name>{('dog', 'cat')[cls]}</name><difficult>0</difficult><bndbox><xmin>{x + 1}</xmin>"
            f"<ymin>{y + 1}</ymin><xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"
            for x, y, w, h, cls in boxes)
        (base / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><size><width>{IMAGE_HW[1]}</width><height>{IMAGE_HW[0]}</height><depth>3</depth>"
            f"</size>{objects}</annotation>")
    (base / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(names) + "\n")
    (base / "ImageSets" / "Main" / "test.txt").write_text("\n".join(names[:2]) + "\n")
    return tmp_path / "VOCdevkit"


@pytest.fixture
def run_tool(tmp_path: Path):
    """``run_tool("train", *args, env={...})``: run ``tools/<name>.py`` in a fresh interpreter from ``tmp_path``."""

    def run(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
        result = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / f"{name}.py"), *args], cwd=tmp_path,
                                env=full_env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"tools/{name}.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    return run
