"""Samplers for training: an endless seeded, rank-aware index stream and batches carrying the mosaic flag."""

import itertools
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, Sampler


class InfiniteSampler(Sampler):
    """Endless stream of dataset indices: a new seeded permutation per pass, interleaved over the ranks.

    Rank ``r`` of ``w`` takes positions ``r, r + w, r + 2w, ...`` of the one stream every rank computes
    alike from ``seed``, so within each pass the ranks see disjoint indices.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None) -> None:
        if size <= 0:
            raise ValueError(f"InfiniteSampler needs a dataset with at least one item, got size={size}")
        distributed = dist.is_available() and dist.is_initialized()
        self._size = size
        self._shuffle = shuffle
        self._seed = int(seed)
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

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._all_ranks_stream(), self._rank, None, self._world_size)

    def __len__(self) -> int:
        """Indices per rank in one pass (what one epoch means for an endless sampler)."""
        return self._size // self._world_size


class YoloBatchSampler(BatchSampler):
    """BatchSampler whose items are ``(mosaic, index)``: the flag travels with every index to the workers.

    Setting ``mosaic = False`` (``close_mosaic``) takes effect from the next batch sampled.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, mosaic: bool = True) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.mosaic = mosaic

    def __iter__(self) -> Iterator[list[tuple[bool, int]]]:
        for batch in super().__iter__():
            yield [(self.mosaic, index) for index in batch]
