"""GPU measurements: training images/s (model-bound and end to end), evaluation ms/image, attention overhead and
each CUDA speed switch on/off; ``run_gpu_check`` runs the CUDA tests first. The measuring code also runs on CPU
(small sizes) so that its tests need no GPU."""

import copy
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from yolox.benchmarks.model import exp_variant, synthetic_images, synthetic_targets
from yolox.benchmarks.report import BenchmarkReport, environment
from yolox.core.trainer import set_optimizer_implementation
from yolox.models.attention import available_attentions
from yolox.models.network_blocks import apply_bn_memory_saving
from yolox.utils.errors import UserError
from yolox.utils.protocols import BenchmarkExpLike

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_CUDA_MESSAGE = ("no CUDA device is present (torch.cuda.is_available() is False, torch {version}): "
                   "run the GPU check on a machine with an NVIDIA GPU and a CUDA build of torch")
# Dense (no sparsity) fp16/bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets, matched in this
# order against torch.cuda.get_device_name(); --peak-tflops overrides (and is needed for other GPUs).
PEAK_DENSE_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("V100", 125.0), ("T4", 65.0), ("RTX 4090", 165.0),
)
# Backward costs about twice the forward: a training step is about 3 forward passes of FLOPs.
TRAIN_FLOPS_PER_FORWARD = 3.0


@dataclass(frozen=True)
class SpeedSettings:
    """The training speed switches; the defaults are the ones the trainer's flags can turn on."""

    amp: str | None = "fp16"  # None (float32), "fp16" (loss-scaled) or "bf16"
    channels_last: bool = True
    optimizer_impl: str = "fused"  # default, foreach or fused
    sync_every_iter: bool = False  # read the loss back every step, as --loss-readback iter does
    cudnn_benchmark: bool = True
    compile_backend: str | None = None
    pin_memory: bool = True  # end-to-end runs only

    def changed(self) -> str:
        """The switches that differ from the defaults, e.g. ``channels_last=False`` (``defaults`` when none)."""
        base = SpeedSettings()
        changes = [f"{field.name}={getattr(self, field.name)}" for field in dataclasses.fields(self)
                   if getattr(self, field.name) != getattr(base, field.name)]
        return ", ".join(changes) or "defaults"


# One switch at a time away from the defaults: what each one is worth.
SWITCH_VARIANTS = (
    SpeedSettings(),
    SpeedSettings(channels_last=False),
    SpeedSettings(amp="bf16"),
    SpeedSettings(amp=None),
    SpeedSettings(optimizer_impl="foreach"),
    SpeedSettings(optimizer_impl="default"),
    SpeedSettings(sync_every_iter=True),
    SpeedSettings(cudnn_benchmark=False),
    SpeedSettings(compile_backend="inductor"),
)


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The GPU's dense fp16/bf16 peak in TFLOP/s: ``override`` when given, else the data-sheet table (None if unknown)."""
    if override is not None:
        return override
    return next((tflops for key, tflops in PEAK_DENSE_TFLOPS if key in device_name), None)


