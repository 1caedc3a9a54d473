"""Model-side benchmarks: eval latency (forward + postprocess) and one full training step with its memory.

Both take an exp (anything with ``get_model()``, ``num_classes``, ``input_size``/``test_size``,
``attention``, ``test_conf``, ``nmsthre`` and, for training, ``get_optimizer(batch_size)``) and return a
:class:`~yolox.benchmarks.report.BenchmarkReport`. Models measured against each other are timed in
interleaved rounds, so that a change of machine load hits all of them alike and their ratio stays fair.
"""

import copy
import math
import resource
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from yolox.benchmarks.report import BenchmarkReport, Summary, environment
from yolox.models.network_blocks import apply_bn_memory_saving
from yolox.utils.boxes import postprocess
from yolox.utils.model_utils import fuse_model
from yolox.utils.protocols import BenchmarkExpLike, ExpLike

PROC_STATUS = "/proc/self/status"
PROC_CLEAR_REFS = "/proc/self/clear_refs"
MAX_LABELS = 120  # rows per image in the training targets, as the mosaic loader pads them


def peak_rss_bytes() -> tuple[int, str]:
    """Peak resident memory of this process and where it was read: ``VmHWM`` (Linux) or ``ru_maxrss``."""
    try:
        with open(PROC_STATUS, encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    # ru_maxrss is KiB on Linux, bytes on macOS; only Linux reaches here without /proc in practice.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "ru_maxrss"


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count from the current RSS (Linux ``clear_refs`` 5); False where unsupported."""
    try:
        with open(PROC_CLEAR_REFS, "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def minor_page_faults() -> int:
    """Minor page faults of this process so far (``ru_minflt``): each one is a page mapped on first touch."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def synthetic_images(batch_size: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A fixed batch ``[B, 3, H, W]`` of float pixels in 0..255, like the loader's letterboxed BGR images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch_size, 3, *size), generator=generator).float()


def synthetic_targets(
    batch_size: int,
    size: tuple[int, int],
    num_classes: int,
    boxes_per_image: tuple[int, int] = (10, 30),
    max_labels: int = MAX_LABELS,
    seed: int = 0,
) -> torch.Tensor:
    """Realistic padded targets ``[B, max_labels, 5]`` (class, cx, cy, w, h in pixels), zero rows for padding.

    Each image gets a box count drawn from ``boxes_per_image`` (inclusive); sides are 2%..40% of the image,
    with a log-uniform spread so that small objects dominate as in COCO, and boxes lie inside the image.
    """
    low, high = boxes_per_image
    if not 1 <= low <= high <= max_labels:
        raise ValueError(
            f"boxes_per_image={boxes_per_image} must satisfy 1 <= min <= max <= max_labels={max_labels}"
        )
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    targets = torch.zeros(batch_size, max_labels, 5)
    for image in range(batch_size):
        count = int(torch.randint(low, high + 1, (1,), generator=generator))
        log_fraction = torch.empty(count, 2).uniform_(math.log(0.02), math.log(0.4), generator=generator)
        fraction = torch.exp(log_fraction)
        box_w, box_h = fraction[:, 0] * width, fraction[:, 1] * height
        cx = box_w / 2 + torch.rand(count, generator=generator) * (width - box_w)
        cy = box_h / 2 + torch.rand(count, generator=generator) * (height - box_h)
        classes = torch.randint(0, num_classes, (count,), generator=generator).float()
        targets[image, :count] = torch.stack([classes, cx, cy, box_w, box_h], dim=1)
    return targets


def exp_variant(exp: BenchmarkExpLike, attention: str | None) -> BenchmarkExpLike:
    """A shallow copy of ``exp`` with ``attention`` set and no cached model or optimizer.

    The exp's own ``attention_kwargs`` are kept only for its own attention type: another block may not
    accept them.
    """
    variant = copy.copy(exp)
    if attention != getattr(exp, "attention", None):
        variant.attention_kwargs = {}
    variant.attention = attention
    variant.model = None
    variant.optimizer = None
    return variant


def _input_size(exp: ExpLike, size: int | None, attribute: str) -> tuple[int, int]:
    """``(size, size)`` when given, else the exp's ``attribute`` (test_size or input_size)."""
    if size is not None:
        if size < 32 or size % 32:
            raise ValueError(f"input size {size} must be a positive multiple of 32 (e.g. 416 or 640)")
        return (size, size)
    height, width = getattr(exp, attribute)
    return (int(height), int(width))


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that a timer reads the real duration."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def measure_latency(
    exp: BenchmarkExpLike,
    attentions: Sequence[str | None] = (None,),
    size: int | None = None,
    batch_size: int = 1,
    repeats: int = 10,
    warmup: int = 3,
    device: str = "cpu",
    with_postprocess: bool = True,
    channels_last: bool = False,
    fuse: bool = False,
) -> BenchmarkReport:
    """Eval-mode latency of the exp's model for each attention type (None: no attention).

    ``fuse`` folds each conv's BatchNorm into it first, as ``tools/eval.py --fuse`` and the demo do.

    One timed call is ``model(images)`` plus ``postprocess`` with the exp's ``test_conf``/``nmsthre``
    under ``torch.inference_mode``. The models are timed in interleaved rounds; when None is among the
    attentions, each row also gets its median's ratio to None's (the attention overhead).
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, {warmup}, {batch_size}")
    if not attentions:
        raise ValueError("give at least one attention type to measure (None means no attention)")
    target = torch.device(device)
    input_hw = _input_size(exp, size, "test_size")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = synthetic_images(batch_size, input_hw).to(target).contiguous(memory_format=memory_format)
    models: dict[str | None, nn.Module] = {}
    for attention in attentions:
        torch.manual_seed(0)  # the same weights on every run
        model = exp_variant(exp, attention).get_model().to(target).eval()
        if fuse:
            model = fuse_model(model)
        models[attention] = model.to(memory_format=memory_format)

    def run(model: nn.Module) -> None:
        with torch.inference_mode():
            outputs = model(images)
            if with_postprocess:
                postprocess(outputs, exp.num_classes, exp.test_conf, exp.nmsthre)
        _synchronize(target)

    samples: dict[str | None, list[float]] = {attention: [] for attention in models}
    for round_index in range(warmup + repeats):
        for attention, model in models.items():
            start = time.perf_counter()
            run(model)
            if round_index >= warmup:
                samples[attention].append(time.perf_counter() - start)

    summaries = {attention: Summary.of(values) for attention, values in samples.items()}
    baseline = summaries[None].median if None in summaries else None
    rows = []
    for attention, summary in summaries.items():
        row = {
            "attention": attention or "none",
            "input": f"{input_hw[0]}x{input_hw[1]}",
            "batch": batch_size,
            "median ms": _ms(summary.median),
            "min ms": _ms(summary.minimum),
            "max ms": _ms(summary.maximum),
        }
        if baseline:
            row["vs none"] = summary.median / baseline
        row["samples ms"] = [round(_ms(value), 2) for value in summary.samples]
        rows.append(row)
    settings = _settings(exp, input_hw, batch_size, repeats, warmup, device)
    settings.update(postprocess=with_postprocess, channels_last=channels_last, fused=fuse)
    return BenchmarkReport("latency", rows, settings, environment(str(target)))


def measure_train_step(
    exp: BenchmarkExpLike,
    size: int | None = None,
    batch_size: int = 4,
    repeats: int = 5,
    warmup: int = 2,
    device: str = "cpu",
    boxes_per_image: tuple[int, int] = (10, 30),
    channels_last: bool = False,
) -> BenchmarkReport:
    """Time one training step of the exp's model on a fixed synthetic batch, with its memory and page faults.

    A step is ``zero_grad``, ``model(images, targets)`` (forward + SimOTA + losses), ``backward`` and the
    exp's optimizer ``step``. The peak resident memory is counted over the timed steps only (the peak is
    reset after warm-up where Linux allows it, otherwise it is the process peak); minor page faults are
    averaged per timed step.
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, {warmup}, {batch_size}")
    target = torch.device(device)
    input_hw = _input_size(exp, size, "input_size")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    variant = exp_variant(exp, getattr(exp, "attention", None))
    model = variant.get_model().to(target).train().to(memory_format=memory_format)
    apply_bn_memory_saving(model, variant)
    optimizer = variant.get_optimizer(batch_size)
    images = synthetic_images(batch_size, input_hw).to(target).contiguous(memory_format=memory_format)
    targets = synthetic_targets(batch_size, input_hw, exp.num_classes, boxes_per_image).to(target)

    losses: list[float] = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        outputs = model(images, targets)
        outputs["total_loss"].backward()
        optimizer.step()
        _synchronize(target)
        losses.append(float(outputs["total_loss"].detach()))

    for _ in range(warmup):
        step()
    peak_reset = reset_peak_rss()
    faults_before = minor_page_faults()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    faults_per_step = (minor_page_faults() - faults_before) / repeats
    peak_bytes, peak_source = peak_rss_bytes()

    summary = Summary.of(seconds)
    row = {
        "model": getattr(exp, "exp_name", type(exp).__name__),
        "attention": getattr(exp, "attention", None) or "none",
        "input": f"{input_hw[0]}x{input_hw[1]}",
        "batch": batch_size,
        "median s": summary.median,
        "min s": summary.minimum,
        "max s": summary.maximum,
        "images/s": batch_size / summary.median,
        "page faults/step": faults_per_step,
        "peak RSS GB": peak_bytes / 1e9,
        "samples s": [round(value, 3) for value in summary.samples],
        "last loss": losses[-1],
    }
    settings = _settings(exp, input_hw, batch_size, repeats, warmup, device)
    settings.update(
        boxes_per_image=f"{boxes_per_image[0]}-{boxes_per_image[1]}",
        peak_rss=f"{peak_source} over the timed steps" if peak_reset else f"{peak_source} of the whole process",
        channels_last=channels_last,
    )
    return BenchmarkReport("train-step", [row], settings, environment(str(target)))


