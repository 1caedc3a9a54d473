"""Average BatchNorm running statistics over all processes, so every rank evaluates and saves one model."""

import torch
import torch.distributed as dist
from torch import nn

from yolox.utils.dist import get_world_size, is_distributed


def batchnorm_buffers(module: nn.Module) -> list[torch.Tensor]:
    """The ``running_mean``/``running_var`` tensors of every BatchNorm layer in ``module``."""
    buffers = []
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            buffers.extend([layer.running_mean, layer.running_var])
    return buffers


@torch.no_grad()
def all_reduce_norm(module: nn.Module) -> None:
    """Replace each BatchNorm running statistic by its mean over all ranks (no-op in one process)."""
    if not is_distributed():
        return
    buffers = batchnorm_buffers(module)
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).float() for b in buffers])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= get_world_size()
    offset = 0
    for buffer in buffers:
        count = buffer.numel()
        buffer.copy_(flat[offset : offset + count].view_as(buffer))
        offset += count
