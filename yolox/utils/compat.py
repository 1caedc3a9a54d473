"""Helpers that the official YOLOX exposes from ``yolox.utils`` and this project had no other home for.

Each keeps the official name, call signature and meaning. Where the official helper acts on hardware
or an environment this project does not assume (NVIDIA tools, InfiniBand), it does the nearest
sensible thing and its docstring says what that is.
"""

from __future__ import annotations

import os
import pickle
import random
import resource
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from loguru import logger
from torch import nn

from yolox.utils.dist import get_local_rank, get_rank, get_world_size, is_distributed
from yolox.utils.metric import MeterBuffer as _WindowMeterBuffer
from yolox.utils.metric import WindowMeter

MIB = 1024**2
GIB = 1024**3
# Norm layers whose running statistics differ between processes and get averaged before evaluation.
ASYNC_NORM = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)  # fmt: skip


# ---------------------------------------------------------------------------------------- boxes
def filter_box(output: torch.Tensor, scale_range: Sequence[float]) -> torch.Tensor:
    """Keep the rows of ``output`` (x1, y1, x2, y2, ...) whose box area lies strictly between min² and max²."""
    min_scale, max_scale = scale_range
    area = (output[:, 2] - output[:, 0]) * (output[:, 3] - output[:, 1])
    return output[(area > min_scale * min_scale) & (area < max_scale * max_scale)]


def matrix_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[N, M]`` of numpy boxes ``a [N, 4]`` and ``b [M, 4]`` (x1, y1, x2, y2)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.prod(bottom_right - top_left, axis=2) * (top_left < bottom_right).all(axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return overlap / (area_a[:, None] + area_b[None, :] - overlap + 1e-12)


def adjust_box_anns(bbox: np.ndarray, scale_ratio: float, padw: float, padh: float, w_max: float,
                    h_max: float) -> np.ndarray:
    """Scale and shift x1, y1, x2, y2 boxes in place (``* scale_ratio + pad``), clipped to the canvas; returns them."""
    bbox[:, 0::2] = np.clip(bbox[:, 0::2] * scale_ratio + padw, 0, w_max)
    bbox[:, 1::2] = np.clip(bbox[:, 1::2] * scale_ratio + padh, 0, h_max)
    return bbox


# ------------------------------------------------------------------------- demo (numpy) helpers
def mkdir(path: str | os.PathLike) -> None:
    """Create ``path`` and its parents when missing."""
    os.makedirs(path, exist_ok=True)


def nms(boxes: np.ndarray, scores: np.ndarray, nms_thr: float) -> list[int]:
    """Single-class numpy NMS: indices of the kept boxes, best first."""
    from yolox.utils.onnx_inference import nms as greedy_nms

    return greedy_nms(np.asarray(boxes), np.asarray(scores), nms_thr).tolist()


def multiclass_nms(boxes: np.ndarray, scores: np.ndarray, nms_thr: float, score_thr: float,
                   class_agnostic: bool = True) -> np.ndarray | None:
    """NMS over boxes ``[N, 4]`` with class scores ``[N, C]``: rows x1, y1, x2, y2, score, class, or None."""
    if class_agnostic:
        classes = scores.argmax(axis=1)
        best = scores[np.arange(len(classes)), classes]
        mask = best > score_thr
        if not mask.any():
            return None
        keep = nms(boxes[mask], best[mask], nms_thr)
        return np.concatenate([boxes[mask][keep], best[mask][keep, None], classes[mask][keep, None]], axis=1)
    per_class = []
    for class_index in range(scores.shape[1]):
        class_scores = scores[:, class_index]
        mask = class_scores > score_thr
        if not mask.any():
            continue
        keep = nms(boxes[mask], class_scores[mask], nms_thr)
        labels = np.full((len(keep), 1), class_index, dtype=boxes.dtype)
        per_class.append(np.concatenate([boxes[mask][keep], class_scores[mask][keep, None], labels], axis=1))
    return np.concatenate(per_class, axis=0) if per_class else None


def demo_postprocess(outputs: np.ndarray, img_size: Sequence[int], p6: bool = False) -> np.ndarray:
    """Decode raw head outputs ``[B, A, 5 + C]`` (exported with decoding off) in place into cx, cy, w, h pixels."""
    from yolox.utils.onnx_inference import decode_outputs

    strides = (8, 16, 32, 64) if p6 else (8, 16, 32)
    outputs[...] = decode_outputs(outputs, img_size, strides)
    return outputs


def random_color() -> tuple[int, int, int]:
    """A random colour, three ints in 0..255."""
    return random.randint(0, 255), random.randint(0, 255), random.randint(0, 255)


def visualize_assign(img: np.ndarray, boxes: np.ndarray, coords: np.ndarray, match_results: np.ndarray,
                     save_name: str | None = None) -> np.ndarray:
    """Draw each ground-truth box with the anchor points assigned to it (one colour per box), in place.

    ``boxes`` are x1, y1, x2, y2; ``coords`` the anchor centres ``[A, 2]``; ``match_results[a]`` the box
    index of anchor ``a``. The number of assigned anchors is written on each box. Saved when ``save_name``.
    """
    boxes = np.asarray(boxes).reshape(-1, 4)
    coords = np.asarray(coords).reshape(-1, 2)
    match_results = np.asarray(match_results).reshape(-1)
    for box_index, box in enumerate(boxes):
        color = random_color()
        x1, y1, x2, y2 = (int(v) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, 2)
        assigned = coords[match_results == box_index]
        for x, y in assigned:
            cv2.circle(img, (int(x), int(y)), 3, color, -1)
        cv2.putText(img, f"{len(assigned)}", (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1,
                    cv2.LINE_AA)
    if save_name is not None:
        cv2.imwrite(str(save_name), img)
    return img


def vis(img: np.ndarray, boxes: Any, scores: Any, cls_ids: Any, conf: float = 0.5,
        class_names: Sequence[str] | None = None) -> np.ndarray:
    """Draw the detections scoring at least ``conf`` on the BGR ``img`` in place and return it."""
    from yolox.utils.visualize import draw_detections

    def as_numpy(values: Any) -> np.ndarray:
        return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)

    img[...] = draw_detections(img, as_numpy(boxes), as_numpy(scores), as_numpy(cls_ids), class_names, conf)
    return img


# ----------------------------------------------------------------------------- distributed helpers
def get_num_devices() -> int:
    """Number of visible CUDA devices (``CUDA_VISIBLE_DEVICES`` respected); 0 on a machine without CUDA."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def get_local_size() -> int:
    """Processes on this machine: ``LOCAL_WORLD_SIZE`` (set by torchrun and ``launch``), else 1."""
    if not is_distributed():
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def synchronize() -> None:
    """Barrier across all processes (nothing to wait for in a single process)."""
    if is_distributed():
        dist.barrier()


@contextmanager
def wait_for_the_master(local_rank: int | None = None) -> Iterator[None]:
    """Let local rank 0 run the block first (e.g. to download or cache), the other ranks after it."""
    if local_rank is None:
        local_rank = get_local_rank()
    if local_rank > 0:
        synchronize()
    yield
    if local_rank == 0:
        synchronize()


def all_gather(data: Any, group: Any = None) -> list[Any]:
    """Every process's picklable ``data``, as a list in rank order, on every process."""
    if not is_distributed():
        return [data]
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, data, group=group)
    return gathered