def _settings(exp: ExpLike, input_hw: tuple[int, int], batch_size: int, repeats: int, warmup: int,
              device: str) -> dict[str, Any]:
    """The settings every model benchmark reports."""
    return {
        "exp": getattr(exp, "exp_name", type(exp).__name__),
        "input": f"{input_hw[0]}x{input_hw[1]}",
        "batch": batch_size,
        "repeats": repeats,
        "warmup": warmup,
        "device": device,
        "threads": torch.get_num_threads(),
    }


def measure_eval(
    exp: BenchmarkExpLike,
    repeats: int = 3,
    warmup: int = 1,
    batch_size: int = 8,
    device: str = "cpu",
    prior_prob: float | None = 0.1,
) -> BenchmarkReport:
    """Time a full COCO evaluation (inference + conversion + scoring) of the exp's model on its eval set.

    ``exp.get_evaluator`` supplies the evaluator; the model keeps its random weights, with the head's
    score prior set to ``prior_prob`` (obj x cls = prior squared) so that a low ``test_conf`` keeps nearly
    every anchor and the conversion and scoring see a realistic flood of detections. Every repetition
    must give the same AP; the row reports it with the detection count.
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, {warmup}, {batch_size}")
    target = torch.device(device)
    torch.manual_seed(0)
    variant = exp_variant(exp, getattr(exp, "attention", None))
    model = variant.get_model()
    if prior_prob is not None:
        model.head.initialize_biases(prior_prob)
    model = model.to(target).eval()
    evaluator = variant.get_evaluator(batch_size, False)
    seconds, scores, detections = [], [], 0
    for index in range(warmup + repeats):
        start = time.perf_counter()
        report = evaluator.evaluate_report(model, return_outputs=True)
        elapsed = time.perf_counter() - start
        if index >= warmup:
            seconds.append(elapsed)
            # headline/outputs are the evaluator's metric-neutral view of its report (COCO or VOC alike).
            ap50_95, ap50, _ = evaluator.headline(report)
            scores.append((ap50_95, ap50))
            detections = sum(len(boxes) for boxes in (evaluator.outputs(report) or {}).values())
    summary = Summary.of(seconds)
    images = len(getattr(evaluator.dataloader, "dataset", []))
    row = {
        "model": getattr(exp, "exp_name", type(exp).__name__),
        "images": images,
        "detections": detections,
        "median s": summary.median,
        "min s": summary.minimum,
        "max s": summary.maximum,
        "AP50:95": scores[-1][0],
        "AP50": scores[-1][1],
        "same AP every run": len(set(scores)) == 1,
        "samples s": [round(value, 3) for value in summary.samples],
    }
    settings = _settings(exp, tuple(exp.test_size), batch_size, repeats, warmup, device)
    settings.update(test_conf=exp.test_conf, nmsthre=exp.nmsthre, prior_prob=prior_prob)
    return BenchmarkReport("eval", [row], settings, environment(str(target)))
