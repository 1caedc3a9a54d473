"""The official dataset classes: Dataset's mosaic items, CacheDataset's caches, and the two concatenations."""

import numpy as np
import pytest

from yolox.data import (
    CacheDataset,
    COCODataset,
    ConcatDataset,
    Dataset,
    MixConcatDataset,
    MosaicDetection,
    TrainTransform,
    VOCDetection,
)
from yolox.data.datasets.datasets_wrapper import cache_read_img
from yolox.utils.errors import UserError

VOC_NAMES = ("cat1", "cat2", "cat3", "cat4")  # the class names of the generated COCO set


class Squares(CacheDataset):
    """Four generated images, each filled with its index; counts the real reads."""

    def __init__(self, tmp_path, cache=False, cache_type="ram"):
        self.reads = 0
        names = [f"sub/img{i}.png" for i in range(4)]
        super().__init__(input_dimension=(32, 48), num_imgs=4, data_dir=str(tmp_path), cache_dir_name="cache_sq",
                         path_filename=names, cache=cache, cache_type=cache_type)

    def __len__(self):
        return 4

    @cache_read_img(use_cache=True)
    def read_img(self, index, use_cache=True):
        self.reads += 1
        return np.full((32, 48, 3), index, dtype=np.uint8)

    @Dataset.mosaic_getitem
    def __getitem__(self, index):
        return self.read_img(index), self.enable_mosaic


def test_mosaic_getitem_takes_plain_indices_and_sampler_pairs(tmp_path):
    data = Squares(tmp_path)
    assert data.input_dim == (32, 48)
    img, mosaic = data[2]
    assert img[0, 0, 0] == 2 and mosaic is True
    img, mosaic = data[(False, 3)]
    assert img[0, 0, 0] == 3 and mosaic is False and data.enable_mosaic is False


@pytest.mark.parametrize("cache_type", ["ram", "disk"])
def test_cache_dataset_serves_images_from_its_cache(tmp_path, cache_type):
    data = Squares(tmp_path, cache=True, cache_type=cache_type)
    reads_while_caching = data.reads
    assert reads_while_caching >= 4
    for index in range(4):
        assert data.read_img(index)[0, 0, 0] == index
    assert data.reads == reads_while_caching  # every image came from the cache
    assert data.read_img(1, use_cache=False)[0, 0, 0] == 1 and data.reads == reads_while_caching + 1
    if cache_type == "disk":
        assert (tmp_path / "cache_sq" / "sub" / "img3.npy").is_file()
        again = Squares(tmp_path, cache=True, cache_type="disk")
        assert again.reads == 0  # the files are already there


def test_cache_dataset_rejects_a_bad_cache_type(tmp_path):
    with pytest.raises(UserError, match="cache"):
        Squares(tmp_path, cache=True, cache_type="gpu")


def _coco_and_voc(make_coco, make_voc):
    coco_root = make_coco([{"size": (64, 80), "boxes": [[5, 5, 20, 20, 0]]}, {"size": (64, 80), "boxes": []}])
    voc_root = make_voc({"a": {"size": (48, 64), "objects": [("cat2", 3, 4, 30, 40, 0)]},
                         "b": {"size": (48, 64), "objects": [("cat4", 10, 10, 20, 20, 0)]}})
    coco = COCODataset(data_dir=str(coco_root), img_size=(64, 64))
    voc = VOCDetection(data_dir=str(voc_root), image_sets=[("2007", "trainval")], img_size=(64, 64),
                       class_names=VOC_NAMES)
    return coco, voc


def test_concat_dataset_joins_a_coco_and_a_voc_set_for_mosaic_training(make_coco, make_voc):
    coco, voc = _coco_and_voc(make_coco, make_voc)
    both = ConcatDataset([coco, voc])
    assert len(both) == 4 and both.input_dim == (64, 64) and both.class_names == VOC_NAMES
    assert both.labelled_indices == [0, 2, 3]
    np.testing.assert_array_equal(both.load_anno(2), voc.load_anno(0))
    assert both.pull_item(-1)[2] == voc.pull_item(1)[2]
    assert both.load_anno(2)[0, 4] == 1 and both.load_anno(3)[0, 4] == 3  # VOC names map to the COCO indices
    mosaic = MosaicDetection(both, img_size=(64, 64), preproc=TrainTransform(max_labels=20), mosaic_prob=1.0,
                             enable_mixup=True)
    img, labels, _, _ = mosaic[(True, 3)]
    assert img.shape == (3, 64, 64) and labels.shape == (20, 5)
    with pytest.raises(IndexError):
        both.pull_item(4)


def test_concat_dataset_refuses_different_class_lists(make_coco, make_voc):
    coco, _ = _coco_and_voc(make_coco, make_voc)
    voc_root = make_voc({"c": {"size": (48, 64), "objects": [("dog", 3, 4, 30, 40, 0)]}}, year="2012")
    voc = VOCDetection(data_dir=str(voc_root), image_sets=[("2012", "trainval")], img_size=(64, 64))
    with pytest.raises(UserError, match="different class lists"):
        ConcatDataset([coco, voc])


def test_mix_concat_dataset_forwards_sampler_items(make_coco, make_voc):
    coco, voc = _coco_and_voc(make_coco, make_voc)
    first = MosaicDetection(coco, img_size=(64, 64), mosaic=False)
    second = MosaicDetection(voc, img_size=(64, 64), mosaic=False)
    mixed = MixConcatDataset([first, second])
    assert len(mixed) == 4 and mixed.input_dim == (64, 64)
    img, labels, info, _ = mixed[(False, 3)]
    assert info == (48, 64) and labels[0, 4] == 3
    assert mixed[1][2] == (64, 80)