def training_tflops(forward_gflops: float, images_per_second: float) -> float:
    """Achieved training TFLOP/s from the model summary's forward GFLOPs per image and the measured images/s."""
    return TRAIN_FLOPS_PER_FORWARD * forward_gflops * images_per_second / 1000.0


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def measure_training(exp: BenchmarkExpLike, device: torch.device, batch_size: int, size: int, steps: int, warmup: int,
                     settings: SpeedSettings = SpeedSettings(), attention: str | None = None,
                     loader: Any = None) -> dict[str, Any]:
    """Train ``steps`` timed steps after ``warmup``; synthetic batches already on the device unless ``loader`` is given.

    With a loader (the real pipeline) the time spent waiting for the next batch is reported as the data-wait share.
    Losses are read back once at the end unless ``settings.sync_every_iter``.
    """
    if settings.amp == "fp16" and device.type != "cuda":
        raise UserError("fp16 training needs CUDA: use amp bf16 or None on CPU")
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    variant = exp_variant(exp, attention)
    model = variant.get_model().to(device).train().to(memory_format=memory_format)
    apply_bn_memory_saving(model, variant)
    optimizer = variant.get_optimizer(batch_size)
    set_optimizer_implementation(optimizer, settings.optimizer_impl)
    scaler = torch.amp.GradScaler(device.type, enabled=settings.amp == "fp16")
    amp_dtype = torch.bfloat16 if settings.amp == "bf16" else torch.float16
    compile_seconds = None
    if settings.compile_backend:
        model.compile(backend=settings.compile_backend)
    if loader is None:
        fixed = (synthetic_images(batch_size, (size, size)).to(device).contiguous(memory_format=memory_format),
                 synthetic_targets(batch_size, (size, size), exp.num_classes).to(device))
    else:
        loader.pin_memory = settings.pin_memory and device.type == "cuda"
        batches = iter(loader)

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        if loader is None:
            return fixed
        images, targets = next(batches)[:2]
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        return images, targets.to(device, non_blocking=True)

    losses: list[torch.Tensor] = []

    def step() -> float:
        start = time.perf_counter()
        images, targets = next_batch()
        waited = time.perf_counter() - start
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=settings.amp is not None):
            loss = model(images, targets)["total_loss"]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())
        if settings.sync_every_iter:
            float(loss.detach())
        return waited

    for index in range(warmup):
        start = time.perf_counter()
        step()
        if index == 0 and settings.compile_backend:
            _synchronize(device)
            compile_seconds = time.perf_counter() - start
    _synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    data_wait = sum(step() for _ in range(steps))
    _synchronize(device)
    seconds = time.perf_counter() - start
    final_loss = float(torch.stack(losses[-steps:]).float().mean())
    if not torch.isfinite(torch.tensor(final_loss)):
        raise RuntimeError(f"training diverged in the benchmark ({settings.changed()}): mean loss {final_loss}")
    return {"images/s": steps * batch_size / seconds, "ms/step": 1000.0 * seconds / steps,
            "data wait %": 100.0 * data_wait / seconds if loader is not None else None,
            "peak GB": _peak_memory_gb(device), "compile s": compile_seconds, "mean loss": final_loss}


