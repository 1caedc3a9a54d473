"""Shared fixtures: the location of the reference facts measured from the official YOLOX."""

from pathlib import Path

import pytest
import torch

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