def gather(data: Any, dst: int = 0, group: Any = None) -> list[Any]:
    """Every process's picklable ``data`` as a list on rank ``dst``; an empty list on the others."""
    if not is_distributed():
        return [data]
    is_destination = get_rank() == dst
    gathered: list[Any] | None = [None] * dist.get_world_size(group) if is_destination else None
    dist.gather_object(data, gathered, dst=dst, group=group)
    return gathered if is_destination else []


def time_synchronized() -> float:
    """``time.time()`` after the queued CUDA work has finished, so timings include it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.time()


def get_async_norm_states(module: nn.Module) -> OrderedDict:
    """The state-dict tensors (weights and running statistics) of every BatchNorm/InstanceNorm in ``module``."""
    states: OrderedDict = OrderedDict()
    for name, child in module.named_modules():
        if isinstance(child, ASYNC_NORM):
            for key, value in child.state_dict().items():
                states[f"{name}.{key}" if name else key] = value
    return states


def pyobj2tensor(pyobj: Any, device: str | torch.device = "cuda") -> torch.Tensor:
    """Pickle ``pyobj`` into a uint8 tensor on ``device`` (CPU when CUDA is asked for but absent)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        device = "cpu"
    return torch.frombuffer(bytearray(pickle.dumps(pyobj)), dtype=torch.uint8).to(device)


def tensor2pyobj(tensor: torch.Tensor) -> Any:
    """Unpickle what :func:`pyobj2tensor` packed."""
    return pickle.loads(tensor.cpu().numpy().tobytes())


def all_reduce(py_dict: dict, op: str = "sum", group: Any = None) -> dict:
    """Sum (``op="sum"``) or average (``"mean"``) a dict of tensors over all processes; same keys back."""
    if op not in ("sum", "mean"):
        raise ValueError(f"all_reduce op={op!r}: use 'sum' or 'mean'")
    if not is_distributed():
        return py_dict
    keys = sorted(py_dict)
    shapes = [py_dict[key].shape for key in keys]
    flat = torch.cat([py_dict[key].reshape(-1).float() for key in keys])
    dist.all_reduce(flat, group=group)
    if op == "mean":
        flat /= dist.get_world_size(group)
    values = torch.split(flat, [int(np.prod(shape)) for shape in shapes])
    return {key: value.reshape(shape).to(py_dict[key].dtype) for key, value, shape in zip(keys, values, shapes)}