def measure_eval(exp: BenchmarkExpLike, device: torch.device, batch_size: int, size: int, half: bool, repeats: int,
                 warmup: int) -> dict[str, Any]:
    """Evaluation ms/image of the forward and of the postprocess (score filter + NMS), each timed on its own."""
    from yolox.utils.boxes import postprocess

    torch.manual_seed(0)
    model = exp_variant(exp, getattr(exp, "attention", None)).get_model().to(device).eval()
    dtype = torch.float16 if half else torch.float32
    model = model.to(dtype)
    images = synthetic_images(batch_size, (size, size)).to(device, dtype)
    forward_s, post_s = [], []
    with torch.inference_mode():
        for index in range(warmup + repeats):
            _synchronize(device)
            start = time.perf_counter()
            outputs = model(images)
            _synchronize(device)
            middle = time.perf_counter()
            postprocess(outputs, exp.num_classes, exp.test_conf, exp.nmsthre)
            _synchronize(device)
            if index >= warmup:
                forward_s.append(middle - start)
                post_s.append(time.perf_counter() - middle)
    forward_s.sort()
    post_s.sort()
    return {"forward ms/image": 1000.0 * forward_s[len(forward_s) // 2] / batch_size,
            "NMS ms/image": 1000.0 * post_s[len(post_s) // 2] / batch_size}


def pipeline_loader(exp: BenchmarkExpLike, scratch: Path, batch_size: int, size: int, workers: int, images: int) -> Any:
    """The exp's training loader (mosaic + mixup) over ``images`` generated JPEGs, with ``workers`` processes."""
    from yolox.benchmarks.data import SYNTHETIC_ANN, SYNTHETIC_NAME, write_synthetic_coco

    variant = copy.copy(exp)
    variant.data_dir = str(write_synthetic_coco(scratch, num_images=images, num_classes=exp.num_classes))
    variant.train_ann, variant.train_name = SYNTHETIC_ANN, SYNTHETIC_NAME
    variant.input_size = (size, size)
    variant.data_num_workers = workers
    variant.dataset = None
    return variant.get_data_loader(batch_size=batch_size, is_distributed=False, no_aug=False)


def run_gpu_benchmark(exps: dict[str, BenchmarkExpLike], device: torch.device, batch_size: int = 64, size: int = 640,
                      steps: int = 20, warmup: int = 5, eval_batches: tuple[int, ...] = (1, 64),
                      workers: int | None = None, images: int = 128, switches: bool = True,
                      peak_override: float | None = None) -> BenchmarkReport:
    """Every GPU figure of the issue in one report: one row per measurement, the ``section`` column says which."""
    from yolox.utils.model_utils import get_model_stats

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_tflops(name, peak_override)
    # fp16 autocast with loss scaling is CUDA's; a CPU smoke run measures the same paths in float32.
    base = SpeedSettings() if device.type == "cuda" else SpeedSettings(amp=None)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []

    def add(section: str, model_name: str, attention: str | None, setting: str, figures: dict[str, Any],
            gflops: float | None = None) -> dict[str, Any]:
        row = {"section": section, "model": model_name, "attention": attention or "none", "setting": setting}
        row.update(figures)
        if gflops is not None and "images/s" in figures:
            achieved = training_tflops(gflops, figures["images/s"])
            row["TFLOP/s"] = achieved
            row["% of peak"] = 100.0 * achieved / peak if peak else None
        rows.append(row)
        return row

    for model_name, exp in exps.items():
        attention_rows = []
        for attention in (None, *available_attentions()):
            model = exp_variant(exp, attention).get_model()
            gflops = get_model_stats(model, (size, size))["gflops"]
            del model
            figures = measure_training(exp, device, batch_size, size, steps, warmup, base, attention=attention)
            attention_rows.append(add("train, model-bound", model_name, attention, base.changed(),
                                      figures, gflops))
        for row in attention_rows:  # the step time each block adds, relative to the model without attention
            row["attention overhead %"] = 100.0 * (attention_rows[0]["images/s"] / row["images/s"] - 1.0)
        with tempfile.TemporaryDirectory(prefix="yolox_gpu_bench_") as scratch:
            loader = pipeline_loader(exp, Path(scratch), batch_size, size, workers, images)
            for pin in (True, False):
                settings = dataclasses.replace(base, pin_memory=pin)
                figures = measure_training(exp, device, batch_size, size, steps, warmup, settings, loader=loader)
                add(f"train, end to end ({workers} workers)", model_name, None, settings.changed(), figures)
            del loader
        for half in (True, False):
            for eval_batch in eval_batches:
                if half and device.type != "cuda":
                    continue
                figures = measure_eval(exp, device, eval_batch, size, half, repeats=steps, warmup=warmup)
                add("eval", model_name, getattr(exp, "attention", None), f"{'fp16' if half else 'fp32'} batch {eval_batch}",
                    figures)
    if switches:
        model_name, exp = next(iter(exps.items()))
        gflops = get_model_stats(exp_variant(exp, None).get_model(), (size, size))["gflops"]
        for settings in SWITCH_VARIANTS:
            if settings.amp == "fp16" and device.type != "cuda":
                continue
            figures = measure_training(exp, device, batch_size, size, steps, warmup, settings)
            add("speed switch", model_name, None, settings.changed(), figures, gflops)
    columns = list(dict.fromkeys(key for row in rows for key in row))  # the table shows the first row's keys
    rows = [{column: row.get(column) for column in columns} for row in rows]
    report_settings = {"batch_size": batch_size, "input": f"{size}x{size}", "steps": steps, "warmup": warmup,
                       "gpu": name, "peak dense fp16/bf16 TFLOP/s": peak, "loader workers": workers,
                       "generated images": images, "training FLOPs": "3 x forward GFLOPs of the model summary"}
    return BenchmarkReport("gpu", rows, report_settings, environment(str(device)))


def cuda_device() -> torch.device:
    """The first CUDA device, or a UserError that says none is present."""
    if not torch.cuda.is_available():
        raise UserError(NO_CUDA_MESSAGE.format(version=torch.__version__))
    return torch.device("cuda", torch.cuda.current_device())


def run_cuda_tests(pytest_args: list[str] | None = None) -> int:
    """Run ``pytest -m cuda`` on the CUDA tests in a fresh process; returns its exit code."""
    command = [sys.executable, "-m", "pytest", str(REPO_ROOT / "tests" / "cuda"), "-m", "cuda", "-q", "-rs",
               *(pytest_args or [])]
    print("running the CUDA tests: " + " ".join(command), flush=True)
    return subprocess.run(command, cwd=REPO_ROOT, check=False).returncode
