"""MosaicDetection: boxes inside the canvas that follow the pixels, mixup, close_mosaic, seeded batches."""

import random

import cv2
import numpy as np
import pytest
import torch

from yolox.data import (COCODataset, DataLoader, InfiniteSampler, MosaicDetection, TrainTransform, ValTransform,
                        YoloBatchSampler, worker_init_reset_seed)
from yolox.data.data_augment import random_affine_matrix
from yolox.data.datasets.mosaicdetection import mosaic_tile_placement

COLOURS = np.array([(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)], dtype=np.float32)
INPUT = (128, 160)


def colour_mask(hwc: np.ndarray, colour: np.ndarray, tolerance: float = 40) -> np.ndarray:
    """Pixels within ``tolerance`` of ``colour`` in every channel."""
    return (np.abs(hwc - colour) < tolerance).all(axis=-1)


def build_mosaic(root, **kwargs) -> MosaicDetection:
    options = dict(mosaic=True, degrees=10.0, translate=0.1, mosaic_scale=(0.5, 1.5), mixup_scale=(0.5, 1.5),
                   shear=2.0, enable_mixup=False, mosaic_prob=1.0, mixup_prob=1.0,
                   preproc=TrainTransform(max_labels=30, flip_prob=0.5, hsv_prob=0.0))
    options.update(kwargs)
    return MosaicDetection(COCODataset(str(root), img_size=INPUT), img_size=INPUT, **options)


def check_boxes_follow_pixels(hwc: np.ndarray, labels: np.ndarray, scale: float = 1.0) -> int:
    """Every pixel of a class colour lies in a box of that class, and boxes hold their colour; returns boxes."""
    rows = labels[labels[:, 3] > 0]
    boxes = np.stack([rows[:, 1] - rows[:, 3] / 2, rows[:, 2] - rows[:, 4] / 2,
                      rows[:, 1] + rows[:, 3] / 2, rows[:, 2] + rows[:, 4] / 2], axis=1)
    assert (boxes[:, :2] >= -1e-3).all() and (boxes[:, 2] <= INPUT[1] + 1e-3).all()
    assert (boxes[:, 3] <= INPUT[0] + 1e-3).all()
    for cls, colour in enumerate(COLOURS):
        mask = colour_mask(hwc, colour * scale + (0 if scale == 1 else 114 * (1 - scale)))
        ys, xs = np.nonzero(mask)
        mine = boxes[rows[:, 0] == cls]
        inside = np.zeros(len(xs), dtype=bool)
        for x1, y1, x2, y2 in mine:
            inside |= (xs >= x1 - 1.5) & (xs <= x2 + 0.5) & (ys >= y1 - 1.5) & (ys <= y2 + 0.5)
        assert inside.all(), f"{(~inside).sum()} pixels of class {cls} fall outside its boxes"
        for x1, y1, x2, y2 in mine:
            if min(x2 - x1, y2 - y1) >= 6:
                patch = mask[int(np.ceil(y1)):int(y2), int(np.ceil(x1)):int(x2)]
                assert patch.mean() > 0.4, f"box {x1, y1, x2, y2} of class {cls} barely holds its colour"
    return len(rows)


def test_mosaic_boxes_inside_canvas_follow_pixels(four_colour_coco):
    random.seed(0)
    mosaic = build_mosaic(four_colour_coco)
    total = 0
    for index in range(24):
        img, labels, img_info, _ = mosaic[(True, index % 4)]
        assert img.shape == (3, *INPUT) and labels.shape == (30, 5) and img_info == INPUT
        total += check_boxes_follow_pixels(img.transpose(1, 2, 0), labels)
    assert total > 24  # mosaics hold more than one box on average


def test_mixup_adds_partner_boxes_that_follow_its_pixels(four_colour_coco):
    random.seed(3)
    mosaic = build_mosaic(four_colour_coco, enable_mixup=True)
    for _ in range(12):
        base = np.full((*INPUT, 3), 114, dtype=np.uint8)  # a neutral mosaic: only the partner shows colour
        blended, labels = mosaic._mixup(base, np.array([[0, 0, 1, 1, 0]], np.float32))
        partner = labels[1:]
        rows = np.concatenate([partner[:, 4:5], (partner[:, :2] + partner[:, 2:4]) / 2,
                               partner[:, 2:4] - partner[:, :2]], axis=1)
        check_boxes_follow_pixels(blended.astype(np.float32), rows, scale=0.5)


