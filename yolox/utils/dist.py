"""Small helpers over torch.distributed that also work when no process group exists (a single process)."""

import os
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_world_size() -> int:
    """Number of processes in the group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 without a group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine, from ``LOCAL_RANK`` as set by torchrun or ``launch``."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True on the process that writes files and logs (global rank 0)."""
    return get_rank() == 0


def all_gather_object(obj: Any) -> list[Any]:
    """Return ``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def any_across_ranks(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of boolean ``flags`` over all ranks, so every rank takes the same decision."""
    if not is_distributed():
        return list(flags)
    values = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v) for v in values.tolist()]