def is_parallel(model: nn.Module) -> bool:
    """True for a model wrapped in DataParallel or DistributedDataParallel."""
    return isinstance(model, (nn.parallel.DataParallel, nn.parallel.DistributedDataParallel))


# ------------------------------------------------------------------------------- meters and memory
class AverageMeter(WindowMeter):
    """Window of recent values plus a running total: ``latest``, ``avg``, ``median``, ``global_avg``."""

    def __init__(self, window_size: int = 50) -> None:
        super().__init__(window_size)

    @property
    def median(self) -> float:
        """Median over the window (NaN when empty)."""
        return statistics.median(self.window) if self.window else float("nan")

    def reset(self) -> None:
        """Forget the window and the running total."""
        super().clear()

    def clear(self) -> None:
        """Forget the window only; ``global_avg`` keeps counting (the official meaning)."""
        self.window.clear()


class MeterBuffer(_WindowMeterBuffer):
    """A dict of :class:`AverageMeter` created on first use (as the official ``MeterBuffer``)."""

    def __init__(self, window_size: int = 20) -> None:
        super().__init__(window_size)
        self.default_factory = lambda: AverageMeter(window_size)

    def reset(self) -> None:
        """Reset every meter (window and total)."""
        for meter in self.values():
            meter.reset()

    def get_filtered_meter(self, filter_key: str = "time") -> dict:
        """The meters whose name contains ``filter_key``."""
        return {name: meter for name, meter in self.items() if filter_key in name}


def _cuda_index(cuda_device: int | str | torch.device) -> torch.device:
    """``cuda_device`` (an index, "cuda:N" or a device) as a CUDA device, or a RuntimeError without CUDA."""
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is visible: GPU memory figures need one")
    if isinstance(cuda_device, int) or (isinstance(cuda_device, str) and cuda_device.isdigit()):
        return torch.device("cuda", int(cuda_device))
    return torch.device(cuda_device)


def get_total_and_free_memory_in_Mb(cuda_device: int | str | torch.device) -> tuple[int, int]:
    """(total, used) MiB of a CUDA device, as the official helper returns despite its name (from the driver)."""
    free, total = torch.cuda.mem_get_info(_cuda_index(cuda_device))
    return total // MIB, (total - free) // MIB


def occupy_mem(cuda_device: int | str | torch.device, mem_ratio: float = 0.9) -> None:
    """Reserve up to ``mem_ratio`` of a GPU's memory in torch's cache, so other jobs cannot take it.

    Without CUDA there is nothing to reserve: it logs that and returns.
    """
    if not torch.cuda.is_available():
        logger.info("occupy_mem: no CUDA device, no GPU memory to reserve")
        return
    device = _cuda_index(cuda_device)
    total, used = get_total_and_free_memory_in_Mb(device)
    block_mib = int(total * mem_ratio) - used
    if block_mib > 0:
        block = torch.empty(block_mib * MIB, dtype=torch.uint8, device=device)
        del block  # the caching allocator keeps the memory for this process


def gpu_mem_usage() -> float:
    """Peak memory allocated by torch on the current CUDA device in MiB (0 without CUDA)."""
    return torch.cuda.max_memory_allocated() / MIB if torch.cuda.is_available() else 0.0


def mem_usage() -> float:
    """Host memory in use in GiB: system-wide from /proc/meminfo on Linux, else this process's peak."""
    try:
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) * 1024
        return (fields["MemTotal"] - fields["MemAvailable"]) / GIB
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / GIB if sys.platform == "darwin" else peak * 1024 / GIB


# ------------------------------------------------------------------------------ process environment
def configure_nccl() -> None:
    """NCCL settings for multi-GPU training: parallel kernel launches.

    The official helper also picks InfiniBand adapters from ``ibstat``; here NCCL's own detection does
    that, and variables the user already set are never overwritten.
    """
    os.environ.setdefault("NCCL_LAUNCH_MODE", "PARALLEL")


def configure_module(ulimit_value: int = 8192) -> None:
    """Raise the open-file limit to ``ulimit_value`` (loader workers share tensors through files) and
    switch OpenCV's OpenCL off (it can hang in forked workers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ulimit_value if hard == resource.RLIM_INFINITY else min(ulimit_value, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as err:
            logger.warning(f"could not raise the open-file limit to {wanted}: {err}")
    os.environ["OPENCV_OPENCL_RUNTIME"] = "disabled"
    cv2.ocl.setUseOpenCL(False)


def configure_omp(num_threads: int = 1) -> None:
    """In a multi-process run without ``OMP_NUM_THREADS``, set it (and torch's threads) to ``num_threads``."""
    if "OMP_NUM_THREADS" in os.environ or get_world_size() <= 1:
        return
    os.environ["OMP_NUM_THREADS"] = str(num_threads)
    torch.set_num_threads(num_threads)
    logger.info(f"OMP_NUM_THREADS set to {num_threads} for this multi-process run; set it yourself to change")
