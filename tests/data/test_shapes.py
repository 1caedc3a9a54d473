"""The built-in shapes dataset: deterministic, tight boxes inside the image, readable by pycocotools."""

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from yolox.data.shapes import SHAPE_CLASSES, draw_shapes_image, generate_shapes_dataset


def folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path) -> None:
    """Two runs with one seed write byte-identical annotations and images; another seed differs."""
    first = generate_shapes_dataset(tmp_path / "a", num_train=4, num_val=2, img_size=64, seed=5)
    second = generate_shapes_dataset(tmp_path / "b", num_train=4, num_val=2, img_size=64, seed=5)
    other = generate_shapes_dataset(tmp_path / "c", num_train=4, num_val=2, img_size=64, seed=6)
    assert folder_bytes(first) == folder_bytes(second)
    assert len(folder_bytes(first)) == 4 + 2 + 2
    annotation = "annotations/instances_train.json"
    assert folder_bytes(first)[annotation] != folder_bytes(other)[annotation]


def test_boxes_are_tight_around_the_drawn_pixels() -> None:
    """Each box lies inside the image, holds every visible pixel of its shape and touches it on all sides."""
    counts = np.zeros(len(SHAPE_CLASSES), dtype=int)
    for seed in range(40):
        image, objects = draw_shapes_image(np.random.default_rng(seed), 80, 112)
        assert image.shape == (80, 112, 3) and image.dtype == np.uint8
        for obj in objects:
            x, y, w, h = obj["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 112 and y + h <= 80 and w > 0 and h > 0
            rows, cols = np.nonzero(obj["mask"])
            assert (rows.min(), rows.max(), cols.min(), cols.max()) == (y, y + h - 1, x, x + w - 1)
            assert obj["area"] == len(rows)
            counts[obj["class_index"]] += 1
    assert counts.min() > 0, f"every class should appear, got {dict(zip(SHAPE_CLASSES, counts))}"


def test_written_dataset_loads_with_pycocotools(tmp_path) -> None:
    """The annotation files index with pycocotools and describe the written images."""
    root = generate_shapes_dataset(tmp_path, num_train=3, num_val=2, img_size=(64, 96), seed=1)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(root / "annotations" / "instances_val.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
    assert len(coco.getImgIds()) == 2 and len(coco.getAnnIds()) > 0
    for info in coco.loadImgs(coco.getImgIds()):
        image = cv2.imread(str(root / "val" / info["file_name"]))
        assert image.shape[:2] == (info["height"], info["width"]) == (64, 96)
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert ann["iscrowd"] == 0 and ann["area"] > 0 and len(ann["bbox"]) == 4


def test_bad_arguments_are_clear_errors(tmp_path) -> None:
    """Too small an image or a negative count names the argument."""
    with pytest.raises(ValueError, match="img_size"):
        generate_shapes_dataset(tmp_path, 1, 1, img_size=8)
    with pytest.raises(ValueError, match="num_train=-1"):
        generate_shapes_dataset(tmp_path, -1, 1)


def test_make_dataset_tool(tmp_path, capsys) -> None:
    """The make_dataset command writes the layout and says where."""
    from yolox.cli import make_dataset as tool

    assert tool.main(["--out", str(tmp_path / "shapes"), "--train", "2", "--val", "1", "--size", "64"]) == 0
    assert "wrote 2 train and 1 val images" in capsys.readouterr().out
    train = json.loads((tmp_path / "shapes" / "annotations" / "instances_train.json").read_text())
    assert len(train["images"]) == 2 and (tmp_path / "shapes" / "train" / "000001.jpg").is_file()
    assert tool.main(["--out", str(tmp_path / "bad"), "--size", "8"]) == 2
