"""Samplers for training: an endless seeded, rank-aware index stream and batches carrying the mosaic flag."""

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, Sampler

from yolox.data.augment_stream import sample_draw_seed


class SampleDraw(NamedTuple):
    """One entry of a keyed stream: the dataset index, its pass over the data, its place in the all-ranks stream."""

    index: int
    epoch: int
    position: int


class InfiniteSampler(Sampler):
    """Endless stream of dataset indices: a new seeded permutation per pass, interleaved over the ranks.

    Rank ``r`` of ``w`` takes positions ``r, r + w, r + 2w, ...`` of the one stream every rank computes
    alike from ``seed``, so within each pass the ranks see disjoint indices. With ``keyed=True`` it yields
    :class:`SampleDraw` entries instead of plain indices: what a sample's own augmentation stream is keyed on.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, keyed: bool = False) -> None:
        if size <= 0:
            raise ValueError(f"InfiniteSampler needs a dataset with at least one item, got size={size}")
        distributed = dist.is_available() and dist.is_initialized()
        self._size = size
        self._shuffle = shuffle
        self._seed = int(seed)
        self._keyed = keyed
        self._rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self._world_size = world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
        if not 0 <= self._rank < self._world_size:
            raise ValueError(f"rank {self._rank} is outside world_size {self._world_size}")

    def _all_ranks_stream(self) -> Iterator[int]:
        """The stream shared by all ranks: seeded permutations (or 0..size-1) back to back."""
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=generator).tolist()
            else:
                yield from range(self._size)

    def __iter__(self) -> Iterator[int] | Iterator[SampleDraw]:
        stream = self._all_ranks_stream()
        if self._keyed:
            stream = (SampleDraw(index, position // self._size, position) for position, index in enumerate(stream))
        return itertools.islice(stream, self._rank, None, self._world_size)

    def __len__(self) -> int:
        """Indices per rank in one pass (what one epoch means for an endless sampler)."""
        return self._size // self._world_size


class YoloBatchSampler(BatchSampler):
    """BatchSampler whose items are ``(mosaic, index)``: the flag travels with every index to the workers.

    Setting ``mosaic = False`` (``close_mosaic``) takes effect from the next batch sampled. Over a keyed
    sampler (``InfiniteSampler(keyed=True)``) with an ``augment_seed`` the items are ``(mosaic, index,
    draw_seed)``: the seed of that sample's own augmentation draws, from (augment_seed, epoch, index). Then
    ``mosaic_until`` (a position in the all-ranks stream) also decides the flag by position, so batches that
    loader workers prepare ahead of the switch to the no-augmentation epochs get the same flag every time.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, mosaic: bool = True,
                 augment_seed: int | None = None, mosaic_until: int | None = None) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.mosaic = mosaic
        self.augment_seed = augment_seed
        self.mosaic_until = mosaic_until

    def __iter__(self) -> Iterator[list[tuple]]:
        for batch in super().__iter__():
            yield [self._item(entry) for entry in batch]

    def _item(self, entry: int | SampleDraw) -> tuple:
        """The dataset item of one sampled entry (see the class docstring)."""
        if not isinstance(entry, SampleDraw):
            return (self.mosaic, entry)
        mosaic = self.mosaic and (self.mosaic_until is None or entry.position < self.mosaic_until)
        if self.augment_seed is None:
            return (mosaic, entry.index)
        return (mosaic, entry.index, sample_draw_seed(self.augment_seed, entry.epoch, entry.index))