def test_mosaic_with_mixup_keeps_boxes_in_canvas(four_colour_coco):
    random.seed(5)
    mosaic = build_mosaic(four_colour_coco, enable_mixup=True)
    for index in range(12):
        _, labels, _, _ = mosaic[index % 4]
        rows = labels[labels[:, 3] > 0]
        assert (rows[:, 1] - rows[:, 3] / 2 >= -1e-3).all() and (rows[:, 1] + rows[:, 3] / 2 <= INPUT[1] + 1e-3).all()
        assert (rows[:, 2] - rows[:, 4] / 2 >= -1e-3).all() and (rows[:, 2] + rows[:, 4] / 2 <= INPUT[0] + 1e-3).all()


def plain_item(dataset: COCODataset, image_id: int) -> np.ndarray:
    """The un-augmented letterboxed image of a COCO image id."""
    img, _, _, _ = dataset.pull_item(dataset.ids.index(image_id))
    return ValTransform()(img, None, INPUT)[0]


def make_loader(mosaic: MosaicDetection, num_workers: int, batch_size: int = 2, seed: int = 0) -> DataLoader:
    sampler = InfiniteSampler(len(mosaic), seed=seed)
    batches = YoloBatchSampler(sampler, batch_size=batch_size, drop_last=False, mosaic=True)
    return DataLoader(mosaic, batch_sampler=batches, num_workers=num_workers, worker_init_fn=worker_init_reset_seed,
                      persistent_workers=num_workers > 0)


def is_plain(batch, dataset) -> list:
    images, _, _, ids = batch
    return [np.array_equal(image.numpy(), plain_item(dataset, int(image_id))) for image, image_id in zip(images, ids)]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_close_mosaic_stops_mosaic(four_colour_coco, num_workers):
    random.seed(0)
    mosaic = build_mosaic(four_colour_coco, preproc=TrainTransform(max_labels=30, flip_prob=0.0, hsv_prob=0.0))
    loader = make_loader(mosaic, num_workers)
    batches = iter(loader)
    assert not any(is_plain(next(batches), mosaic.dataset) + is_plain(next(batches), mosaic.dataset))
    if num_workers:
        mosaic.close_mosaic()  # the switch in shared memory reaches the persistent worker
        for _ in range(3):
            next(batches)  # batches already requested from the worker may still be mosaics
    else:
        loader.close_mosaic()
        assert loader.batch_sampler.mosaic is False
    for _ in range(3):
        assert all(is_plain(next(batches), mosaic.dataset))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_same_seed_gives_same_batches(four_colour_coco, num_workers):
    def batches(seed):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        mosaic = build_mosaic(four_colour_coco, enable_mixup=True,
                              preproc=TrainTransform(max_labels=30, flip_prob=0.5, hsv_prob=1.0))
        stream = iter(make_loader(mosaic, num_workers, seed=seed))
        return [next(stream) for _ in range(3)]

    first, second, other = batches(1), batches(1), batches(2)
    for one, two in zip(first, second):
        assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert not all(torch.equal(one[0], two[0]) for one, two in zip(first, other))
    assert first[0][0].dtype == torch.float32 and first[0][1].shape == (2, 30, 5)


@pytest.mark.parametrize("seed", range(8))
def test_partial_canvas_equals_warping_the_whole_canvas(four_colour_coco, seed):
    mosaic = build_mosaic(four_colour_coco, mosaic_scale=(0.3, 2.5), degrees=30.0)
    random.seed(seed)
    fast, _ = mosaic._mosaic(1)
    # The straightforward way, with the same random draws: fill the whole 2x canvas, then warp it.
    random.seed(seed)
    height, width = INPUT
    center_y = int(random.uniform(0.5 * height, 1.5 * height))
    center_x = int(random.uniform(0.5 * width, 1.5 * width))
    indices = [1] + [random.randint(0, 3) for _ in range(3)]
    matrix, _ = random_affine_matrix((2 * height, 2 * width), INPUT, 30.0, 0.1, (0.3, 2.5), 2.0)
    canvas = np.full((2 * height, 2 * width, 3), 114, dtype=np.uint8)
    for slot, index in enumerate(indices):
        tile = mosaic.dataset.load_resized_img(index)
        (x1, y1, x2, y2), (sx, sy) = mosaic_tile_placement(slot, center_x, center_y, tile.shape[1], tile.shape[0],
                                                           2 * width, 2 * height)
        canvas[y1:y2, x1:x2] = tile[sy:sy + y2 - y1, sx:sx + x2 - x1]
    slow = cv2.warpAffine(canvas, matrix, (width, height), borderValue=(114, 114, 114))
    # Moving the warp's origin changes OpenCV's 1/32-pixel rounding of a few sample positions, no more.
    difference = np.abs(fast.astype(int) - slow.astype(int))
    assert difference.max() <= 8 and (difference > 0).mean() < 0.005
