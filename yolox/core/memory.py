"""Training memory estimated before the first iteration, so that a size that cannot fit is said, not OOM-killed.

The estimate adds what one process keeps during a step: the activations autograd saves for the backward
pass (measured on a copy of the model at a small probe size, then scaled by the pixel count and the batch:
convolution activations grow exactly with both), the weights with their gradients, SGD momentum and EMA
copy, and the input batch. The gradients of the activations during the backward pass and the allocator's
slack come on top, so the figure is a lower bound of the peak.
"""

import copy
import os
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn

PROBE_SIDE = 64  # px: the smallest square every stride (up to 32) divides with room to spare
# Weights, their gradients, SGD momentum and the EMA copy: four tensors per parameter.
PARAMETER_COPIES = 4
GIB = 1024**3
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def saved_activation_bytes(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                           amp_dtype: torch.dtype | None = None) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one training forward, parameters excluded.

    Each kept storage counts once, whole (a saved view keeps its whole base alive).
    """
    parameters = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
    kept: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        with torch.autocast(device_type=images.device.type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            outputs = model(images, targets)
    total = sum(kept.values())
    del outputs  # the graph, and with it every kept tensor, lives until here
    return total


def estimate_training_bytes(model: nn.Module, size: tuple[int, int], batch_per_process: int,
                            amp_dtype: torch.dtype | None = None) -> int:
    """Memory one process needs to train ``model`` on ``batch_per_process`` images of ``size`` (a lower bound)."""
    probe = copy.deepcopy(model).to("cpu").train()
    images = torch.zeros(1, 3, PROBE_SIDE, PROBE_SIDE)
    targets = torch.zeros(1, 1, 5)
    targets[0, 0] = torch.tensor([0.0, PROBE_SIDE / 2, PROBE_SIDE / 2, PROBE_SIDE / 4, PROBE_SIDE / 4])
    with torch.random.fork_rng(devices=[]):  # the run's random stream stays untouched
        per_pixel = saved_activation_bytes(probe, images, targets, amp_dtype) / (PROBE_SIDE * PROBE_SIDE)
    pixels = size[0] * size[1] * batch_per_process
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    buffers = sum(buffer.numel() * buffer.element_size() for buffer in model.buffers())
    return int(per_pixel * pixels + PARAMETER_COPIES * weights + 2 * buffers + pixels * 3 * 4)


def machine_memory_bytes(device: torch.device) -> tuple[int, str]:
    """The memory a training process on ``device`` can have at most, and what it is (device memory or RAM)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, f"the memory of {device}"
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in CGROUP_LIMITS:  # a container's limit is what its OOM killer enforces
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total, "this machine's RAM"


def largest_training_size(exp: Any) -> tuple[int, int]:
    """The largest input size a run of ``exp`` trains at: its input size or the top of its multiscale range."""
    height, width = (int(side) for side in exp.input_size)
    _, high = exp.multiscale_bounds()
    top = (max(high, 1) * 32, 32 * int(max(high, 1) * width / height))
    return max(height, top[0]), max(width, top[1])


def memory_warning(models: list[nn.Module], size: tuple[int, int], batch_per_process: int, processes: int,
                   device: torch.device, amp_dtype: torch.dtype | None = None) -> str | None:
    """The warning to give when ``processes`` processes training ``models`` (all on every batch) at ``size``
    need more memory than there is; None when it fits.

    On CUDA each process has its own device; on the CPU the ``processes`` of this machine share its RAM.
    """
    needed = sum(estimate_training_bytes(model, size, batch_per_process, amp_dtype) for model in models)
    sharing = 1 if device.type == "cuda" else processes
    available, what = machine_memory_bytes(device)
    if needed * sharing <= available:
        return None
    processes_text = f" x {sharing} processes" if sharing > 1 else ""
    return (f"training at input size {size[0]}x{size[1]} (the largest multiscale size) with {batch_per_process} "
            f"images per process needs at least {needed / GIB:.1f} GiB{processes_text} (estimated), more than "
            f"{what} ({available / GIB:.1f} GiB): expect it to run out of memory; lower input_size, "
            f"multiscale_range or -b")


def check_training_memory(models: list[nn.Module], exp: Any, batch_per_process: int, device: torch.device,
                          amp_dtype: torch.dtype | None) -> None:
    """Log :func:`memory_warning` for the run's largest size and this machine's processes, when it applies."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    warning = memory_warning(models, largest_training_size(exp), batch_per_process, processes, device, amp_dtype)
    if warning is not None:
        logger.warning(warning)
