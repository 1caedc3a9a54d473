"""VOCDetection: 0-based boxes, class indices, difficult flags and its start-up checks."""

import numpy as np
import pytest

from yolox.data import VOC_CLASSES, VOCDetection
from yolox.utils.errors import UserError


def test_loaded_boxes_classes_and_difficult_flags(make_voc):
    root = make_voc({
        "000001": {"size": (100, 120), "objects": [("dog", 11, 21, 51, 61, 0), ("person", 1, 1, 120, 100, 1)]},
        "000002": {"size": (50, 60), "objects": []},
    })
    dataset = VOCDetection(str(root), image_sets=[("2007", "trainval")], img_size=(120, 120), num_classes=20)
    assert len(dataset) == 2 and dataset.class_names == VOC_CLASSES
    assert dataset.ids == [("VOC2007", "000001"), ("VOC2007", "000002")]
    truth = dataset.ground_truth(0)
    np.testing.assert_allclose(truth["boxes"], [[10, 20, 50, 60], [0, 0, 119, 99]])
    np.testing.assert_array_equal(truth["classes"], [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")])
    np.testing.assert_array_equal(truth["difficult"], [False, True])
    assert len(dataset.ground_truth(1)["boxes"]) == 0
    img, target, img_info, img_id = dataset.pull_item(0)
    assert img.shape == (100, 120, 3) and img_info == (100, 120) and img_id == 0
    np.testing.assert_allclose(target[:, 4], truth["classes"])
    without = VOCDetection(str(root), img_size=(120, 120), keep_difficult=False)
    np.testing.assert_array_equal(without.ground_truth(0)["classes"], [VOC_CLASSES.index("dog")])


def test_custom_class_names_and_count_check(make_voc):
    root = make_voc({"a": {"size": (40, 40), "objects": [("cat", 2, 2, 10, 10, 0)]}})
    dataset = VOCDetection(str(root), img_size=(64, 64), class_names=("dog", "cat"), num_classes=2)
    np.testing.assert_array_equal(dataset.ground_truth(0)["classes"], [1])
    with pytest.raises(UserError, match=r"has 2 names but the exp sets num_classes = 3: set the exp key num_classes"):
        VOCDetection(str(root), img_size=(64, 64), class_names=("dog", "cat"), num_classes=3)


def test_unknown_class_is_named(make_voc):
    root = make_voc({"a": {"size": (40, 40), "objects": [("unicorn", 2, 2, 10, 10, 0)]}})
    with pytest.raises(UserError, match=r"a.xml has an object of class 'unicorn'.*class_names"):
        VOCDetection(str(root), img_size=(64, 64))


def test_missing_image_set_and_empty_set(make_voc):
    root = make_voc({"a": {"size": (40, 40), "objects": []}})
    with pytest.raises(UserError, match=r"VOC image set .*VOC2012.ImageSets.Main.trainval.txt not found"):
        VOCDetection(str(root), image_sets=[("2012", "trainval")])
    (root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").write_text("\n")
    with pytest.raises(UserError, match=r"lists no images"):
        VOCDetection(str(root))


def test_missing_image_is_named(make_voc):
    root = make_voc({"a": {"size": (40, 40), "objects": []}})
    (root / "VOC2007" / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(UserError, match=r"missing:\n  .*JPEGImages.a.jpg"):
        VOCDetection(str(root))


def test_disk_cache_matches_uncached(make_voc):
    root = make_voc({"a": {"size": (40, 50), "objects": [("cat", 2, 2, 10, 10, 0)]}})
    cached = VOCDetection(str(root), img_size=(64, 64), cache=True, cache_type="disk")
    np.testing.assert_array_equal(cached.pull_item(0)[0], VOCDetection(str(root), img_size=(64, 64)).pull_item(0)[0])
    assert len(list((root / "img_resized_cache" / "VOC0712_2007trainval").glob("*.npy"))) == 1
