"""Process-wide settings for training: seeds, thread counts, and the host memory allocator."""

import ctypes
import ctypes.util
import os
import random
import sys

import numpy as np
import torch
from loguru import logger

# glibc mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# Freed heap memory up to this size stays with the process instead of going back to the kernel.
KEEP_FREED_BYTES = 1 << 30


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) and make cuDNN pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def configure_threads(local_world_size: int) -> None:
    """Share the CPU cores between the processes of one machine, unless OMP_NUM_THREADS says otherwise.

    OpenCV's own thread pool is switched off: data-loader workers already run in parallel and its threads
    would compete with them and with torch.
    """
    import cv2

    cv2.setNumThreads(0)
    if local_world_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // local_world_size)
        torch.set_num_threads(threads)
        logger.info(f"{local_world_size} processes on this machine: {threads} torch threads each (set OMP_NUM_THREADS to change)")


def configure_allocator() -> bool:
    """Keep large freed host buffers mapped between training steps (glibc only); return True when applied.

    glibc serves blocks over 32 MiB with a fresh mmap and unmaps them on free, so a CPU train step that
    allocates the same big activations every iteration pays page faults for all of them each time.
    Serving everything from the heap and keeping up to ``KEEP_FREED_BYTES`` of freed memory avoids that.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED_BYTES))
