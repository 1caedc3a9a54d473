"""The augmentation stream owned by the samples: draws keyed on (seed, epoch, index), whoever computes them."""

import random

import numpy as np
import pytest
import torch

from yolox.data import COCODataset, DataLoader, InfiniteSampler, MosaicDetection, TrainTransform, YoloBatchSampler
from yolox.data.augment_stream import iteration_rng, sample_draw_seed, stream_seed
from yolox.data.samplers import SampleDraw

INPUT = (128, 160)


def full_augmentation(root) -> MosaicDetection:
    """Mosaic, mixup, affine, HSV and flip all on, so every kind of draw is exercised."""
    return MosaicDetection(COCODataset(str(root), img_size=INPUT), img_size=INPUT, mosaic=True, degrees=10.0,
                           translate=0.1, mosaic_scale=(0.5, 1.5), mixup_scale=(0.5, 1.5), shear=2.0,
                           enable_mixup=True, mosaic_prob=0.8, mixup_prob=0.7,
                           preproc=TrainTransform(max_labels=30, flip_prob=0.5, hsv_prob=1.0))


def same_item(one, two) -> bool:
    return np.array_equal(np.asarray(one[0]), np.asarray(two[0])) and np.array_equal(one[1], two[1])


def test_a_keyed_item_draws_what_the_official_global_stream_draws_from_the_same_seed(four_colour_coco):
    # Same distributions as the official augmentation: the keyed generator makes the very draws that the
    # global ``random`` module (which the official YOLOX uses) makes once seeded with the same number.
    mosaic = full_augmentation(four_colour_coco)
    for index in range(4):
        for draw_seed in (1, 77, 2 ** 40 + 5):
            random.seed(draw_seed)
            official = mosaic[(True, index)]
            random.seed(12345)  # the global state no longer matters to a keyed item
            assert same_item(mosaic[(True, index, draw_seed)], official)
    # Through the batched fetch (images written straight into one batch tensor) as well.
    items = [(True, index % 4, 1000 + index) for index in range(6)]
    for item, batched in zip(items, mosaic.__getitems__(items)):
        assert same_item(batched, mosaic[item])


def test_keyed_items_differ_between_epochs_and_seeds():
    assert sample_draw_seed(0, 0, 3) == sample_draw_seed(0, 0, 3)
    seeds = {sample_draw_seed(seed, epoch, index) for seed in (0, 1) for epoch in (0, 1) for index in range(50)}
    assert len(seeds) == 200
    assert stream_seed("sample", 1, 23) != stream_seed("sample", 12, 3)
    assert iteration_rng(0, 10).random() == iteration_rng(0, 10).random() != iteration_rng(0, 11).random()


def test_keyed_sampler_gives_positions_and_epochs_and_splits_them_over_ranks():
    entries = [entry for _, entry in zip(range(12), InfiniteSampler(5, seed=3, keyed=True))]
    plain = [index for _, index in zip(range(12), InfiniteSampler(5, seed=3))]
    assert [entry.index for entry in entries] == plain
    assert [entry.position for entry in entries] == list(range(12))
    assert [entry.epoch for entry in entries] == [0] * 5 + [1] * 5 + [2] * 2
    rank_1 = [entry for _, entry in zip(range(3), InfiniteSampler(5, seed=3, rank=1, world_size=2, keyed=True))]
    assert rank_1 == [entries[1], entries[3], entries[5]]


def test_batch_sampler_flags_mosaic_by_stream_position():
    batches = YoloBatchSampler(InfiniteSampler(4, seed=0, keyed=True), batch_size=2, drop_last=False,
                               augment_seed=9, mosaic_until=6)
    stream = iter(batches)
    items = [item for _ in range(4) for item in next(stream)]
    assert [item[0] for item in items] == [True] * 6 + [False] * 2
    assert all(len(item) == 3 and item[2] == sample_draw_seed(9, position // 4, item[1])
               for position, item in enumerate(items))
    without_seed = next(iter(YoloBatchSampler(InfiniteSampler(4, keyed=True), batch_size=2, drop_last=False)))
    assert all(len(item) == 2 for item in without_seed)
    assert isinstance(next(iter(InfiniteSampler(4, keyed=True))), SampleDraw)


def keyed_loader(mosaic: MosaicDetection, num_workers: int, batch_size: int, rank: int = 0,
                 world_size: int = 1) -> DataLoader:
    sampler = InfiniteSampler(len(mosaic), seed=5, rank=rank, world_size=world_size, keyed=True)
    batches = YoloBatchSampler(sampler, batch_size=batch_size, drop_last=False, augment_seed=5)
    return DataLoader(mosaic, batch_sampler=batches, num_workers=num_workers, persistent_workers=num_workers > 0)


def first_batches(loader: DataLoader, count: int) -> list:
    stream = iter(loader)
    return [next(stream) for _ in range(count)]


@pytest.mark.slow
def test_the_stream_is_the_same_with_workers_and_over_two_ranks(four_colour_coco):
    mosaic = full_augmentation(four_colour_coco)
    random.seed(0)
    alone = first_batches(keyed_loader(mosaic, num_workers=0, batch_size=2), 4)
    random.seed(1)
    torch.manual_seed(1)
    with_workers = first_batches(keyed_loader(mosaic, num_workers=2, batch_size=2), 4)
    for one, two in zip(alone, with_workers):
        assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    # Two ranks of one image each see, between them, the batch of two of a single process.
    ranks = [first_batches(keyed_loader(mosaic, num_workers=0, batch_size=1, rank=rank, world_size=2), 4)
             for rank in (0, 1)]
    for step, batch in enumerate(alone):
        joined = torch.cat([ranks[0][step][0], ranks[1][step][0]])
        assert torch.equal(joined, batch[0])
