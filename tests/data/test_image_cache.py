"""RAM and disk caches: same arrays as uncached loading, invalidation, and the memory check."""

import os
import time

import cv2
import numpy as np
import pytest

from yolox.data import COCODataset, image_cache
from yolox.utils.errors import UserError

SPECS = [{"size": (40, 60), "boxes": [[5, 5, 10, 10, 0]]}, {"size": (70, 50), "boxes": [[1, 2, 20, 30, 1]]},
         {"size": (64, 64), "boxes": []}]


@pytest.mark.parametrize("cache_type", ["ram", "disk"])
def test_cache_returns_the_uncached_arrays(make_coco, cache_type):
    root = make_coco(SPECS, category_ids=(1, 2))
    plain = COCODataset(str(root), img_size=(48, 48))
    cached = COCODataset(str(root), img_size=(48, 48), cache=True, cache_type=cache_type)
    for index in range(len(plain)):
        expected, cached_img = plain.pull_item(index), cached.pull_item(index)
        np.testing.assert_array_equal(cached_img[0], expected[0])
        np.testing.assert_array_equal(cached_img[1], expected[1])
    if cache_type == "disk":
        assert len(list((root / "img_resized_cache" / "train2017").glob("*.npy"))) == len(SPECS)


def test_disk_cache_rebuilds_changed_image_size_and_file_list(make_coco, tmp_path):
    root = make_coco(SPECS, category_ids=(1, 2))
    cache_dir = tmp_path / "cache"
    COCODataset(str(root), img_size=(48, 48), cache=True, cache_type="disk", cache_dir=str(cache_dir))
    store = image_cache.DiskImageCache
    dataset = COCODataset(str(root), img_size=(48, 48), cache=True, cache_type="disk", cache_dir=str(cache_dir))
    assert store(cache_dir, (48, 48), [r.path for r in dataset.records], [r.key for r in dataset.records]).sync(
        dataset._read_resized, "test") == 0  # nothing stale

    # A changed image: new pixels (and a later modification time) must show through the cache.
    path = root / "train2017" / "000002.png"
    cv2.imwrite(str(path), np.full((70, 50, 3), 200, dtype=np.uint8))
    later = time.time() + 5
    os.utime(path, (later, later))
    fresh = COCODataset(str(root), img_size=(48, 48), cache=True, cache_type="disk", cache_dir=str(cache_dir))
    assert (fresh.pull_item(1)[0] == 200).all()
    np.testing.assert_array_equal(fresh.pull_item(0)[0], COCODataset(str(root), img_size=(48, 48)).pull_item(0)[0])

    # Another input size rebuilds everything at that size.
    bigger = COCODataset(str(root), img_size=(96, 96), cache=True, cache_type="disk", cache_dir=str(cache_dir))
    assert bigger.pull_item(2)[0].shape == (96, 96, 3)

    # A shorter file list drops the cache entries of the images no longer listed.
    smaller = make_coco(SPECS[:1], category_ids=(1, 2), root=tmp_path / "smaller")
    COCODataset(str(smaller), img_size=(96, 96), cache=True, cache_type="disk", cache_dir=str(cache_dir))
    assert len(list(cache_dir.glob("*.npy"))) == 1


def test_ram_cache_checks_free_memory(make_coco, monkeypatch):
    root = make_coco(SPECS, category_ids=(1, 2))
    monkeypatch.setattr(image_cache, "available_memory_bytes", lambda: 1000)
    with pytest.raises(UserError, match=r"caching the 3 images of .* in RAM needs about .* GiB but only .* GiB is "
                                        r"free .*use --cache disk"):
        COCODataset(str(root), img_size=(48, 48), cache=True, cache_type="ram")


def test_ram_cache_is_read_only_and_unknown_type_rejected(make_coco):
    root = make_coco(SPECS, category_ids=(1, 2))
    dataset = COCODataset(str(root), img_size=(48, 48), cache=True, cache_type="ram")
    assert not dataset.load_resized_img(0).flags.writeable
    with pytest.raises(UserError, match=r"unknown cache type 'ssd': use one of ram, disk"):
        COCODataset(str(root), img_size=(48, 48), cache=True, cache_type="ssd")
