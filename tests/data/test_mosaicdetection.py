"""MosaicDetection: boxes inside the canvas that follow the pixels, mixup, close_mosaic, seeded batches."""

import random

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from yolox.data import (
    COCODataset,
    DataLoader,
    InfiniteSampler,
    MosaicDetection,
    TrainTransform,
    ValTransform,
    YoloBatchSampler,
    worker_init_reset_seed,
)
from yolox.data.data_augment import random_affine_matrix
from yolox.data.dataloading import collate_batch, new_image_batch
from yolox.data.datasets.mosaicdetection import load_images, mosaic_tile_placement

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
        plan = mosaic._plan_mixup(np.array([[0, 0, 1, 1, 0]], np.float32))
        partner_img = mosaic.dataset.load_resized_img(plan.partner) if plan.visible else None
        blended = mosaic._render_mixup(base, plan, partner_img)
        partner = plan.labels[1:]
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
    plan = mosaic._plan_mosaic(1)
    fast = mosaic._render_mosaic(plan, load_images(mosaic.dataset, [piece.index for piece in plan.pieces]))
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


@pytest.fixture
def textured_coco(make_coco):
    """Five images of mixed sizes filled with noise (lossless PNG), so any pixel slip shows in comparisons."""
    sizes = [(96, 128), (120, 90), (64, 200), (128, 160), (100, 100)]
    root = make_coco([{"size": size, "boxes": [[8, 9, 30, 25, index % 4], [40, 20, 20, 40, (index + 1) % 4]]}
                      for index, size in enumerate(sizes)])
    rng = np.random.default_rng(7)
    for path in sorted((root / "train2017").iterdir()):
        height, width = cv2.imread(str(path)).shape[:2]
        cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return root


def same(got, want) -> bool:
    """Equal collated values: tensors, or lists of them (as default_collate gives for tuples)."""
    if isinstance(want, list):
        return len(got) == len(want) and all(same(a, b) for a, b in zip(got, want))
    return torch.equal(got, want)


def textured_mosaic(root, **kwargs) -> MosaicDetection:
    options = dict(enable_mixup=True, mosaic_prob=0.8,
                   preproc=TrainTransform(max_labels=30, flip_prob=0.5, hsv_prob=1.0))
    options.update(kwargs)
    return build_mosaic(root, **options)


@pytest.mark.parametrize("decode_threads", [1, 3])
def test_batched_fetch_equals_item_by_item(textured_coco, decode_threads):
    fused = textured_mosaic(textured_coco, decode_threads=decode_threads)
    reference = textured_mosaic(textured_coco, decode_threads=1)
    items = [(True, index % 5) for index in range(7)] + [(False, 2)]
    for seed in range(4):
        random.seed(seed)
        samples = fused.__getitems__(items)
        batch = collate_batch(samples)
        random.seed(seed)
        expected = default_collate([reference[item] for item in items])
        assert batch[0].data_ptr() == samples[0][0].data_ptr()  # the batch tensor itself, not a copy
        assert batch[0].dtype == torch.float32 and batch[0].shape == (8, 3, *INPUT)
        assert same(batch, expected)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_loader_batches_equal_those_of_torch_default_collate(textured_coco, num_workers):
    def batches(**loader_options):
        random.seed(4)
        np.random.seed(4)
        torch.manual_seed(4)
        mosaic = textured_mosaic(textured_coco)
        sampler = YoloBatchSampler(InfiniteSampler(len(mosaic), seed=4), batch_size=3, drop_last=False, mosaic=True)
        stream = iter(DataLoader(mosaic, batch_sampler=sampler, num_workers=num_workers,
                                 worker_init_fn=worker_init_reset_seed, **loader_options))
        return [next(stream) for _ in range(3)]

    fast, plain = batches(), batches(collate_fn=default_collate)
    assert all(same(got, want) for got, want in zip(fast, plain))


@pytest.mark.parametrize("seed", range(6))
def test_four_channel_warp_equals_three_channel_warp(textured_coco, seed):
    mosaic = textured_mosaic(textured_coco, mosaic_scale=(0.3, 2.5), degrees=30.0)
    random.seed(seed)
    plan = mosaic._plan_mosaic(seed % 5)
    tiles = load_images(mosaic.dataset, [piece.index for piece in plan.pieces])
    x1, y1, x2, y2 = plan.window
    window = np.full((y2 - y1, x2 - x1, 3), 114, dtype=np.uint8)
    for piece, tile in zip(plan.pieces, tiles):
        window[piece.window_region] = tile[piece.tile_region]
    matrix = plan.matrix.copy()
    matrix[:, 2] += plan.matrix[:, :2] @ np.array([x1, y1], dtype=np.float64)
    expected = cv2.warpAffine(window, matrix, (INPUT[1], INPUT[0]), borderValue=(114, 114, 114))
    np.testing.assert_array_equal(mosaic._render_mosaic(plan, tiles), expected)


def test_mixup_crop_equals_cropping_the_whole_flipped_partner(textured_coco):
    mosaic = textured_mosaic(textured_coco)
    base = np.random.default_rng(5).integers(0, 256, (*INPUT, 3), dtype=np.uint8)
    flips = set()
    for seed in range(16):
        random.seed(seed)
        plan = mosaic._plan_mixup(np.zeros((0, 5), np.float32))
        if not plan.visible:
            continue
        partner = mosaic.dataset.load_resized_img(plan.partner)
        layer = cv2.resize(partner, plan.content_wh, interpolation=cv2.INTER_LINEAR)
        layer = cv2.flip(layer, 1) if plan.flip else layer
        x1, y1, x2, y2 = plan.paste
        shift_x, shift_y = plan.content_shift
        expected = cv2.convertScaleAbs(base, alpha=0.5, beta=57.0)
        expected[y1:y2, x1:x2] = cv2.addWeighted(base[y1:y2, x1:x2], 0.5,
                                                 layer[y1 + shift_y:y2 + shift_y, x1 + shift_x:x2 + shift_x], 0.5, 0)
        np.testing.assert_array_equal(mosaic._render_mixup(base, plan, partner), expected)
        flips.add(plan.flip)
    assert flips == {False, True}


def test_collate_batch_copies_when_images_are_not_one_batch():
    arrays = [(np.full((3, 2, 2), index, np.float32), np.zeros((4, 5), np.float32), (2, 2), index)
              for index in range(3)]
    assert same(collate_batch(arrays), default_collate(arrays))
    base = new_image_batch(2, (2, 2))
    base.copy_(torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2))
    swapped = [(base[1], np.zeros(1, np.float32)), (base[0], np.zeros(1, np.float32))]
    images, _ = collate_batch(swapped)
    assert torch.equal(images, base.flip(0)) and images.data_ptr() != base.data_ptr()
    in_order, _ = collate_batch(swapped[::-1])
    assert in_order is base
    cached = base.clone()  # rows of another tensor, e.g. a dataset's cache: copied, never handed on
    images, _ = collate_batch([(cached[0], 0), (cached[1], 1)])
    assert torch.equal(images, cached) and images.data_ptr() != cached.data_ptr()


def test_decode_threads_must_be_positive(four_colour_coco):
    with pytest.raises(ValueError, match="decode_threads"):
        build_mosaic(four_colour_coco, decode_threads=0)
