"""COCODataset: loading what was written, class mapping, clipping, and the start-up checks."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from loguru import logger

from yolox.data import COCODataset
from yolox.utils.errors import UserError


@pytest.fixture
def warnings_seen():
    """Messages of the loguru warnings emitted during the test."""
    messages = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    yield messages
    logger.remove(sink)


def test_loaded_boxes_and_classes_equal_written(make_coco):
    # Category ids 7, 3, 5 are not contiguous and not sorted: indices follow the sorted ids 3, 5, 7.
    root = make_coco([
        {"size": (100, 200), "boxes": [[10, 20, 30, 40, 0], [50, 5, 20.5, 10, 1]]},
        {"size": (80, 60), "boxes": []},
        {"size": (64, 64), "boxes": [[1, 2, 3, 4, 2]]},
    ], category_ids=(7, 3, 5), extra={"info": {"description": "x"}})
    dataset = COCODataset(str(root), img_size=(200, 200), num_classes=3)
    assert dataset.class_ids == [3, 5, 7]
    assert dataset.class_names == ("cat3", "cat5", "cat7")
    assert len(dataset) == 3  # the image without boxes stays, as background
    truth = dataset.ground_truth(0)
    np.testing.assert_allclose(truth["boxes"], [[10, 20, 40, 60], [50, 5, 70.5, 15]])
    np.testing.assert_array_equal(truth["classes"], [2, 0])  # id 7 -> 2, id 3 -> 0
    assert len(dataset.ground_truth(1)["boxes"]) == 0
    assert dataset.labelled_indices == [0, 2]
    img, target, img_info, img_id = dataset.pull_item(0)
    assert img.shape == (100, 200, 3) and img_info == (100, 200) and img_id == 1
    np.testing.assert_allclose(target, [[10, 20, 40, 60, 2], [50, 5, 70.5, 15, 0]])
    # The 64x64 image is scaled by 200/64 to fit the input size, and so are its boxes.
    img, target, img_info, _ = dataset.pull_item(2)
    assert img.shape == (200, 200, 3) and img_info == (64, 64)
    np.testing.assert_allclose(target, [[1 * 3.125, 2 * 3.125, 4 * 3.125, 6 * 3.125, 1]], rtol=1e-6)


def test_crowd_ignored_and_missing_info_loads(make_coco):
    root = make_coco([{"size": (50, 50), "boxes": [[5, 5, 10, 10, 0]]}], category_ids=(1,),
                     crowd=[{"image_id": 1, "bbox": [20, 20, 10, 10], "category_id": 1}])
    assert "info" not in json.loads((root / "annotations" / "instances_train2017.json").read_text())
    dataset = COCODataset(str(root), img_size=(64, 64))
    assert len(dataset.ground_truth(0)["boxes"]) == 1
    assert dataset.coco.dataset["info"] == {}  # pycocotools' loadRes copies it when evaluating


def test_bad_boxes_are_clipped_dropped_and_warned_once(make_coco, warnings_seen):
    root = make_coco([{"size": (50, 60), "boxes": [[-5, 10, 20, 10, 0], [50, 40, 30, 30, 0], [10, 10, -4, 5, 0],
                                                    [5, 5, 10, 10, 0]]},
                      {"size": (50, 60), "boxes": [[55, 45, 20, 20, 0]]}], category_ids=(1,))
    dataset = COCODataset(str(root), img_size=(64, 64))
    np.testing.assert_allclose(dataset.ground_truth(0)["boxes"], [[0, 10, 15, 20], [50, 40, 60, 50], [5, 5, 15, 15]])
    np.testing.assert_allclose(dataset.ground_truth(1)["boxes"], [[55, 45, 60, 50]])
    assert len(warnings_seen) == 1
    assert "4 boxes" in warnings_seen[0] and "1 left empty" in warnings_seen[0]
    assert "image id 1" in warnings_seen[0] and "[-5.0, 10.0, 15.0, 20.0]" in warnings_seen[0]


def test_data_dir_from_environment(make_coco, tmp_path, monkeypatch):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 5, 5, 0]]}], category_ids=(1,),
                     root=tmp_path / "sets" / "COCO")
    monkeypatch.setenv("YOLOX_DATADIR", str(tmp_path / "sets"))
    assert COCODataset(img_size=(64, 64)).data_dir == root
    monkeypatch.setenv("YOLOX_DATADIR", str(root))  # pointing straight at the dataset works too
    assert COCODataset(img_size=(64, 64)).data_dir == root
    monkeypatch.delenv("YOLOX_DATADIR")
    monkeypatch.chdir(tmp_path / "sets")
    with pytest.raises(UserError, match=r"datasets.COCO.annotations.instances_train2017.json not found"):
        COCODataset(img_size=(64, 64))


def test_missing_annotation_file_names_it(tmp_path):
    with pytest.raises(UserError, match=r"annotation file .*instances_val2017.json not found.*data_dir"):
        COCODataset(str(tmp_path), json_file="instances_val2017.json")


def test_invalid_json_names_file_and_position(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": []}], category_ids=(1,))
    (root / "annotations" / "instances_train2017.json").write_text('{"images": [', encoding="utf-8")
    with pytest.raises(UserError, match=r"instances_train2017.json is not valid JSON \(line 1, column 13"):
        COCODataset(str(root))


def test_missing_image_is_named(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": []}, {"size": (40, 40), "boxes": []}], category_ids=(1,))
    (root / "train2017" / "000002.png").unlink()
    with pytest.raises(UserError, match=r"1 images listed in .* are missing:\n  .*train2017.000002.png"):
        COCODataset(str(root))


def test_unreadable_image_is_named(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": []}], category_ids=(1,))
    (root / "train2017" / "000001.png").write_bytes(b"this is not an image")
    with pytest.raises(UserError, match=r"unreadable .*\n  .*train2017.000001.png"):
        COCODataset(str(root))


def test_category_count_mismatch_names_both_numbers_and_key(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": []}], category_ids=(1, 2, 3))
    with pytest.raises(UserError, match=r"has 3 categories but the exp sets num_classes = 80: set the exp key "
                                        r"num_classes to 3"):
        COCODataset(str(root), num_classes=80)


def test_empty_image_set_is_an_error(make_coco):
    root = make_coco([], category_ids=(1,))
    with pytest.raises(UserError, match=r"instances_train2017.json lists no images"):
        COCODataset(str(root))


def test_annotation_of_unknown_category_is_named(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 5, 5, 0]]}], category_ids=(1,))
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 9
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"annotation id 1 uses category_id 9"):
        COCODataset(str(root))


def test_getitem_applies_preproc(make_coco):
    root = make_coco([{"size": (40, 80), "boxes": [[8, 4, 16, 8, 0]]}], category_ids=(1,))
    seen = {}

    def record(img, target, input_size):
        seen.update(shape=img.shape, target=target.copy(), input_size=input_size)
        return img, target

    dataset = COCODataset(str(root), img_size=(64, 64), preproc=record)
    dataset[0]
    assert seen["shape"] == (32, 64, 3) and seen["input_size"] == (64, 64)
    np.testing.assert_allclose(seen["target"], [[6.4, 3.2, 19.2, 9.6, 0]], rtol=1e-6)  # scaled by 0.8


def test_pull_item_returns_fresh_image(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 5, 5, 0]]}], category_ids=(1,))
    dataset = COCODataset(str(root), img_size=(40, 40), cache=True, cache_type="ram")
    img, target, _, _ = dataset.pull_item(0)
    img[:] = 0
    target[:] = 0
    again, target_again, _, _ = dataset.pull_item(0)
    assert again.max() > 0 and target_again.max() > 0
    assert isinstance(dataset.data_dir, Path)


def test_image_of_another_size_than_annotated_is_stretched_with_a_warning(make_coco, warnings_seen):
    root = make_coco([{"size": (40, 80), "boxes": [[1, 1, 5, 5, 0]]}], category_ids=(1,))
    cv2.imwrite(str(root / "train2017" / "000001.png"), np.zeros((30, 30, 3), np.uint8))
    img, _, _, _ = COCODataset(str(root), img_size=(64, 64)).pull_item(0)
    assert img.shape == (32, 64, 3)
    assert len(warnings_seen) == 1 and "000001.png is 30x30 but its annotation says 80x40" in warnings_seen[0]


def _edit_annotations(root, edit) -> None:
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_duplicate_image_ids_name_the_id_and_both_files(make_coco):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 5, 5, 0]]}, {"size": (40, 40), "boxes": [[9, 9, 5, 5, 0]]}],
                     category_ids=(1,))
    _edit_annotations(root, lambda data: data["images"][1].update(id=1))
    with pytest.raises(UserError, match=r"image id 1 is used twice, by '000001.png' and '000002.png'"):
        COCODataset(str(root))


def test_annotations_of_unknown_images_are_counted_in_a_warning(make_coco, warnings_seen):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 5, 5, 0], [9, 9, 5, 5, 0], [20, 20, 5, 5, 0]]}],
                     category_ids=(1,))

    def orphan_two(data):
        data["annotations"][1]["image_id"] = 77
        data["annotations"][2]["image_id"] = 78

    _edit_annotations(root, orphan_two)
    dataset = COCODataset(str(root), img_size=(64, 64))
    assert len(dataset.ground_truth(0)["boxes"]) == 1
    assert len(warnings_seen) == 1
    assert "2 annotations refer to image ids that are not in 'images'" in warnings_seen[0]
    assert "annotation id 2 with image_id 77" in warnings_seen[0]


def test_zero_area_boxes_and_a_set_without_boxes_are_warned(make_coco, warnings_seen):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 0, 5, 0], [9, 9, 5, 0, 0]]}, {"size": (40, 40)}],
                     category_ids=(1,))
    dataset = COCODataset(str(root), img_size=(64, 64))
    assert dataset.labelled_indices == []
    assert len(warnings_seen) == 2
    assert "2 boxes of zero width or height were dropped" in warnings_seen[0] and "image id 1" in warnings_seen[0]
    assert "none of its 2 images has a box (2 annotations" in warnings_seen[1]


def test_skip_bad_images_replaces_an_undecodable_image_and_counts_it(make_coco, warnings_seen):
    root = make_coco([{"size": (40, 40), "boxes": [[1, 1, 5, 5, 0]]}, {"size": (40, 40), "boxes": [[9, 9, 5, 5, 0]]}],
                     category_ids=(1,), ext=".jpg")
    bad = root / "train2017" / "000001.jpg"
    bad.write_bytes(bad.read_bytes()[:100])
    dataset = COCODataset(str(root), img_size=(40, 40))
    with pytest.raises(UserError, match=r"image .*000001.jpg could not be read .*skip_bad_images True"):
        dataset.pull_item(0)
    dataset.skip_bad_images = True
    for _ in range(2):
        _, labels, _, image_id = dataset.pull_item(0)
        assert image_id == 2 and labels[0, 0] == 9
    assert dataset.skipped_images == 1
    assert len(warnings_seen) == 1 and "skipped unreadable image" in warnings_seen[0]
