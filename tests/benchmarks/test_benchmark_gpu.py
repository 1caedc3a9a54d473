"""The GPU benchmark's pieces on CPU: peak table, FLOP arithmetic, the measuring loops at tiny sizes, no-CUDA exit."""

import math
from pathlib import Path

import pytest
import torch

from yolox.benchmarks.gpu import (
    SpeedSettings,
    measure_eval,
    measure_training,
    peak_tflops,
    pipeline_loader,
    training_tflops,
)
from yolox.cli.benchmark import main as benchmark_main
from yolox.exp import get_exp

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def nano():
    exp = get_exp(None, "yolox-nano")
    exp.num_classes = 5
    return exp


def test_peak_table_and_flops() -> None:
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0 and peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA L40S") == 362.0 and peak_tflops("NVIDIA L4") == 121.0
    assert peak_tflops("Some Future GPU") is None and peak_tflops("Some Future GPU", 500.0) == 500.0
    # 26.8 forward GFLOPs per image at 1000 images/s: 3 x 26.8 TFLOP/s.
    assert training_tflops(26.8, 1000.0) == pytest.approx(80.4)


def test_settings_name_what_differs() -> None:
    assert SpeedSettings().changed() == "defaults"
    assert SpeedSettings(amp="bf16", channels_last=False).changed() == "amp=bf16, channels_last=False"


def test_model_bound_training_loop_runs_on_cpu(nano) -> None:
    settings = SpeedSettings(amp=None, optimizer_impl="foreach", sync_every_iter=True)
    figures = measure_training(nano, CPU, batch_size=2, size=64, steps=2, warmup=1, settings=settings)
    assert figures["images/s"] > 0 and math.isfinite(figures["mean loss"])
    assert figures["data wait %"] is None and figures["peak GB"] is None


def test_end_to_end_loop_reports_the_data_wait(nano, tmp_path: Path) -> None:
    loader = pipeline_loader(nano, tmp_path, batch_size=2, size=64, workers=0, images=4)
    figures = measure_training(nano, CPU, batch_size=2, size=64, steps=2, warmup=1,
                               settings=SpeedSettings(amp=None), loader=loader)
    assert 0.0 < figures["data wait %"] < 100.0


def test_eval_timing_splits_forward_and_nms(nano) -> None:
    figures = measure_eval(nano, CPU, batch_size=2, size=64, half=False, repeats=2, warmup=1)
    assert figures["forward ms/image"] > 0 and figures["NMS ms/image"] >= 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_benchmark_without_cuda_says_so(capsys, tmp_path: Path) -> None:
    assert benchmark_main(["gpu", "--check", "--json", str(tmp_path / "gpu.json")]) == 2
    assert "no CUDA device is present" in capsys.readouterr().err
