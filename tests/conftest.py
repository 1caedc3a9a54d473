"""Shared fixtures: the location of the reference facts measured from the official YOLOX, BatchNorm set-ups."""

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session", autouse=True)
def _few_threads() -> None:
    """Keep each test process to two threads: CI has two cores and runs nothing else."""
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of reference fixtures beside the checkout; skip the test when it is absent."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference facts not found at {REFERENCE_DIR} (they live in ../shared/reference beside the checkout)")
    return REFERENCE_DIR


def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)


def _calibrate_batchnorm(model: nn.Module, *batches: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of exactly ``batches``, then put it in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: the statistics of exactly these batches
        norm.train()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for norm in norms:
        norm.eval()


@pytest.fixture(scope="session")
def randomize_batchnorm() -> Callable[..., None]:
    """``randomize_batchnorm(model, seed=0)``: non-trivial BatchNorm weights and statistics, for folding checks."""
    return _randomize_batchnorm


@pytest.fixture(scope="session")
def calibrate_batchnorm() -> Callable[..., None]:
    """``calibrate_batchnorm(model, *batches)``: BatchNorm statistics of the batches, so outputs are not flat."""
    return _calibrate_batchnorm


@contextmanager
def _small_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``folder`` (root only; the test skips elsewhere), always unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="session")
def small_tmpfs() -> Callable[[Path, str], Any]:
    """``with small_tmpfs(folder, "size=64k,ro") as folder:`` a full or read-only disk for write-failure tests."""
    return _small_tmpfs
