"""InfiniteSampler and YoloBatchSampler: seeding, rank splits and the mosaic flag."""

import itertools

import pytest

from yolox.data import InfiniteSampler, YoloBatchSampler


def take(sampler, count):
    return list(itertools.islice(iter(sampler), count))


def test_same_seed_same_stream_and_each_pass_is_a_permutation():
    first = take(InfiniteSampler(10, seed=3), 30)
    assert first == take(InfiniteSampler(10, seed=3), 30)
    assert first != take(InfiniteSampler(10, seed=4), 30)
    for start in (0, 10, 20):
        assert sorted(first[start:start + 10]) == list(range(10))
    assert first[:10] != first[10:20]  # a new permutation per pass
    assert take(InfiniteSampler(5, shuffle=False), 7) == [0, 1, 2, 3, 4, 0, 1]


def test_world_size_two_splits_without_overlap():
    size = 12
    ranks = [take(InfiniteSampler(size, seed=7, rank=rank, world_size=2), size // 2) for rank in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == list(range(size))
    assert len(InfiniteSampler(size, rank=1, world_size=2)) == size // 2
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        InfiniteSampler(size, rank=2, world_size=2)


def test_batch_sampler_carries_the_mosaic_flag():
    batches = YoloBatchSampler(InfiniteSampler(6, seed=0), batch_size=4, drop_last=False, mosaic=True)
    stream = iter(batches)
    first = next(stream)
    assert len(first) == 4 and all(flag is True for flag, _ in first)
    batches.mosaic = False
    assert all(flag is False for flag, _ in next(stream))
