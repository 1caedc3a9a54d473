"""The training-memory estimate: a hand-worked case, the pixel scaling on a real model, and the warning."""

import pytest
import torch
from loguru import logger
from torch import nn

from yolox.cli.train import build_exp, make_parser
from yolox.core import Trainer, memory
from yolox.core.memory import estimate_training_bytes, largest_training_size, memory_warning, saved_activation_bytes
from yolox.exp import get_exp


class ConvReLU(nn.Module):
    """A 3 -> 8 channel convolution and a ReLU, called like a detector: ``model(images, targets)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.register_buffer("seen", torch.zeros(5))

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> dict:
        return {"total_loss": torch.relu(self.conv(images)).sum()}


def test_a_hand_worked_case() -> None:
    # The convolution keeps its input (3 channels), the ReLU its output (8 channels); the weight is not counted.
    assert saved_activation_bytes(ConvReLU(), torch.zeros(2, 3, 16, 24), torch.zeros(2, 1, 5)) == (3 + 8) * 2 * 16 * 24 * 4
    # 2 images of 128 x 96: activations, four copies of the 224 weights and biases, two of the buffer, the inputs.
    expected = (3 + 8) * 4 * 2 * 128 * 96 + 4 * (8 * 3 * 9 + 8) * 4 + 2 * 5 * 4 + 2 * 128 * 96 * 3 * 4
    assert estimate_training_bytes(ConvReLU(), (128, 96), 2) == expected


def test_the_estimate_scales_a_real_models_kept_activations_with_the_pixels() -> None:
    exp = get_exp(exp_name="yolox-nano")
    model = exp.get_model().train()
    targets = torch.zeros(2, 1, 5)
    targets[:, 0] = torch.tensor([1.0, 96.0, 64.0, 40.0, 30.0])
    measured = saved_activation_bytes(model, torch.zeros(2, 3, 160, 192), targets)
    weights = sum(p.numel() * 4 for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    estimated = estimate_training_bytes(model, (160, 192), 2) - 4 * weights - 2 * buffers - 2 * 160 * 192 * 12
    assert estimated == pytest.approx(measured, rel=0.05)


def test_the_largest_training_size_is_the_top_of_the_multiscale_range() -> None:
    exp = get_exp(exp_name="yolox-s")
    assert largest_training_size(exp) == (800, 800)  # 640 / 32 + multiscale_range 5 sides of 32 px
    exp.merge(["input_size", "480,640", "random_size", "10,12"])
    assert largest_training_size(exp) == (480, 640)  # 12 * 32 = 384 < 480: the input size itself is the largest
    exp.merge(["random_size", "14,20"])
    assert largest_training_size(exp) == (640, 832)  # 20 sides of 32 px, the aspect ratio kept


def test_the_warning_names_the_size_the_estimate_and_the_memory(monkeypatch) -> None:
    model = ConvReLU()
    needed = estimate_training_bytes(model, (3200, 3200), 64)
    monkeypatch.setattr(memory, "machine_memory_bytes", lambda device: (needed - 1, "this machine's RAM"))
    warning = memory_warning([model], (3200, 3200), 64, 1, torch.device("cpu"))
    assert "input size 3200x3200" in warning and "64 images per process" in warning
    assert f"at least {needed / 1024**3:.1f} GiB (estimated)" in warning and "this machine's RAM" in warning
    monkeypatch.setattr(memory, "machine_memory_bytes", lambda device: (needed, "this machine's RAM"))
    assert memory_warning([model], (3200, 3200), 64, 1, torch.device("cpu")) is None
    # Two processes share the CPU's RAM; each GPU process has its own device.
    assert "x 2 processes" in memory_warning([model], (3200, 3200), 64, 2, torch.device("cpu"))
    assert memory_warning([model], (3200, 3200), 64, 2, torch.device("cuda", 0)) is None


def test_the_trainer_warns_before_training_starts(make_exp_file, monkeypatch) -> None:
    monkeypatch.setattr(memory, "machine_memory_bytes", lambda device: (1024**2, "this machine's RAM"))
    args = make_parser().parse_args(["-f", str(make_exp_file()), "-b", "4", "--device", "cpu"])
    lines: list[str] = []
    handler = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    try:
        Trainer(build_exp(args), args).before_train()
    finally:
        logger.remove(handler)
    warned = next(i for i, line in enumerate(lines) if "needs at least" in line)
    assert "input size 64x64" in lines[warned] and "4 images per process" in lines[warned]
    assert warned < next(i for i, line in enumerate(lines) if line.startswith("training starts"))


def test_the_probe_leaves_the_model_and_the_random_stream_alone() -> None:
    model = get_exp(exp_name="yolox-nano").get_model()
    state = {name: value.clone() for name, value in model.state_dict().items()}
    torch.manual_seed(3)
    estimate_training_bytes(model, (640, 640), 8)
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())

