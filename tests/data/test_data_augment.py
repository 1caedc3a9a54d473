"""Transforms: ValTransform parity with the official letterbox, TrainTransform, HSV, flip and affine."""

import random

import numpy as np
import pytest
import torch

from yolox.data import TrainTransform, ValTransform, augment_hsv, random_affine
from yolox.data.data_augment import to_chw_float, write_chw_float


def test_val_transform_matches_reference(reference_dir):
    fixture = torch.load(reference_dir / "parity_utils.pt", weights_only=True)["val_transform"]
    image = fixture["image_bgr"].numpy()
    out, zeros = ValTransform()(image, None, tuple(fixture["input_size"]))
    assert out.dtype == np.float32 and zeros.shape == (1, 5)
    np.testing.assert_array_equal(out, fixture["val_transform"].numpy())


def test_val_transform_letterbox_and_legacy():
    image = np.full((50, 100, 3), (10, 20, 30), dtype=np.uint8)
    out, _ = ValTransform()(image, None, (64, 64))
    assert out.shape == (3, 64, 64)
    np.testing.assert_array_equal(out[:, :32, :], np.array([10, 20, 30], np.float32).reshape(3, 1, 1) * np.ones((1, 32, 64)))
    assert (out[:, 32:, :] == 114).all()
    legacy, _ = ValTransform(legacy=True)(image, None, (64, 64))
    np.testing.assert_allclose(legacy[0, 0, 0], (30 / 255 - 0.485) / 0.229, rtol=1e-5)  # RGB order, normalised


def test_train_transform_pads_converts_and_drops_thin_boxes():
    random.seed(0)
    image = np.zeros((60, 120, 3), dtype=np.uint8)
    targets = np.array([[10, 10, 30, 50, 3], [40, 5, 40.5, 20, 1], [0, 0, 120, 60, 2]], dtype=np.float32)
    out, labels = TrainTransform(max_labels=4, flip_prob=0.0, hsv_prob=0.0)(image, targets, (64, 64))
    assert out.shape == (3, 64, 64) and out.dtype == np.float32 and labels.shape == (4, 5)
    assert (out[:, 32:, :] == 114).all() and (out[:, :30, :] == 0).all()
    # Scale 64/120: the 0.5 px wide box becomes thinner than one pixel and is dropped.
    np.testing.assert_allclose(labels[:2], [[3, 20 * 64 / 120, 30 * 64 / 120, 20 * 64 / 120, 40 * 64 / 120],
                                            [2, 32, 16, 64, 32]], rtol=1e-5)
    assert not labels[2:].any()
    _, few = TrainTransform(max_labels=1, flip_prob=0.0, hsv_prob=0.0)(image, targets, (64, 64))
    assert few.shape == (1, 5) and few[0, 0] == 3
    _, none = TrainTransform(max_labels=3)(image, np.zeros((0, 5), np.float32), (64, 64))
    assert not none.any()


def test_train_transform_flip_moves_box_with_pixels():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[10:20, 5:25] = 255
    out, labels = TrainTransform(max_labels=2, flip_prob=1.0, hsv_prob=0.0)(
        image, np.array([[5, 10, 25, 20, 0]], np.float32), (64, 64))
    columns = np.flatnonzero(out[0].max(axis=0) == 255)
    assert columns.min() == 39 and columns.max() == 58
    np.testing.assert_allclose(labels[0], [0, 49, 15, 20, 10])


def test_augment_hsv_changes_colours_in_place():
    random.seed(1)
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    before = image.copy()
    changed = False
    for _ in range(5):
        augment_hsv(image)
        changed |= not np.array_equal(image, before)
    assert changed and image.dtype == np.uint8 and image.shape == (32, 32, 3)
    frozen = before.copy()
    augment_hsv(frozen, hgain=0, sgain=0, vgain=0)
    np.testing.assert_array_equal(frozen, before)


@pytest.mark.parametrize("seed", range(6))
def test_random_affine_boxes_follow_pixels(seed):
    random.seed(seed)
    image = np.full((200, 200, 3), 60, dtype=np.uint8)
    image[50:110, 70:150] = (0, 0, 255)
    out, targets = random_affine(image, np.array([[70, 50, 150, 110, 0]], np.float32), target_size=(160, 180),
                                 degrees=10, translate=0.1, scales=(0.5, 1.5), shear=2)
    assert out.shape == (160, 180, 3)
    red = (out[..., 2] > 200) & (out[..., :2].max(axis=-1) < 50)
    ys, xs = np.nonzero(red)
    assert len(targets) == 1 and len(xs) > 0
    x1, y1, x2, y2 = targets[0, :4]
    assert 0 <= x1 < x2 <= 180 and 0 <= y1 < y2 <= 160
    assert xs.min() >= x1 - 1 and xs.max() <= x2 and ys.min() >= y1 - 1 and ys.max() <= y2
    # A box fitted around a slightly rotated rectangle is mostly filled by it.
    assert red.sum() > 0.6 * (x2 - x1) * (y2 - y1)


@pytest.mark.parametrize("image_hw", [(64, 64), (40, 64), (64, 30), (17, 23)])
def test_write_chw_float_equals_pad_then_transpose(image_hw):
    image = np.random.default_rng(2).integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    canvas = np.full((64, 64, 3), 114, dtype=np.uint8)
    canvas[:image_hw[0], :image_hw[1]] = image
    expected = canvas.transpose(2, 0, 1).astype(np.float32)
    out = np.full((3, 64, 64), -1.0, dtype=np.float32)  # stale values must all be overwritten
    assert write_chw_float(image, out) is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(to_chw_float(image, (64, 64)), expected)
    with pytest.raises(ValueError, match="does not fit"):
        write_chw_float(np.zeros((65, 10, 3), np.uint8), out)


def test_train_transform_call_is_augment_then_float_conversion():
    image = np.random.default_rng(3).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    targets = np.array([[5, 6, 40, 30, 1], [50, 10, 79, 47, 2]], dtype=np.float32)
    transform = TrainTransform(max_labels=5, flip_prob=0.5, hsv_prob=1.0)
    for seed in range(6):
        random.seed(seed)
        called, called_labels = transform(image.copy(), targets, (64, 64))
        random.seed(seed)
        augmented, labels = transform.augment(image.copy(), targets, (64, 64))
        assert augmented.dtype == np.uint8 and augmented.shape == (38, 64, 3)
        np.testing.assert_array_equal(called, to_chw_float(augmented, (64, 64)))
        np.testing.assert_array_equal(called_labels, labels)
