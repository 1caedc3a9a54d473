"""Model inference over an evaluation loader, shared by the COCO and VOC evaluators.

Produces, per image id, the post-processed detections in original image coordinates as float32 rows
``x1, y1, x2, y2, objectness, class_score, class_index``; in a distributed run every rank infers its
share and the shares are gathered to rank 0.
"""

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from loguru import logger
from tqdm import tqdm

from yolox.utils.boxes import postprocess
from yolox.utils.dist import get_world_size, is_distributed, is_main_process
from yolox.utils.errors import UserError

EMPTY_DETECTIONS = np.zeros((0, 7), dtype=np.float32)


class ProgressBar:
    """Evaluation progress: a tqdm bar redrawn in place on a terminal, a log line per quarter otherwise."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None) -> None:
        """Track ``total`` steps; draw nothing when ``enabled`` is False (ranks other than 0)."""
        self.total, self.desc, self.enabled = max(total, 1), desc, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done, self.start, self.next_quarter = 0, time.perf_counter(), 1
        self.bar = tqdm(total=self.total, desc=desc, unit="batch", file=self.stream, dynamic_ncols=True,
                        leave=True) if self.interactive else None

    def update(self, steps: int = 1) -> None:
        """Advance by ``steps`` and redraw."""
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)
        elif self.enabled and self.done * 4 >= self.next_quarter * self.total:
            self.next_quarter = self.done * 4 // self.total + 1
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.done * (self.total - self.done)
            logger.info(f"{self.desc}: {self.done}/{self.total} batches, {elapsed:.1f}s elapsed, eta {eta:.1f}s")

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self.bar is not None:
            self.bar.close()


@dataclass
class InferenceTiming:
    """Seconds spent in the forward pass and in NMS over ``images`` timed images."""

    forward_s: float = 0.0
    nms_s: float = 0.0
    images: int = 0

    def merged(self, other: "InferenceTiming") -> "InferenceTiming":
        """Return the sum of two timings (ranks of a distributed run)."""
        return InferenceTiming(self.forward_s + other.forward_s, self.nms_s + other.nms_s, self.images + other.images)

    def per_image_ms(self) -> dict[str, float]:
        """Average forward, NMS and total milliseconds per image."""
        count = max(self.images, 1)
        forward, nms = 1000 * self.forward_s / count, 1000 * self.nms_s / count
        return {"forward_ms": forward, "nms_ms": nms, "total_ms": forward + nms, "images": self.images}

    def summary(self) -> str:
        """One line of average per-image milliseconds."""
        ms = self.per_image_ms()
        return (
            f"Average forward time: {ms['forward_ms']:.2f} ms, Average NMS time: {ms['nms_ms']:.2f} ms, "
            f"Average inference time: {ms['total_ms']:.2f} ms (over {self.images} images)"
        )


@dataclass
class InferenceResult:
    """Detections per image id (original coordinates, float32 rows of 7) and the timing."""

    detections: dict[int, np.ndarray] = field(default_factory=dict)
    timing: InferenceTiming = field(default_factory=InferenceTiming)


def _model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without either)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so the wall clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _as_int_list(values) -> list[int]:
    """Flatten collated ids or sizes (tensor, array, list of scalars) into Python ints."""
    if isinstance(values, torch.Tensor):
        return [int(v) for v in values.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(values).reshape(-1).tolist()]


def run_inference(
    model: torch.nn.Module,
    dataloader: Iterable,
    num_classes: int,
    confthre: float,
    nmsthre: float,
    img_size: tuple[int, int],
    half: bool = False,
    decoder: Callable | None = None,
    desc: str = "eval",
) -> InferenceResult:
    """Run ``model`` over ``dataloader`` (batches of imgs, targets, img_info, ids); return detections.

    Boxes are mapped back to the original image with the letterbox ratio min(h_in/h, w_in/w). The first
    batch is a warm-up and is left out of the timing when there are several batches.
    """
    device = _model_device(model)
    if half and device.type != "cuda":
        raise UserError(f"fp16 evaluation needs a CUDA device but the model is on {device}: drop --fp16 or use --device cuda")
    was_training = model.training
    model.eval()
    input_dtype = torch.float16 if half else torch.float32
    result = InferenceResult()
    num_batches = len(dataloader) if hasattr(dataloader, "__len__") else 0
    progress = ProgressBar(num_batches, desc, enabled=is_main_process())
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=half):
            for batch_index, (imgs, _, img_info, ids) in enumerate(dataloader):
                timed = batch_index > 0 or num_batches == 1
                imgs = imgs.to(device=device, dtype=input_dtype, non_blocking=True)
                _synchronize(device)
                start = time.perf_counter()
                outputs = model(imgs)
                if decoder is not None:
                    outputs = decoder(outputs, dtype=outputs.type())
                _synchronize(device)
                forward_end = time.perf_counter()
                outputs = postprocess(outputs.float(), num_classes, confthre, nmsthre)
                _synchronize(device)
                if timed:
                    result.timing.forward_s += forward_end - start
                    result.timing.nms_s += time.perf_counter() - forward_end
                    result.timing.images += imgs.shape[0]
                heights, widths = _as_int_list(img_info[0]), _as_int_list(img_info[1])
                for output, height, width, image_id in zip(outputs, heights, widths, _as_int_list(ids)):
                    if output is None or output.shape[0] == 0:
                        result.detections[image_id] = EMPTY_DETECTIONS
                        continue
                    output = output.float().cpu()
                    ratio = min(img_size[0] / float(height), img_size[1] / float(width))
                    output[:, 0:4] /= ratio
                    result.detections[image_id] = output.numpy()
                progress.update()
    finally:
        progress.close()
        model.train(was_training)
    return result


def gather_inference(local: InferenceResult) -> InferenceResult | None:
    """Collect every rank's detections on rank 0 (merged, duplicates from sampler padding collapse).

    Returns the merged result on rank 0 and None on the other ranks; a no-op outside a distributed run.
    """
    if not is_distributed():
        return local
    shares: list[InferenceResult] | None = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(local, shares, dst=0)
    if shares is None:
        return None
    merged = InferenceResult()
    for share in shares:
        merged.detections.update(share.detections)
        merged.timing = merged.timing.merged(share.timing)
    return merged


def broadcast_from_main(value):
    """Return rank 0's ``value`` on every rank (the value itself outside a distributed run)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
