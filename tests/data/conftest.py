"""Builders of tiny COCO- and VOC-format datasets written with OpenCV into the test's temporary folder."""

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

BACKGROUND = 60
# Pure BGR colours far from the grey background and from the 114 padding, one per class.
CLASS_COLOURS = ((0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255))


def draw_image(height: int, width: int, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """Grey image with each ``(x, y, w, h, class)`` box filled in its class colour."""
    img = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    for x, y, w, h, cls in boxes:
        x1, y1 = max(int(round(x)), 0), max(int(round(y)), 0)
        x2, y2 = min(int(round(x + w)), width), min(int(round(y + h)), height)
        if x2 > x1 and y2 > y1:
            img[y1:y2, x1:x2] = CLASS_COLOURS[int(cls) % len(CLASS_COLOURS)]
    return img


@pytest.fixture
def make_coco(tmp_path: Path) -> Callable[..., Path]:
    """Return a function writing a COCO-format set; images are dicts with ``size`` (h, w) and ``boxes``."""

    def build(images: list[dict], category_ids: Sequence[int] = (1, 2, 3, 4), name: str = "train2017",
              json_file: str = "instances_train2017.json", root: Path | None = None,
              extra: dict | None = None, crowd: Sequence[dict] = (), ext: str = ".png") -> Path:
        root = root or tmp_path / "coco"
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        json_images, annotations = [], []
        for image_id, spec in enumerate(images, start=1):
            height, width = spec["size"]
            file_name = spec.get("file_name", f"{image_id:06d}{ext}")
            boxes = spec.get("boxes", [])
            cv2.imwrite(str(root / name / file_name), draw_image(height, width, boxes))
            json_images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
            for x, y, w, h, cls in boxes:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": [x, y, w, h],
                                    "area": w * h, "iscrowd": 0, "category_id": category_ids[int(cls)]})
        for ann in crowd:
            annotations.append({"id": len(annotations) + 1, "iscrowd": 1, "area": 1.0, **ann})
        data = {"images": json_images, "annotations": annotations,
                "categories": [{"id": cat_id, "name": f"cat{cat_id}"} for cat_id in category_ids]}
        data.update(extra or {})
        (root / "annotations" / json_file).write_text(json.dumps(data), encoding="utf-8")
        return root

    return build


@pytest.fixture
def make_voc(tmp_path: Path) -> Callable[..., Path]:
    """Return a function writing a VOCdevkit; objects are ``(name, x1, y1, x2, y2, difficult)`` in 1-based pixels."""

    def build(images: dict[str, dict], year: str = "2007", split: str = "trainval") -> Path:
        root = tmp_path / "VOCdevkit"
        base = root / f"VOC{year}"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        for image_name, spec in images.items():
            height, width = spec["size"]
            cv2.imwrite(str(base / "JPEGImages" / f"{image_name}.jpg"), draw_image(height, width, []))
            objects = "".join(
                f"<object><name>{cls}</name><difficult>{int(difficult)}</difficult><bndbox><xmin>{x1}</xmin>"
                f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
                for cls, x1, y1, x2, y2, difficult in spec["objects"])
            (base / "Annotations" / f"{image_name}.xml").write_text(
                f"<annotation><filename>{image_name}.jpg</filename><size><width>{width}</width>"
                f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>", encoding="utf-8")
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(images) + "\n", encoding="utf-8")
        return root

    return build


@pytest.fixture
def four_colour_coco(make_coco: Callable[..., Path]) -> Path:
    """Four 96x128 images, each with one filled rectangle of its class colour (lossless PNG)."""
    specs = [
        {"size": (96, 128), "boxes": [[10, 12, 40, 30, 0]]},
        {"size": (96, 128), "boxes": [[60, 40, 50, 36, 1]]},
        {"size": (96, 128), "boxes": [[30, 20, 24, 50, 2]]},
        {"size": (96, 128), "boxes": [[70, 5, 40, 40, 3]]},
    ]
    return make_coco(specs)
